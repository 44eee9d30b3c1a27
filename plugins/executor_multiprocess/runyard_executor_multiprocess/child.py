"""What runs inside a step process: one attempt of one step, reported over a pipe."""

from __future__ import annotations

import signal
from typing import Any

from runyard.execution.events import EventEmitter
from runyard.execution.step import RunTerminated, StepOutcome, StepRunner
from runyard.launchers import procinfo
from runyard.storage.records import Event, StepStatus


class PipeEmitter(EventEmitter):
    """Forwards each event to the run worker, whose sink writes them in batches."""

    def __init__(self, conn: Any, run_id: str):
        super().__init__(run_id)
        self.conn = conn

    def emit_event(self, event: Event) -> None:
        self.conn.send(("event", event))


def _raise_terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills outright
    raise RunTerminated()


def run_step_attempt(conn: Any, step_key: str, attempt: int, runner_args: dict[str, Any]) -> None:
    """Run the attempt with a fresh StepRunner (resources are set up per step process).

    The process's stdout and stderr go to the step's compute log files for its whole life
    (resource setup and teardown included) when the instance captures compute logs.

    The step process is a child subreaper and, once resources are torn down, kills every process
    the attempt started (orphaned daemons included) before it reports the outcome."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    procinfo.become_subreaper()
    emitter = PipeEmitter(conn, runner_args["run"].run_id)
    runner = StepRunner(sink=emitter, **runner_args)
    with runner.capture_logs(step_key, attempt):
        try:
            outcome = runner.run_attempt(step_key, attempt)
        except RunTerminated:  # run_attempt already reported the interruption
            outcome = StepOutcome(step_key, StepStatus.FAILURE, attempt, error="interrupted by termination")
        finally:
            try:
                runner.teardown_resources()
            finally:
                procinfo.kill_tree()
    conn.send(("outcome", outcome))
    conn.close()
