"""The step process: runs one attempt of one step and reports over a pipe to the run worker."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from runyard.execution.events import EventEmitter
from runyard.storage.records import Event


class PipeEmitter(EventEmitter):
    """Forwards each event to the run worker, whose sink writes them in batches."""

    def __init__(self, conn: Any, run_id: str):
        super().__init__(run_id)
        self.conn = conn

    def emit_event(self, event: Event) -> None:
        self.conn.send(("event", event))


def _die_with_parent() -> None:
    """Linux: get SIGKILL if the fork server (our parent) goes away, so no step outlives its run."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_step_process(conn: Any, payload: dict[str, Any]) -> None:
    """Entry point of a step process (target of a multiprocessing Process)."""
    _die_with_parent()
    signal.signal(signal.SIGTERM, _raise_terminated)
    from runyard.definitions.config import resolve_run_config
    from runyard.execution.plan import ExecutionPlan
    from runyard.execution.step import RunTerminated, StepOutcome, StepRunner
    from runyard.storage.records import CodePointer, RunRecord
    from runyard.workspace.loader import load_definitions

    run = RunRecord(**{**payload["run"], "code_pointer": CodePointer.from_dict(payload["run"]["code_pointer"])})
    step_key, attempt = payload["step_key"], payload["attempt"]
    emitter = PipeEmitter(conn, run.run_id)
    runner = None
    try:
        job = load_definitions(run.code_pointer).get_job(run.job_name)
        resolved = resolve_run_config(job, run.run_config)
        plan = ExecutionPlan.build(job, run.step_keys_to_execute,
                                   external_outputs={tuple(k): v for k, v in payload["external_outputs"]})
        runner = StepRunner(run=run, job=job, plan=plan, resolved=resolved, sink=emitter, home=payload["home"])
        outcome = runner.run_attempt(step_key, attempt)
    except RunTerminated:  # run_attempt already reported the interruption
        outcome = StepOutcome(step_key, "FAILURE", attempt, error="interrupted by termination")
    except BaseException as exc:  # noqa: BLE001 - everything must come back as an outcome
        import traceback

        from runyard.storage.records import EventType

        message = f"step process failed before running the op: {type(exc).__name__}: {exc}"
        emitter.emit(EventType.STEP_FAILURE, f"Step '{step_key}' failed: {message}", step_key=step_key,
                     level="ERROR", data={"error": message, "traceback": traceback.format_exc(),
                                          "attempt": attempt + 1})
        outcome = StepOutcome(step_key, "FAILURE", attempt, error=message)
    finally:
        if runner is not None:
            runner.teardown_resources()
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(("outcome", outcome))
    conn.close()
    os._exit(0)


def _raise_terminated(signum: int, frame: Any) -> None:
    from runyard.execution.step import RunTerminated

    raise RunTerminated()
