"""What runs in a step container: one attempt of one step, started by the ``docker`` executor as
``python -m runyard_launcher_docker.step RUN_ID STEP_KEY ATTEMPT``.

The program is core's step process (:mod:`runyard.execution.step_process`: open the instance from
the environment, run the attempt with events straight to storage, report the outcome as the last
line of stdout, SIGTERM interrupts the op). What is the container's own: the executor writes the host
pid of the container's main process on stdin once it has started it, so ``STEP_START`` names a pid
that means something on the engine's host (the process's own pid is only valid inside the
container, kept as ``container_pid``).
"""

from __future__ import annotations

import os
import select
import sys
from typing import Any

from runyard.execution.step_process import OUTCOME_MARKER, run_as_main
from runyard.execution.step_process import main as _main

__all__ = ["OUTCOME_MARKER", "main"]

HOST_PID_WAIT_SECONDS = 10.0


class _HostPid:
    """The host pid the executor writes on stdin, read once, when the first event needs it."""

    def __init__(self) -> None:
        self._value: int | None = None
        self._read = False

    def get(self) -> int | None:
        if not self._read:
            self._read = True
            try:
                ready, _, _ = select.select([sys.stdin], [], [], HOST_PID_WAIT_SECONDS)
                line = sys.stdin.readline().strip() if ready else ""
                self._value = int(line) if line.isdigit() else None
            except (OSError, ValueError):
                self._value = None
        return self._value


def _stamp_with(host_pid: _HostPid) -> Any:
    def stamp() -> dict[str, Any]:
        return {"pid": host_pid.get(), "container_pid": os.getpid(), "container": os.environ.get("HOSTNAME")}

    return stamp


def _options() -> dict[str, Any]:
    return {"program": "runyard_launcher_docker.step", "where": "the step container",
            "stamp": _stamp_with(_HostPid())}


def main(argv: list[str] | None = None) -> int:
    return _main(argv, **_options())


if __name__ == "__main__":
    run_as_main(**_options())
