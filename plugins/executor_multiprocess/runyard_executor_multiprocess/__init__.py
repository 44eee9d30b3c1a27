"""The ``multiprocess`` executor for runyard: every step in its own warm child process."""

__version__ = "0.1.0"
