"""MySQL and MariaDB run storage for runyard (registered as ``mysql``)."""

__version__ = "0.1.0"
