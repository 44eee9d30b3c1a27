"""Facts about local processes, read from Linux's /proc in this one place.

A worker is identified by its pid plus its start time, so a recycled pid is never mistaken for it.
The launchers, the executors and the test helpers of :mod:`runyard.testing` all read processes
through here.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

#: /proc state letters of a process that has exited (a zombie not yet reaped, or dead)
EXITED_STATES = frozenset({"Z", "X"})


@dataclass(frozen=True, kw_only=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` runyard uses."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int  # clock ticks since boot

    @property
    def alive(self) -> bool:
        return self.state not in EXITED_STATES


def read_stat(pid: int) -> ProcStat | None:
    """``pid``'s stat fields, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parens: split after its closing paren.
    fields = data[data.rindex(b")") + 2:].split()
    return ProcStat(pid=pid, state=fields[0].decode(), ppid=int(fields[1]), pgrp=int(fields[2]),
                    session=int(fields[3]), start_ticks=int(fields[19]))


def processes() -> Iterator[ProcStat]:
    """Every process visible in /proc (those that exit while being read are left out)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                yield stat


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None if it is gone."""
    stat = read_stat(pid)
    return stat.start_ticks if stat else None


def state(pid: int) -> str | None:
    stat = read_stat(pid)
    return stat.state if stat else None


def is_alive(pid: int, expected_start: int | None = None) -> bool:
    """True if ``pid`` runs, is not a zombie, and (when given) started at ``expected_start``."""
    if os.path.isdir("/proc/self"):
        stat = read_stat(pid)
        if stat is None or not stat.alive:
            return False
        return expected_start is None or stat.start_ticks == expected_start
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
