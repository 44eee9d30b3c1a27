"""What runs in a step container: one attempt of one step, started by the ``docker`` executor as
``python -m runyard_launcher_docker.step RUN_ID STEP_KEY ATTEMPT``.

The process opens the instance from its environment (``$RUNYARD_INSTANCE_YAML`` and
``$RUNYARD_HOME``, see :func:`.engine.worker_environment`), loads the run's job from its code
pointer, and runs the attempt with a :class:`~runyard.execution.step.StepRunner` whose events go
straight to storage. Its sink is closed (every event written) before the process reports its
outcome: the last line of its own stdout, ``runyard-step-outcome: {json}``, which the executor reads
from the container's output once it has exited. A container that ends without that line died, and
the executor says why.

SIGTERM (``docker stop``) interrupts the op like a terminated run worker does; resources are
torn down and the outcome still reported. The executor writes the host pid of the container's main
process on stdin once it has started it, so ``STEP_START`` names a pid that means something on the
engine's host (the process's own pid is only valid inside the container).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from typing import Any

OUTCOME_MARKER = "runyard-step-outcome: "
HOST_PID_WAIT_SECONDS = 10.0


class _Terminated(BaseException):
    """SIGTERM before the step runner was imported (it then raises its own RunTerminated)."""


def _terminated(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills outright
    try:
        from runyard.execution.step import RunTerminated
    except ImportError:  # pragma: no cover - runyard not importable: nothing to interrupt cleanly
        raise _Terminated() from None
    raise RunTerminated()


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


def _report(out: Any, outcome: dict[str, Any]) -> None:
    out.write(OUTCOME_MARKER + json.dumps(outcome, default=str) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not args[2].isdigit():
        print("usage: python -m runyard_launcher_docker.step RUN_ID STEP_KEY ATTEMPT", file=sys.stderr)
        return 2
    run_id, step_key, attempt = args[0], args[1], int(args[2])
    # the outcome goes to the container's stdout even while compute-log capture redirects fd 1
    out = os.fdopen(os.dup(1), "w")
    try:
        outcome = _run(run_id, step_key, attempt)
    except _Terminated:
        outcome = {"status": "FAILURE", "attempt": attempt, "error": "interrupted by termination"}
    _report(out, outcome)
    return 0


def _run(run_id: str, step_key: str, attempt: int) -> dict[str, Any]:
    from runyard.execution.events import EventEmitter, EventSink
    from runyard.execution.run_worker import outage_policy
    from runyard.execution.step import RunTerminated
    from runyard.instance.instance import Instance
    from runyard.storage.records import Event, EventType

    host_pid = _HostPid()

    class Emitter(EventEmitter):
        """The sink, with step-start events carrying the host pid (the container pid kept too)."""

        def __init__(self, sink: EventSink):
            super().__init__(sink.run_id)
            self.sink = sink
            self.started = False

        def emit_event(self, event: Event) -> None:
            if event.event_type in (EventType.STEP_START, EventType.STEP_RESTARTED):
                self.started = True
                event.data = {**event.data, "pid": host_pid.get(), "container_pid": os.getpid(),
                              "container": os.environ.get("HOSTNAME")}
            self.sink.emit_event(event)

    instance = Instance.open()
    sink = EventSink(instance.storage, run_id, outage=outage_policy(instance)).start()
    emitter = Emitter(sink)
    try:
        try:
            runner = _prepare(instance, run_id, emitter)
        except RunTerminated:
            return {"status": "FAILURE", "attempt": attempt, "error": "interrupted by termination"}
        except Exception as exc:  # noqa: BLE001 - a step that cannot load reports it as its failure
            message = f"the step container could not load the run's job: {type(exc).__name__}: {exc}"
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
                outcome = {"status": "FAILURE", "attempt": attempt, "error": "interrupted by termination"}
            finally:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # teardown is not interrupted again
                runner.teardown_resources()
        return outcome
    finally:
        sink.close(raise_errors=False)


def _prepare(instance: Any, run_id: str, emitter: Any) -> Any:
    from runyard.definitions.config import resolve_run_config
    from runyard.execution.plan import ExecutionPlan
    from runyard.execution.reexecution import external_outputs_for_run
    from runyard.execution.step import StepRunner
    from runyard.workspace.loader import load_definitions

    run = instance.get_run(run_id)
    job = load_definitions(run.code_pointer).get_job(run.job_name)
    resolved = resolve_run_config(job, run.run_config)
    plan = ExecutionPlan.build(job, run.step_keys_to_execute,
                               external_outputs=external_outputs_for_run(instance, run, job))
    return StepRunner(run=run, job=job, plan=plan, resolved=resolved, sink=emitter, home=instance.home,
                      compute_logs=instance.compute_log_manager)


if __name__ == "__main__":
    from runyard.execution.worker_main import exit_now

    # everything is written (events stored, outcome printed): the interpreter's own teardown would
    # only delay the container's exit, which the next step waits for
    exit_now(main())
