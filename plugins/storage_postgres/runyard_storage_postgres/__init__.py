"""PostgreSQL run storage for runyard (registered as ``postgres``)."""

__version__ = "0.1.0"
