"""Test helpers for plugin authors and for runyard's own tests: waiting for a condition, local
process checks, reading a subprocess's output, and a throwaway instance home with definitions files
written on the fly (what the executor and launcher conformance suites build on).

Everything here is public and importable from :mod:`runyard.testing` itself::

    from runyard.testing import SuiteHome, pid_gone, wait_until

Process checks read Linux's /proc through :mod:`runyard.launchers.procinfo`.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..instance.instance import INSTANCE_FILE_NAME, Instance
from ..launchers import procinfo
from ..storage.records import FINISHED_STATUSES, Event, RunRecord

__all__ = ["PREAMBLE", "SuiteHome", "descendants", "kill_group", "live_children", "live_pids_in_group",
           "pid_gone", "processes_with_env", "read_value_after", "stop_processes_with_env", "storage_contents",
           "wait_until"]

#: what every definitions file written by a suite starts with
PREAMBLE = """\
import os
import sys
import time

from runyard import Config, Definitions, Failure, RetryPolicy, RetryRequested, job, op

OUT_DIR = {out_dir!r}


def record(name, value):
    \"\"\"Append one line to OUT_DIR/<name> (each step may run in its own process).\"\"\"
    with open(os.path.join(OUT_DIR, name), "a") as f:
        f.write(f"{{value}}\\n")


def wait_for_file(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)

"""


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, *, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``predicate`` every ``interval`` seconds until it returns something truthy and return
    that value; after ``timeout`` seconds raise :class:`AssertionError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pid_gone(pid: int) -> bool:
    """No such process runs any more (absent, or a zombie waiting to be reaped)."""
    stat = procinfo.read_stat(pid)
    return stat is None or not stat.alive


def live_pids_in_group(pgid: int) -> list[int]:
    """Every live (non-zombie) process whose process group is ``pgid``."""
    return [p.pid for p in procinfo.processes() if p.alive and p.pgrp == pgid]


def live_children(ppid: int) -> list[int]:
    """Every live (non-zombie) process whose parent is ``ppid``."""
    return [p.pid for p in procinfo.processes() if p.alive and p.ppid == ppid]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for p in procinfo.processes():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def processes_with_env(name: str, value: str) -> list[int]:
    """Every live process (of this user) whose environment, as it was when it started, has
    ``name=value``: a marker a test puts in a worker's environment finds everything the worker
    started, even processes that left its session or process group."""
    return [p.pid for p in procinfo.processes() if p.alive and procinfo.environ(p.pid).get(name) == value]


def stop_processes_with_env(name: str, value: str, *, grace: float = 5.0) -> list[int]:
    """End every process :func:`processes_with_env` finds for ``name=value`` (this one excepted):
    give them ``grace`` seconds to exit on their own (a run worker writing its last events), then
    SIGKILL the rest and wait until they are gone. Returns the pids that had to be killed — what a
    test's teardown calls before dropping the database or stopping the server those processes use,
    so none is left retrying against it."""
    def found() -> list[int]:
        return [pid for pid in processes_with_env(name, value) if pid != os.getpid()]

    deadline = time.monotonic() + grace
    while (left := found()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if left:
        wait_until(lambda: not found(), 30, what=f"processes {left} to end after SIGKILL")
    return left


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group ``pgid``; a group that is already gone is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_value_after(proc, marker: str, timeout: float = 60.0) -> str:
    """Read ``proc``'s stdout (text mode) line by line until one holds ``marker``; return the rest of
    that line, stripped. Fails with everything it read (and stderr) if ``proc`` exits first."""
    lines: list[str] = []

    def next_line():
        line = proc.stdout.readline()
        lines.append(line)
        if marker in line:
            return line.split(marker, 1)[1].strip()
        return proc.poll() is not None and "\0exited"

    found = wait_until(next_line, timeout=timeout, interval=0, what=f"{marker!r} on stdout")
    if found == "\0exited":
        raise AssertionError(f"exited {proc.returncode} before printing {marker!r}:\n{''.join(lines)}"
                             f"{proc.stderr.read() if proc.stderr else ''}")
    return found


def storage_contents(storage: Any, *, instigators: tuple[str, ...] = (), leases: tuple[str, ...] = (),
                     kv_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """What ``storage`` holds, as plain data two storages can be compared by: every run (ids, status,
    tags, times), its events (with their ids), its step stats, the ticks of ``instigators``, the
    ``leases`` and the ``kv_keys``. Checks that ``runyard instance migrate --from`` kept everything
    when an instance moves to (or from) a backend of yours."""
    runs = storage.get_runs()
    return {
        "runs": [(r.run_id, r.status, r.tags, r.job_name, r.created_at, r.start_time, r.end_time)
                 for r in runs],
        "events": {r.run_id: [(e.id, str(e.event_type), e.timestamp, e.message, e.step_key, e.data)
                              for e in storage.get_events(r.run_id)] for r in runs},
        "steps": {r.run_id: [st.to_dict() for st in storage.get_step_stats(r.run_id)] for r in runs},
        "ticks": {name: [(t.tick_time, str(t.status), t.run_ids) for t in storage.get_ticks(name)]
                  for name in instigators},
        "leases": {name: storage.get_lease(name) for name in leases},
        "kv": {key: storage.kv_get(key) for key in kv_keys},
    }


class SuiteHome:
    """A fresh instance home with its instance file, opened in this process."""

    def __init__(self, root: Path, settings: dict[str, Any] | None = None):
        self.root = Path(root)
        self.home = self.root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.out_dir = self.root / "out"
        self.out_dir.mkdir(exist_ok=True)
        self.instance_file = self.home / INSTANCE_FILE_NAME
        self.instance_file.write_text(yaml.safe_dump(settings or {}, sort_keys=False))
        self.instance = Instance.open(home=str(self.home), instance_file=str(self.instance_file))
        self._defs = 0

    def write_defs(self, source: str, name: str | None = None) -> Path:
        """A definitions file: :data:`PREAMBLE` (with ``OUT_DIR``, ``record``, ``wait_for_file``)
        followed by ``source`` (dedented)."""
        self._defs += 1
        path = self.root / (name or f"suite_defs_{self._defs}.py")
        path.write_text(PREAMBLE.format(out_dir=str(self.out_dir)) + textwrap.dedent(source).lstrip("\n"))
        return path

    def out_lines(self, name: str) -> list[str]:
        path = self.out_dir / name
        return path.read_text().splitlines() if path.exists() else []

    def load_job(self, path: Path, job_name: str):
        from ..workspace.loader import code_pointer_for, load_definitions

        pointer = code_pointer_for(python_file=str(path))
        return pointer, load_definitions(pointer).get_job(job_name)

    def create_run(self, path: Path, job_name: str, run_config: dict[str, Any]) -> tuple[RunRecord, Any]:
        """Validate and store a NOT_STARTED run of the job in ``path``; return it and the job."""
        from ..execution.api import prepare_run

        pointer, job = self.load_job(path, job_name)
        return prepare_run(self.instance, job, code_pointer=pointer, run_config=run_config), job

    def events(self, run_id: str, event_type: str | None = None, step_key: str | None = None) -> list[Event]:
        return [e for e in self.instance.storage.get_events(run_id, step_key=step_key)
                if event_type is None or str(e.event_type) == event_type]

    def types(self, run_id: str, step_key: str | None = None) -> list[str]:
        return [str(e.event_type) for e in self.events(run_id, step_key=step_key)]

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env.update(self.instance.worker_env())
        return env

    def wait_finished(self, run_id: str, timeout: float = 60.0) -> RunRecord:
        def finished():
            run = self.instance.get_run(run_id)
            return run if run.status in FINISHED_STATUSES else None

        return wait_until(finished, timeout=timeout, what=f"run {run_id} to finish")

    def describe(self, run_id: str) -> str:
        """The run's event log, for assertion messages."""
        return "\n".join(f"  {e.event_type} {e.step_key or '-'}: {e.message}" for e in self.events(run_id))

    def close(self) -> None:
        self.instance.dispose()
