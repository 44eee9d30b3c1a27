"""The run worker: executes one stored run from start to finish.

``runyard execute-run RUN_ID`` (what launchers start) and ``runyard job execute`` (in the caller's
process) both end up in :func:`execute_run`. It moves the run to STARTED, loads the job from the
run's code pointer, builds the plan, hands it to the executor and finishes the run SUCCESS,
FAILURE or CANCELED — each a compare-and-set written with its event.

SIGTERM means "terminate": the run goes CANCELING, the current step is interrupted, resources are
torn down, and the run ends CANCELED.

A run that ends any other way than SUCCESS closes the steps it leaves open (:mod:`.open_steps`).
A worker that owns its process (``contain_processes``: a launched worker, ``runyard job execute``)
is a child subreaper and kills every process its run started before it writes the final status.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import RunyardError
from ..launchers import procinfo
from ..storage.records import FINISHED_STATUSES, STATUS_EVENT, Event, EventType, RunRecord, RunStatus
from .events import EventSink, OutagePolicy
from .open_steps import OpenSteps, closing_events
from .step import ResourceInitError, RunTerminated

#: seconds a worker stopped by a SIGTERM runyard did not ask for (the run is not CANCELING: a pod
#: deleted by its Job's deadline or by hand, a node drained) waits, after interrupting its op, for its
#: launcher to finish the run with the reason before it calls the run canceled. Container launchers
#: that watch their workers set it in the worker's environment (the k8s launcher: 2); default 0.
STOP_REASON_WAIT_ENV = "RUNYARD_STOP_REASON_WAIT_SECONDS"

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.job import JobDefinition
    from ..instance.instance import Instance


class _Termination:
    """SIGTERM handling: remember the request and interrupt the main thread while steps run."""

    def __init__(self) -> None:
        self.requested = False
        self.interruptible = False
        self._previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.interruptible:
            self.interruptible = False  # one interruption; cleanup must not be interrupted again
            raise RunTerminated()


class _RunScope:
    """What a run must not leave behind: open steps, and (when the worker owns its process) the
    processes its steps started. ``keep``: the children this process had before the run."""

    def __init__(self, run_id: str, contain_processes: bool) -> None:
        self.run_id = run_id
        self.open_steps = OpenSteps()
        self.contain_processes = contain_processes and procinfo.become_subreaper()
        self.keep = procinfo.child_snapshot() if self.contain_processes else frozenset()

    def kill_processes(self) -> None:
        if self.contain_processes:
            procinfo.kill_tree(self.keep)

    def close(self, sink: EventSink, reason: str, cause: str) -> None:
        """Kill what is left and close the open steps (their events go with the final status)."""
        self.kill_processes()
        for event in closing_events(self.run_id, self.open_steps.keys, reason, cause):
            sink.emit_event(event)


def execute_run(instance: Instance, run_id: str, *, job: JobDefinition | None = None,
                listeners: list[Callable[[Event], None]] | None = None,
                contain_processes: bool = False) -> RunRecord:
    """Run a stored run (NOT_STARTED or STARTING) to a final status and return it.

    ``contain_processes``: this process exists for this run (a launched worker, ``runyard job
    execute``), so it may become a child subreaper and kill, at each in-process step's end and at
    the run's end, every process the run started (processes it had before the run are left alone)."""
    run = instance.get_run(run_id)
    if run.status not in (RunStatus.NOT_STARTED, RunStatus.STARTING):
        raise RunyardError(f"Run {run_id} is {run.status}; a run worker only executes a run that is "
                           "NOT_STARTED or STARTING (it may already have been executed).")
    sink = EventSink(instance.storage, run_id, outage=outage_policy(instance))
    scope = _RunScope(run_id, contain_processes)
    sink.listeners.extend([scope.open_steps, *(listeners or [])])
    term = _Termination()
    term.install()
    sink.start()
    try:
        result = _execute(instance, run, job, sink, term, scope)
    except BaseException:
        sink.close(raise_errors=False)  # the run's own error is the one to report
        raise
    else:
        sink.close()
        return result
    finally:
        term.uninstall()
        scope.kill_processes()


def outage_policy(instance: Instance) -> OutagePolicy:
    """``run_worker:`` of the instance file as the event sink's outage policy."""
    settings = instance.settings.run_worker
    spill_dir = os.path.join(instance.home, os.path.expanduser(settings.spill_dir or "spill"))
    return OutagePolicy(tolerance_seconds=settings.outage_tolerance_seconds,
                        max_buffered_events=settings.max_buffered_events, spill_dir=spill_dir)


def _transition(instance: Instance, run: RunRecord, sink: EventSink, expected: list[RunStatus],
                status: RunStatus, message: str, data: dict[str, Any] | None = None) -> bool:
    """A status change carrying every buffered event; if the change is refused the events are
    still stored."""

    tried: list[bool] = []

    def write(batch: list[Event]) -> bool:
        retry = bool(tried)
        tried.append(True)
        ok = instance.transition(run, expected, status, message, data=data, events=batch)
        if not ok and retry and instance.get_run(run.run_id).status == status:
            return True  # an attempt that reported an error had committed after all (with the events)
        if not ok and batch:
            instance.storage.store_events(batch)
        return ok

    shown = Event(run_id=run.run_id, event_type=STATUS_EVENT[status], message=message,
                  level="ERROR" if status == RunStatus.FAILURE else "INFO", data=data or {})
    # storage unavailable: waits out the outage, or gives up with the status event in the spill file
    ok = sink.write_with(write, pending=[shown])
    if ok and sink.listeners:  # live viewers see status changes too
        for listener in sink.listeners:
            listener(shown)
    return ok


def _finish(instance: Instance, run: RunRecord, sink: EventSink, scope: _RunScope, status: RunStatus,
            message: str, data: dict[str, Any] | None = None) -> bool:
    scope.close(sink, f"the run ended {status}: {message.rstrip('.')}", "run_failed")
    expected = [RunStatus.STARTED, RunStatus.CANCELING, RunStatus.STARTING, RunStatus.NOT_STARTED]
    if status == RunStatus.SUCCESS:  # a run being canceled never turns into a success
        expected.remove(RunStatus.CANCELING)
    return _transition(instance, run, sink, expected, status, message, data)


def _execute(instance: Instance, run: RunRecord, job: JobDefinition | None, sink: EventSink,
             term: _Termination, scope: _RunScope) -> RunRecord:
    from ..component import ComponentContext, build_component
    from ..definitions.config import resolve_run_config, validate_executor
    from ..executors.base import ExecuteContext
    from ..workspace.loader import load_definitions
    from .plan import PLAN_DATA_KEY, ExecutionPlan
    from .reexecution import external_outputs_for_run
    from .step import StepRunner

    started = _transition(instance, run, sink, [RunStatus.NOT_STARTED, RunStatus.STARTING],
                          RunStatus.STARTED, f"Started run worker (pid {os.getpid()}).", {"pid": os.getpid()})
    if not started:
        current = instance.get_run(run.run_id)
        raise RunyardError(f"Run {run.run_id} could not be started: it is {current.status}.")
    run = sink.call(lambda: instance.get_run(run.run_id))
    runner = None
    try:
        term.interruptible = True
        try:
            if job is None:
                job = load_definitions(run.code_pointer).get_job(run.job_name)
            resolved = resolve_run_config(job, run.run_config)
            executor_cls, executor_config = validate_executor(resolved)
            plan = ExecutionPlan.build(job, run.step_keys_to_execute,
                                       external_outputs=external_outputs_for_run(instance, run, job))
        except RunyardError as exc:
            _finish(instance, run, sink, scope, RunStatus.FAILURE, f"Could not prepare the run: {exc}",
                    {"error": str(exc), "traceback": getattr(exc, "user_traceback", None)})
            return sink.call(lambda: instance.get_run(run.run_id))
        executor = build_component(executor_cls, executor_config, ComponentContext(
            home=instance.home, instance_file=instance.instance_file, name=resolved.executor_name))
        runner = StepRunner(run=run, job=job, plan=plan, resolved=resolved, sink=sink, home=instance.home,
                            compute_logs=instance.compute_log_manager, storage=instance.storage_unchecked())
        sink.emit(EventType.ENGINE_EVENT, f"Executing {len(plan.order)} step(s) with the {executor.name} "
                  "executor.", data={"executor": executor.name, "steps": len(plan.order),
                                     PLAN_DATA_KEY: plan.to_data(), **plan.data_flags()})
        if not executor.runs_steps_out_of_process:
            try:
                runner.init_resources()
            except ResourceInitError as exc:
                _finish(instance, run, sink, scope, RunStatus.FAILURE, str(exc),
                        {"error": str(exc), "traceback": exc.traceback})
                return sink.call(lambda: instance.get_run(run.run_id))
        context = ExecuteContext(run=run, job=job, plan=plan, resolved=resolved, instance=instance,
                                 events=sink, step_runner=runner, is_terminating=lambda: term.requested,
                                 contain_processes=scope.contain_processes)
        result = executor.execute(context)
        term.interruptible = False
    except RunTerminated:
        term.interruptible = False
        return _cancel(instance, run, sink, scope, runner, "the run worker received SIGTERM", external=True)
    except BaseException as exc:
        term.interruptible = False
        if runner is not None:
            runner.teardown_resources()
        _finish(instance, run, sink, scope, RunStatus.FAILURE, f"Run worker crashed: {type(exc).__name__}: {exc}",
                {"error": traceback.format_exc()})
        if isinstance(exc, Exception):
            return sink.call(lambda: instance.get_run(run.run_id))
        raise
    if term.requested or result.interrupted:
        return _cancel(instance, run, sink, scope, runner, "termination was requested")
    runner.teardown_resources()
    if result.succeeded:
        not_produced = (f", {len(result.not_produced)} skipped (an input was not produced)"
                        if result.not_produced else "")
        _finish(instance, run, sink, scope, RunStatus.SUCCESS,
                f"Finished run of job '{run.job_name}': {len(result.outcomes)} step(s) succeeded{not_produced}.")
    else:
        failed = result.failed
        _finish(instance, run, sink, scope, RunStatus.FAILURE,
                f"Run of job '{run.job_name}' failed: step(s) {', '.join(failed)} failed"
                + (f", {len(result.skipped)} skipped." if result.skipped else "."),
                {"failed_steps": failed, "skipped_steps": result.skipped})
    return sink.call(lambda: instance.get_run(run.run_id))


def _cancel(instance: Instance, run: RunRecord, sink: EventSink, scope: _RunScope, runner: Any,
            why: str, *, external: bool = False) -> RunRecord:
    if external and _finished_by_launcher(instance, run, sink):
        if runner is not None:
            runner.teardown_resources()
        return sink.call(lambda: instance.get_run(run.run_id))
    _transition(instance, run, sink, [RunStatus.STARTED, RunStatus.STARTING], RunStatus.CANCELING,
                f"Canceling: {why}.")
    if runner is not None:
        runner.teardown_resources()
    scope.close(sink, f"the run was canceled ({why})", "run_canceled")
    _transition(instance, run, sink, [RunStatus.CANCELING], RunStatus.CANCELED,
                "Run canceled; steps in flight were interrupted.")
    current = sink.call(lambda: instance.get_run(run.run_id))
    if current.status not in FINISHED_STATUSES:  # pragma: no cover - defensive
        raise RunyardError(f"Run {run.run_id} could not be canceled cleanly (now {current.status}).")
    return current


def _finished_by_launcher(instance: Instance, run: RunRecord, sink: EventSink) -> bool:
    """After a SIGTERM runyard did not ask for: wait up to ``$RUNYARD_STOP_REASON_WAIT_SECONDS`` for
    the launcher to finish the run with why (``deadline_exceeded``, ``job_deleted``...). True if it did."""
    import time

    try:
        wait = max(0.0, min(float(os.environ.get(STOP_REASON_WAIT_ENV) or 0), 30.0))
    except ValueError:
        wait = 0.0
    deadline = time.monotonic() + wait
    while True:
        sink.flush()
        current = sink.call(lambda: instance.get_run(run.run_id))
        if current.status in FINISHED_STATUSES:
            return True
        if current.status != RunStatus.STARTED or time.monotonic() >= deadline:
            return False  # CANCELING: runyard asked after all; or nobody said why: a plain cancel
        time.sleep(0.1)
