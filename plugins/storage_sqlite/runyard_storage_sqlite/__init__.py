"""SQLite run storage for runyard (registered as ``sqlite``)."""

__version__ = "0.1.0"
