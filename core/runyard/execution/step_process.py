"""A step process: one attempt of one step in a process (a container, a pod) of its own, started by
an executor that runs each step elsewhere (``docker``, ``k8s``) as ``python -m <its module> RUN_ID
STEP_KEY ATTEMPT``.

The process opens the instance from its environment (``$RUNYARD_INSTANCE_YAML`` and
``$RUNYARD_HOME``), loads the run's job from its code pointer, and runs the attempt with a
:class:`~runyard.execution.step.StepRunner` whose events go straight to storage. Its sink is closed
(every event written) before the process reports its outcome: the last line of its own stdout,
``runyard-step-outcome: {json}`` (:func:`outcome_line`), which the executor reads from the
container's or pod's output once it has ended (:func:`parse_outcome`). A process that ends without
that line died, and the executor says why.

SIGTERM (``docker stop``, a pod's deletion) interrupts the op like a terminated run worker does;
resources are torn down and the outcome still reported.

What differs between executors is small and passed to :func:`main`: the program's name (for its
usage line), what the process is called in a load error ("the step container"), and ``stamp``, the
facts ``STEP_START`` and ``STEP_RESTARTED`` carry about where the attempt runs (the ``docker``
executor's host pid, the ``k8s`` executor's pod name). ``python -m runyard.execution.step_process``
runs it with the process's own pid.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .step import StepOutcome

OUTCOME_MARKER = "runyard-step-outcome: "
#: ``stamp()``: the data merged into ``STEP_START``/``STEP_RESTARTED`` events (called once per event)
Stamp = Callable[[], dict[str, Any]]


class _Terminated(BaseException):
    """SIGTERM before the step runner was imported (it then raises its own RunTerminated)."""


def _terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills outright
    try:
        from .step import RunTerminated
    except ImportError:  # pragma: no cover - runyard half-importable: nothing to interrupt cleanly
        raise _Terminated() from None
    raise RunTerminated()


#: the error of a step outcome whose op a SIGTERM interrupted (the run terminated, or the step's
#: container or pod stopped from outside, which an executor can tell apart)
INTERRUPTED = "interrupted by termination"


def _interrupted(attempt: int) -> dict[str, Any]:
    return {"status": "FAILURE", "attempt": attempt, "error": INTERRUPTED}


# ---- the outcome line ------------------------------------------------------------------------------------
def outcome_line(outcome: dict[str, Any]) -> str:
    return OUTCOME_MARKER + json.dumps(outcome, default=str) + "\n"


def parse_outcome(output: str, step_key: str, attempt: int) -> StepOutcome | None:
    """The outcome a step process reported in ``output`` (the end of its stdout), or None when it
    reported none (it died first) or the line is damaged."""
    from ..storage.records import StepStatus
    from .step import StepOutcome

    for line in reversed(output.splitlines()):
        if line.startswith(OUTCOME_MARKER):
            try:
                data = json.loads(line[len(OUTCOME_MARKER):])
                return StepOutcome(step_key, StepStatus(data["status"]), int(data.get("attempt", attempt)),
                                   retry_delay=float(data.get("retry_delay") or 0.0),
                                   max_retries=int(data.get("max_retries") or 0), error=data.get("error"),
                                   duration=float(data.get("duration") or 0.0), data=data.get("data") or {})
            except (ValueError, KeyError, TypeError):
                return None
    return None


# ---- the program -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None, *, program: str = "runyard.execution.step_process",
         where: str = "the step process", stamp: Stamp | None = None) -> int:
    """Run ``RUN_ID STEP_KEY ATTEMPT`` (``argv``, default ``sys.argv[1:]``); print the outcome line.
    Exit code 0 once an outcome is reported (the step's failure included), 2 on a usage error."""
    signal.signal(signal.SIGTERM, _terminated)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not args[2].isdigit():
        print(f"usage: python -m {program} RUN_ID STEP_KEY ATTEMPT", file=sys.stderr)
        return 2
    run_id, step_key, attempt = args[0], args[1], int(args[2])
    # the outcome goes to the process's stdout even while compute-log capture redirects fd 1
    out = os.fdopen(os.dup(1), "w")
    try:
        outcome = _run(run_id, step_key, attempt, where=where, stamp=stamp or _own_pid)
    except _Terminated:
        outcome = _interrupted(attempt)
    out.write(outcome_line(outcome))
    out.flush()
    return 0


def _own_pid() -> dict[str, Any]:
    return {"pid": os.getpid()}


def _run(run_id: str, step_key: str, attempt: int, *, where: str, stamp: Stamp) -> dict[str, Any]:
    from ..instance.instance import Instance
    from ..storage.records import Event, EventType
    from .events import EventEmitter, EventSink
    from .run_worker import outage_policy
    from .step import RunTerminated

    class Emitter(EventEmitter):
        """The sink, with step-start events stamped with where the attempt runs."""

        def __init__(self, sink: EventSink):
            super().__init__(sink.run_id)
            self.sink = sink

        def emit_event(self, event: Event) -> None:
            if event.event_type in (EventType.STEP_START, EventType.STEP_RESTARTED):
                event.data = {**event.data, **stamp()}
            self.sink.emit_event(event)

    instance = Instance.open()
    sink = EventSink(instance.storage, run_id, outage=outage_policy(instance)).start()
    emitter = Emitter(sink)
    try:
        try:
            runner = _prepare(instance, run_id, emitter)
        except RunTerminated:
            return _interrupted(attempt)
        except Exception as exc:  # noqa: BLE001 - a step that cannot load reports it as its failure
            message = f"{where} could not load the run's job: {type(exc).__name__}: {exc}"
            emitter.emit(EventType.STEP_FAILURE, f"Step '{step_key}' failed: {message}", step_key=step_key,
                         level="ERROR", data={"error": message, "reason": "load_error", "attempt": attempt + 1})
            return {"status": "FAILURE", "attempt": attempt, "error": message}
        with runner.capture_logs(step_key, attempt):
            try:
                result = runner.run_attempt(step_key, attempt)
                outcome = {"status": result.status.value, "attempt": result.attempt,
                           "retry_delay": result.retry_delay, "max_retries": result.max_retries,
                           "error": result.error, "duration": result.duration, "data": result.data}
            except RunTerminated:  # run_attempt reported the interruption when it had started
                outcome = _interrupted(attempt)
            finally:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # teardown is not interrupted again
                runner.teardown_resources()
        return outcome
    finally:
        sink.close(raise_errors=False)


def _prepare(instance: Any, run_id: str, emitter: Any) -> Any:
    from ..definitions.config import resolve_run_config
    from ..workspace.loader import load_definitions
    from .plan import ExecutionPlan
    from .reexecution import external_outputs_for_run
    from .step import StepRunner

    run = instance.get_run(run_id)
    job = load_definitions(run.code_pointer).get_job(run.job_name)
    resolved = resolve_run_config(job, run.run_config)
    plan = ExecutionPlan.build(job, run.step_keys_to_execute,
                               external_outputs=external_outputs_for_run(instance, run, job))
    return StepRunner(run=run, job=job, plan=plan, resolved=resolved, sink=emitter, home=instance.home,
                      compute_logs=instance.compute_log_manager, storage=instance.storage)


def run_as_main(**kwargs: Any) -> None:
    """``main(**kwargs)``, then leave at once: everything is written (events stored, outcome printed)
    and the interpreter's own teardown would only delay the container's exit, which the next step
    waits for."""
    from .worker_main import exit_now

    exit_now(main(**kwargs))


if __name__ == "__main__":
    run_as_main()
