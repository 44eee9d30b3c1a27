"""The run retries loop, every ``run_retries.interval_seconds`` while ``run_retries.enabled``: a run
that ended FAILURE for a reason its settings retry is re-executed as a new run (``from_failure`` or
``all_steps``), submitted through the run coordinator like any launch.

Its own loop rather than a part of run monitoring: monitoring finishes runs whose workers died or
timed out; retrying starts new runs from finished ones, needs the workspace's code locations (a
retry is planned on the job snapshot a code server serves, the daemon never imports user code) and
has its own switch and interval. A failure that monitoring records is retried on this loop's next
pass.

Which runs: a failure's reason is the ``data["reason"]`` of its ``RUN_FAILURE`` event (``oom_killed``,
``start_timeout``, ``image_not_found``...), else :data:`OP_FAILURE` when steps failed, else
:data:`NO_REASON`. ``run_retries.retry_on_reasons`` (or the run's ``runyard/retry_on_reasons`` tag)
lists the reasons retried, ``retry_on_op_failure: false`` never retries op failures, and
``max_retries`` (or the ``runyard/max_retries`` tag) bounds the ``runyard/retry_number`` a retry
gets. A CANCELED run is never retried: only FAILURE runs are looked at.

Exactly once, however many daemons or passes try: a retry's run id is derived from the failed run's
(:func:`retry_run_id`), so storage's primary key holds one retry per failed run; the engine event on
the failed run ("Retried as run ...") is stored in the retry's own transaction. A pass that finds
the retry already stored leaves it, except that it submits one left NOT_STARTED by a daemon that
died in between (the submission is a compare-and-set, so two daemons never both submit it). A
failure that cannot be retried for good (its run config no longer validates, the daemon has no code
locations) gets one engine event saying why, guarded by a run key claimed once in storage.

Which failures a pass looks at: those whose run changed after a cursor kept in storage (a
key-value entry), less :data:`OVERLAP_SECONDS`, so a failure committed late or stamped by a host
whose clock lags is still seen. The cursor starts at the first pass: enabling retries never retries
the failures of before. A failure whose retry cannot be made yet (its code location is not
answering) holds the cursor back and is tried on every pass for :data:`GIVE_UP_SECONDS`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidTransitionError, RunyardError
from ..storage.records import Event, EventType, RunFilter, RunStatus
from ..tags import MAX_RETRIES_TAG, RETRY_NUMBER_TAG, RETRY_ON_REASONS_TAG

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.settings import RunRetriesSettings
    from ..storage.base import RunStorage
    from ..storage.records import RunRecord
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")

#: the reason of a run that failed because steps failed (its RUN_FAILURE names failed steps, no reason)
OP_FAILURE = "step_failure"
#: the reason of a failure that names none (the worker could not prepare the run, or crashed)
NO_REASON = "run_error"
#: the key-value entry holding the loop's cursor (epoch seconds of the last change looked at)
CURSOR_KEY = "runyard/run-retries/cursor"
#: how far before its cursor a pass looks again
OVERLAP_SECONDS = 60.0
#: how long a failure whose retry cannot be made yet is tried again before it is given up
GIVE_UP_SECONDS = 3600.0
#: the run-key namespace that records, once, that a failed run was given up
GIVE_UP_INSTIGATOR = "runyard/run-retries"

_NAMESPACE = uuid.UUID("5d1f9a52-3c1e-4c39-9a43-8f0a4b7e2c61")


def retry_run_id(run_id: str) -> str:
    """The id of the retry of run ``run_id``: the same in every process, so storage holds it once."""
    return uuid.uuid5(_NAMESPACE, f"retry:{run_id}").hex


def failure_reason(storage: RunStorage, run: RunRecord) -> str:
    """Why a FAILURE run failed, as the reason code retries are configured by."""
    events = storage.get_events(run.run_id, event_types=[str(EventType.RUN_FAILURE)])
    data = (events[-1].data or {}) if events else {}
    reason = data.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    return OP_FAILURE if data.get("failed_steps") else NO_REASON


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """What applies to one run: the settings, with its ``runyard/`` retry tags over them.
    ``reasons`` None retries every reason."""

    max_retries: int
    reasons: frozenset[str] | None
    retry_on_op_failure: bool

    @classmethod
    def of(cls, run: RunRecord, settings: RunRetriesSettings) -> RetryPolicy:
        max_retries = settings.max_retries
        tag = run.tags.get(MAX_RETRIES_TAG)
        if tag is not None:
            try:
                max_retries = max(0, int(str(tag).strip()))
            except ValueError:
                log.warning("run %s: tag %s=%r is not an integer; using run_retries.max_retries (%d)",
                            run.run_id, MAX_RETRIES_TAG, tag, settings.max_retries)
        reasons = frozenset(settings.retry_on_reasons) if settings.retry_on_reasons is not None else None
        tag = run.tags.get(RETRY_ON_REASONS_TAG)
        if tag is not None:
            listed = frozenset(r.strip() for r in str(tag).split(",") if r.strip())
            reasons = None if "*" in listed else listed
        return cls(max_retries=max_retries, reasons=reasons, retry_on_op_failure=settings.retry_on_op_failure)

    def retries(self, reason: str) -> bool:
        if reason == OP_FAILURE and not self.retry_on_op_failure:
            return False
        return self.reasons is None or reason in self.reasons


def run_retries(daemon: Daemon, now: float | None = None) -> list[tuple[str, str]]:
    """One pass. Returns (failed run id, retry run id) for every failed run it looked at that is
    retried: whose retry it stored now, or found stored (by an earlier pass or another daemon)."""
    settings = daemon.instance.settings.run_retries
    storage = daemon.storage
    now = time.time() if now is None else now
    stored = storage.kv_get(CURSOR_KEY)
    cursor = float(stored) if stored else now
    failed = storage.get_runs(RunFilter(statuses=[RunStatus.FAILURE], updated_after=cursor - OVERLAP_SECONDS))
    retried: list[tuple[str, str]] = []
    held_back: float | None = None
    for run in sorted(failed, key=lambda r: r.updated_at):
        if not daemon.working:
            return retried  # the cursor stays: the next leader looks at these again
        try:
            outcome = _consider(daemon, run, settings)
        except Exception:  # noqa: BLE001 - one run's trouble never stops the pass; tried again
            log.exception("retrying run %s failed", run.run_id)
            outcome = None
        if outcome is None:  # not possible yet: try again on the next passes, for a while
            if now - (run.end_time or run.updated_at) < GIVE_UP_SECONDS:
                held_back = run.updated_at if held_back is None else min(held_back, run.updated_at)
            else:
                _give_up(daemon, run, f"its retry could not be made for {GIVE_UP_SECONDS:g}s")
        elif outcome:
            retried.append((run.run_id, outcome))
    storage.kv_set(CURSOR_KEY, repr(max(cursor, now) if held_back is None else min(now, held_back)))
    return retried


class _Never(Exception):
    """The retry of a run can never be made; the message says why."""


def _consider(daemon: Daemon, run: RunRecord, settings: RunRetriesSettings) -> str | None:
    """Retry ``run`` if its policy says so. Returns the retry's run id, "" when it is not retried,
    or None when the retry cannot be made yet."""
    storage = daemon.storage
    policy = RetryPolicy.of(run, settings)
    attempt = _retry_number(run) + 1
    if attempt > policy.max_retries:
        return ""
    reason = failure_reason(storage, run)
    if not policy.retries(reason):
        return ""
    new_id = retry_run_id(run.run_id)
    retry = storage.get_run(new_id)
    if retry is None:
        try:
            retry = _create(daemon, run, new_id, attempt, policy, reason)
        except _Never as never:
            _give_up(daemon, run, str(never))
            return ""
        if retry is None:
            return None
    _submit(daemon, retry)
    return new_id


def _retry_number(run: RunRecord) -> int:
    try:
        return max(0, int(run.tags.get(RETRY_NUMBER_TAG, "0")))
    except ValueError:
        return 0


def _create(daemon: Daemon, run: RunRecord, new_id: str, attempt: int, policy: RetryPolicy,
            reason: str) -> RunRecord | None:
    """Store the retry (NOT_STARTED) with the engine event on ``run`` in its transaction, and return
    it (or the one another daemon stored first). None when it cannot be made yet; raises
    :class:`_Never` when it never can."""
    from ..errors import StorageError
    from ..operations.errors import UnavailableError
    from ..operations.reexecute import create_reexecution_on_location

    instance = daemon.instance
    if daemon.workspace is None:
        raise _Never("this daemon has no code locations to plan the retry on (start it with -f or -w)")
    message = f"Retried as run {new_id} (attempt {attempt} of {policy.max_retries}, reason {reason})."
    event = Event(run_id=run.run_id, event_type=EventType.ENGINE_EVENT, message=message,
                  data={"retry_run_id": new_id, "retry_number": attempt, "max_retries": policy.max_retries,
                        "reason": reason})

    def create(mode: str):
        return create_reexecution_on_location(instance, daemon.locations(), run.run_id, mode=mode,
                                              runyard_tags={RETRY_NUMBER_TAG: str(attempt)},
                                              new_run_id=new_id, events=[event])

    from_failure = instance.settings.run_retries.strategy == "from_failure"
    try:
        try:
            result = create("from_failure" if from_failure else "all")
        except RunyardError as exc:
            if not from_failure or isinstance(exc, (UnavailableError, StorageError)) or daemon.storage.get_run(new_id):
                raise
            # from failure found nothing to re-execute (every step succeeded, yet the run failed)
            result = create("all")
    except UnavailableError as exc:
        log.warning("run %s: its retry cannot be made yet: %s", run.run_id, exc)
        return None
    except Exception as exc:
        made = daemon.storage.get_run(new_id)
        if made is not None:  # another daemon (or our own commit, reported as failed) stored it
            return made
        if isinstance(exc, RunyardError) and not isinstance(exc, StorageError):
            raise _Never(str(exc)) from exc
        raise
    if result.run is None:
        errors = "; ".join(e.message for e in result.errors) or result.message or "unknown error"
        raise _Never(f"its run config no longer validates: {errors}")
    log.info("run %s failed (%s): retried as run %s, attempt %d of %d", run.run_id, reason, new_id, attempt,
             policy.max_retries)
    return result.run


def _submit(daemon: Daemon, retry: RunRecord) -> None:
    """Submit a stored retry that nobody submitted yet; a race with another daemon is lost quietly."""
    if retry.status != RunStatus.NOT_STARTED:
        return
    try:
        daemon.instance.submit_run(retry)
    except InvalidTransitionError:
        pass  # another daemon submitted it first
    except Exception as exc:  # noqa: BLE001 - the coordinator or launcher marked the retry FAILURE
        log.warning("submitting retry %s failed: %s", retry.run_id, exc)


def _give_up(daemon: Daemon, run: RunRecord, why: str) -> None:
    """Say once, on the failed run, that it is not retried and why."""
    marker = f"given-up:{daemon.daemon_id}:{uuid.uuid4().hex}"
    if daemon.storage.claim_run_key(GIVE_UP_INSTIGATOR, run.run_id, marker):
        daemon.instance.report_engine_event(run.run_id, f"Run not retried: {why}.", level="WARNING",
                                            data={"reason": "retry_not_possible"})
        log.warning("run %s not retried: %s", run.run_id, why)
