"""The run monitoring loop, every ``run_monitoring.poll_interval_seconds``: a run stuck STARTING or
CANCELING past its timeout has its worker terminated and is finished; a STARTED run past its
``runyard/max_runtime`` tag is terminated; every other in-progress run gets the launcher's health
check (a dead worker finishes the run). However a run is finished here, the steps it left open get a
``STEP_FAILURE`` saying why (:mod:`runyard.execution.open_steps`). Last, the launcher reconciles
what its workers left behind (:meth:`RunLauncher.reconcile`: containers of finished runs...)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..execution.open_steps import closing_events, open_steps_in_storage
from ..storage.records import IN_PROGRESS_STATUSES, EventType, RunFilter, RunRecord, RunStatus
from ..tags import MAX_RUNTIME_TAG

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")


@dataclass(frozen=True, kw_only=True)
class _Timeout:
    """A status a run must leave within a configured time, else it is ended as ``final``."""

    status: RunStatus
    since: EventType  # the event that put the run in ``status``
    setting: str  # the run_monitoring key holding the seconds
    final: RunStatus
    reason: str
    what: str


_TIMEOUTS = {t.status: t for t in (
    _Timeout(status=RunStatus.STARTING, since=EventType.RUN_STARTING, setting="start_timeout_seconds",
             final=RunStatus.FAILURE, reason="start_timeout", what="start"),
    _Timeout(status=RunStatus.CANCELING, since=EventType.RUN_CANCELING, setting="cancel_timeout_seconds",
             final=RunStatus.CANCELED, reason="cancel_timeout", what="finish canceling"),
)}


def run_monitoring(daemon: Daemon, now: float | None = None) -> list[tuple[str, str]]:
    """One monitoring pass; returns (run_id, what was done) pairs."""
    now = time.time() if now is None else now
    actions: list[tuple[str, str]] = []
    runs = daemon.storage.get_runs(RunFilter(statuses=sorted(IN_PROGRESS_STATUSES)))
    for run in runs:
        if not daemon.working:
            break
        try:
            action = _timed_out(daemon, run, now) or _over_max_runtime(daemon, run, now)
            if action is None and daemon.instance.check_run_health(run.run_id) == "dead":
                action = "dead"
            if action is not None:
                actions.append((run.run_id, action))
        except Exception:  # noqa: BLE001 - one run's trouble never stops the pass
            log.exception("monitoring run %s failed", run.run_id)
    if daemon.working:
        actions += _reconcile(daemon, runs)
    return actions


def _reconcile(daemon: Daemon, runs: list[RunRecord]) -> list[tuple[str, str]]:
    from ..launchers.base import ReconcileContext

    context = ReconcileContext(instance=daemon.instance, runs=runs)
    try:
        done = daemon.instance.run_launcher.reconcile(context)
    except Exception:  # noqa: BLE001 - the next pass tries again
        log.exception("the %s launcher's reconciliation failed", daemon.instance.run_launcher.name)
        return []
    finally:  # what was removed before a failure was removed all the same
        if daemon.metrics is not None:
            daemon.metrics.reconciled(daemon.instance.run_launcher.name, context.removals)
    for line in done:
        log.info("reconcile: %s", line)
    return [("", line) for line in done]


def _timed_out(daemon: Daemon, run: RunRecord, now: float) -> str | None:
    from ..launchers.base import TerminateRunContext

    timeout = _TIMEOUTS.get(run.status)
    if timeout is None:
        return None
    seconds = getattr(daemon.instance.settings.run_monitoring, timeout.setting)
    events = daemon.storage.get_events(run.run_id, event_types=[timeout.since])
    since = events[-1].timestamp if events else run.updated_at
    if now - since <= seconds:
        return None
    instance = daemon.instance
    reason, why = timeout.reason, ""
    if run.status == RunStatus.STARTING:
        waited = _start_wait_reason(daemon, run)
        if waited is not None:
            reason, why = waited[0], f" ({waited[1].rstrip('.')})"
    message = (f"Run did not {timeout.what} within {seconds:g}s (run_monitoring.{timeout.setting}){why}; "
               "its worker was terminated.")
    closing = closing_events(run.run_id, open_steps_in_storage(daemon.storage, run.run_id),
                             message.rstrip("."), reason)
    # finished first, then stopped: whatever the worker's launcher sees while it goes (a pod being
    # deleted) meets a finished run and cannot finish it a second way
    if not instance.transition(run, [timeout.status], timeout.final, message, data={"reason": reason},
                               events=closing):
        return None
    instance.run_launcher.terminate(TerminateRunContext(instance=instance, run=instance.get_run(run.run_id)))
    return reason


def _start_wait_reason(daemon: Daemon, run: RunRecord) -> tuple[str, str] | None:
    """The launcher's word on why the run has not started (a pod no node can take), if it has one."""
    from ..launchers.base import HealthCheckContext

    try:
        return daemon.instance.run_launcher.start_wait_reason(HealthCheckContext(instance=daemon.instance, run=run))
    except Exception:  # noqa: BLE001 - the plain start timeout then
        log.exception("asking the launcher why run %s has not started failed", run.run_id)
        return None


def _over_max_runtime(daemon: Daemon, run: RunRecord, now: float) -> str | None:
    if run.status != RunStatus.STARTED:
        return None
    limit = _float_tag(run.tags.get(MAX_RUNTIME_TAG))
    if limit is None or run.start_time is None or now - run.start_time <= limit:
        return None
    daemon.instance.report_engine_event(
        run.run_id, f"Run exceeded its max runtime of {limit:g}s ({MAX_RUNTIME_TAG} tag); terminating it.",
        level="WARNING", data={"reason": "max_runtime"})
    daemon.instance.terminate_run(run.run_id)
    return "max_runtime"


def _float_tag(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value))
    except ValueError:
        return None
