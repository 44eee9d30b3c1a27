"""What runyard writes under an instance home is readable by its user only, whatever the umask:
directories it creates are 0700, files 0600 (the home itself, the SQLite database and its -wal and
-shm files, compute logs, run worker logs, stored outputs, spill files). Run logs and outputs can
hold anything an op printed or returned; the database holds run config.

Directories that already exist are left as they are: a home the user made is theirs to set.
"""

from __future__ import annotations

import os

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dirs(path: str) -> str:
    """Create ``path`` and any missing parents, each 0700; return ``path``."""
    path = os.path.abspath(path)
    missing: list[str] = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            if not os.path.isdir(directory):
                raise
    return path


def open_private(path: str, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """``os.open`` creating the file 0600 when it does not exist yet."""
    return os.open(path, flags | os.O_CREAT, FILE_MODE)


def create_private_file(path: str) -> None:
    """Make sure ``path`` exists; a new file is created 0600 (an existing one is left alone)."""
    os.close(open_private(path, os.O_WRONLY))
