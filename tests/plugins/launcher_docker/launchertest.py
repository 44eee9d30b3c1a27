"""Helpers of the docker launcher's own tests (test_launcher*.py): the jobs they run, homes with
the settings each test needs, and real ``runyard`` CLI and daemon subprocesses against them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from dockertest import instance_label

from runyard.storage.records import EventType, RunStatus
from runyard.testing import SuiteHome, wait_until

JOBS = """
class WaitConfig(Config):
    go_file: str = ""


@op
def hello(context) -> int:
    record("hello", os.getpid())
    return 1


@job
def quick():
    hello()


@op
def wait(config: WaitConfig) -> None:
    record("waiting", os.getpid())
    wait_for_file(config.go_file)


@job
def waiting():
    wait()


@op
def hog() -> None:
    record("hogging", os.getpid())
    held = b"x" * (300 << 20)  # written, so the pages really count against the limit
    record("held", len(held))


@job
def hungry():
    hog()


defs = Definitions(jobs=[quick, waiting, hungry])
"""


def runyard_env(home: SuiteHome, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_HOME=str(home.home), PYTHONUNBUFFERED="1", **extra)
    return env


def cli(home: SuiteHome, *args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m runyard ARGS`` against the home, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "runyard", *map(str, args)], cwd=home.root,
                          env=env or runyard_env(home), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class DaemonProcess:
    """A real ``runyard daemon`` subprocess in its own session, stopped with SIGTERM (SIGKILL after
    a bound) by :meth:`stop`, or killed hard by :meth:`kill`."""

    def __init__(self, home: SuiteHome, env: dict[str, str] | None = None):
        self.home = home
        self.stderr_path = home.root / f"daemon-{os.getpid()}-{id(self)}.log"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "runyard", "daemon"], cwd=home.root,
                                         env=env or runyard_env(home), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.stderr_path.read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def home_settings(storage: dict[str, Any] | None, launcher: dict[str, Any], *, queued: bool = False,
                  poll: float = 0.3, lease: float | None = None) -> dict[str, Any]:
    """An instance file's settings: the storage (None: SQLite in the home), the launcher, run
    monitoring every ``poll`` seconds, the queued coordinator if asked for."""
    settings: dict[str, Any] = {}
    if storage is not None:
        settings["storage"] = storage
    settings["run_launcher"] = launcher
    settings["run_monitoring"] = {"poll_interval_seconds": poll}
    if queued:
        settings["run_coordinator"] = {"queued": {"dequeue_interval_seconds": 0.2}}
    if lease is not None:
        settings["daemon"] = {"lease_seconds": lease, "heartbeat_interval_seconds": 0.5}
    return settings


def failure(home: SuiteHome, run_id: str):
    """The run's single RUN_FAILURE event."""
    events = home.events(run_id, str(EventType.RUN_FAILURE))
    assert len(events) == 1, f"expected one RUN_FAILURE:\n{home.describe(run_id)}"
    return events[0]


def outcomes(home: SuiteHome, run_id: str) -> list[str]:
    ends = {str(EventType.RUN_SUCCESS), str(EventType.RUN_FAILURE), str(EventType.RUN_CANCELED)}
    return [t for t in home.types(run_id) if t in ends]


def output_events(home: SuiteHome, run_id: str) -> list[Any]:
    from runyard_launcher_docker.exits import OUTPUT_EVENT_KIND

    return [e for e in home.events(run_id, str(EventType.ENGINE_EVENT)) if e.data.get("kind") == OUTPUT_EVENT_KIND]


def wait_no_container(client, home: SuiteHome, timeout: float = 15) -> None:
    def gone() -> bool:  # sparse: a container removed while listed is not an error
        return not client.containers.list(all=True, sparse=True, filters={"label": instance_label(home.instance)})

    wait_until(gone, timeout=timeout, interval=0.1, what="the run's containers to be removed")


def wait_status(home: SuiteHome, run_id: str, status: RunStatus, timeout: float = 60):
    run = home.wait_finished(run_id, timeout=timeout)
    assert run.status == status, home.describe(run_id)
    return run


def go_file(home: SuiteHome) -> Path:
    return home.out_dir / "go"

