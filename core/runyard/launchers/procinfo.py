"""Identifying local processes safely: a pid plus its start time, so a recycled pid is never
mistaken for our worker."""

from __future__ import annotations

import os
import signal


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parens: split after its closing paren.
    return data[data.rindex(b")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def is_alive(pid: int, expected_start: int | None = None) -> bool:
    """True if ``pid`` runs, is not a zombie, and (when given) started at ``expected_start``."""
    if os.path.isdir("/proc/self"):
        st = state(pid)
        if st is None or st in ("Z", "X"):
            return False
        return expected_start is None or start_ticks(pid) == expected_start
    try:  # not Linux: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by signal {sig} ({name})"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
