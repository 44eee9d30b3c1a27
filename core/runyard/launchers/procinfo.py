"""Facts about local processes, read from Linux's /proc in this one place, and the few ways
runyard ends the processes a run started.

A worker is identified by its pid plus its start time, so a recycled pid is never mistaken for it.
The launchers, the executors and the test helpers of :mod:`runyard.testing` all read processes
through here.

Containment (see docs/run-worker.md, "Processes a run starts"): a process that owns a run or a step
makes itself a *child subreaper*, so whatever its descendants orphan — a double-forked daemon
included — is re-parented to it instead of to init, and :func:`kill_tree` then finds and kills it by
walking ``/proc/<pid>/task/<tid>/children`` (no scan of the whole process table). A worker that is
already dead is cleaned up from outside by its session id (:func:`kill_session`), which needs one
scan of /proc.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` started with (empty when it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in data.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


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


# ---- process trees ---------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def _libc() -> Any:
    import ctypes  # a few ms: the zygote pays it once, its forks inherit it

    return ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> bool:
    """Linux: make this process the reaper of every orphan among its descendants (so nothing it
    started can slip away to init); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int, tid: int | None = None) -> list[int]:
    """``pid``'s child processes (zombies included), from the per-thread ``children`` files (only
    thread ``tid``'s, when given); a scan of /proc where the kernel has none (CONFIG_PROC_CHILDREN
    off)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task") if tid is None else [str(tid)]
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread just ended
            return [p.pid for p in processes() if p.ppid == pid]
        except OSError:
            continue
    return found


def _identity(pid: int) -> tuple[int, int] | None:
    stat = read_stat(pid)
    return (pid, stat.start_ticks) if stat is not None else None


def descendants(pid: int) -> list[tuple[int, int]]:
    """Every process below ``pid`` (children, grandchildren, ...), as (pid, start time) pairs."""
    found: list[tuple[int, int]] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        identity = _identity(child)
        if identity is not None:
            found.append(identity)
            todo.extend(children(child))
    return found


def kill_processes(identities: list[tuple[int, int]]) -> None:
    """SIGKILL each (pid, start time) that is still that process."""
    for pid, start in identities:
        if _identity(pid) == (pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def child_snapshot(pid: int | None = None) -> frozenset[tuple[int, int]]:
    """The children ``pid`` (default: this process) has now, as (pid, start time) pairs: what a
    later :func:`kill_tree` must leave alone."""
    ids = (_identity(c) for c in children(os.getpid() if pid is None else pid))
    return frozenset(i for i in ids if i is not None)


def kill_tree(keep: frozenset[tuple[int, int]] = frozenset(), *, thread: int | None = None,
              timeout: float = 5.0) -> list[int]:
    """SIGKILL every descendant of this process except the children in ``keep`` (and everything
    below them), reap those that are our own children, and repeat until none is left: a process
    that forks while it is being killed, or orphans flowing back to a subreaper, are caught by the
    next round. Returns the pids killed. Cheap when there is nothing to kill: one read per thread.

    ``thread``: only the children that thread (a native thread id) started, plus the orphans a
    subreaper adopts (the kernel hands those to the main thread, so pass the main thread's id):
    one read instead of one per thread."""
    me = os.getpid()
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        live = False
        todo = [c for c in children(me, thread) if _identity(c) not in keep]
        direct = set(todo)
        while todo:
            pid = todo.pop()
            stat = read_stat(pid)
            if stat is None:
                continue
            if stat.alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):  # not ours to kill (a setuid program)
                    pass
                else:
                    live = True
                    killed.append(pid)
            todo.extend(children(pid))
        for pid in direct:  # reap our own (killed, or orphans re-parented to us that died)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if not live or time.monotonic() > deadline:
            return killed
        time.sleep(0.005)


def kill_session(sid: int, leader_start: int | None = None, *, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process of session ``sid`` (a run worker leads its own session, so this is
    everything it started that did not call ``setsid``), repeating until none is left. Scans /proc.

    Safe after the leader died: while any process of the session lives, the kernel does not hand
    the number ``sid`` to a new process. If a process with pid ``sid`` runs but did not start at
    ``leader_start``, the number was reused and nothing is killed."""
    if not os.path.isdir("/proc/self"):  # not Linux: the session leader's process group only
        try:
            os.killpg(sid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return []
    if leader_start is not None:
        leader = read_stat(sid)
        if leader is not None and leader.start_ticks != leader_start:
            return []
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        signalled = False
        for stat in processes():
            if stat.alive and stat.session == sid:
                try:
                    os.kill(stat.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    continue
                signalled = True
                killed.append(stat.pid)
        if not signalled:
            break
        time.sleep(0.005)
    return killed
