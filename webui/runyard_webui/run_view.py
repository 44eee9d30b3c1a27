"""What the run page shows beyond the run record: every step of the run's plan with its state and
attempts (pending steps included), who or what launched the run, and its re-executions.

The plan comes from the run itself: when its run worker hands the plan to the executor it stores
the step keys in plan order with each step's upstream steps, in the data of its "Executing ..."
engine event (:func:`runyard.execution.plan.stored_plan`, read through the index on the run's
events by type and kept once found). So a run lists its own steps after its job changed, and while
its code location is down. Until the worker got there (a queued run), and for runs executed before
runyard stored plans, the step list comes from the job's snapshot in the run's code location (node
names are step keys, :mod:`runyard.definitions.graph_view`), ordered upstream first, as the location
serves it now; when that location is not loaded either, the page lists the selected steps, or the
steps that emitted events, and says the plan is unknown.

Attempts are folded from the run's step events (the same ones :meth:`RunStorage.get_step_stats`
reads, through the same index): once per run, then only the step events stored since the last view
(:class:`StepFolds`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from runyard.storage.records import STEP_STATUS_EVENTS, EventType, StepStatus
from runyard.tags import RETRY_NUMBER_TAG

if TYPE_CHECKING:  # pragma: no cover
    from runyard.execution.plan import StoredStep
    from runyard.storage.records import RunRecord

    from .context import WebContext

#: a step that has emitted no event: ``PENDING`` while the run may still run it, ``NOT_RUN`` after
PENDING, NOT_RUN = "PENDING", "NOT_RUN"
#: the outcome of an attempt still going on
RUNNING = "RUNNING"


@dataclass(frozen=True)
class StepAttempt:
    """One try of a step: ``outcome`` is ``RUNNING``, ``SUCCESS``, ``FAILURE`` or ``RETRY`` (failed,
    another attempt followed)."""

    start_time: float
    end_time: float | None
    outcome: str


@dataclass(frozen=True)
class PlanStep:
    """A step of the run's plan. ``status``: a :class:`~runyard.storage.records.StepStatus` value, or
    ``PENDING`` / ``NOT_RUN`` for a step without events."""

    step_key: str
    status: str
    attempts: tuple[StepAttempt, ...] = ()
    error: str | None = None
    #: the steps of the plan this one reads from (known from a stored plan only)
    upstream: tuple[str, ...] = ()

    @property
    def start_time(self) -> float | None:
        return self.attempts[0].start_time if self.attempts else None

    @property
    def end_time(self) -> float | None:
        return self.attempts[-1].end_time if self.attempts else None

    @property
    def attempts_json(self) -> str:
        """``[[start, end, outcome], ...]``: what the page's timeline is drawn from."""
        return json.dumps([[a.start_time, a.end_time, a.outcome] for a in self.attempts])

    @property
    def duration(self) -> float | None:
        """From the first attempt's start to the last one's end; None until the step ended."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


class PlanSource(str, Enum):
    """Where a run page's step list came from."""

    RUN = "RUN"              # the plan the run worker stored with the run
    SNAPSHOT = "SNAPSHOT"    # the job's snapshot as the run's code location serves it now
    SELECTION = "SELECTION"  # the run's step selection (its location is not loaded)
    EVENTS = "EVENTS"        # the steps that emitted events: the plan is unknown

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunPlan:
    """The steps of a run in plan order; ``known``: the plan came from the run, the selection or the
    job's snapshot (False: only the steps seen in events are listed, ``why`` says why)."""

    steps: tuple[PlanStep, ...]
    known: bool
    why: str | None = None
    source: PlanSource = PlanSource.RUN


@dataclass(frozen=True)
class Launch:
    """Who or what created a run, for its page. ``kind``: ``schedule``, ``sensor``, ``user`` (the
    kinds of :class:`runyard.tags.LaunchedBy`, ``name`` saying which), ``retry`` (the daemon's run
    retries) or ``unknown`` (the CLI or the Python API, which record no user). ``run_id``: the run a
    re-execution or retry was made from."""

    kind: str
    name: str | None = None
    run_id: str | None = None


def launched_by(run: RunRecord) -> Launch:
    """What created ``run``. A re-execution carries its parent's tags (a schedule's among them) with
    the user tag set to who re-executed it; a daemon retry carries its failed run's tags unchanged,
    so it is recognised first."""
    from runyard.tags import LaunchedBy

    if run.tags.get(RETRY_NUMBER_TAG) and run.parent_run_id:
        return Launch("retry", run_id=run.parent_run_id)
    origin = LaunchedBy.of(run.tags)
    if origin is None:
        return Launch("unknown", run_id=run.parent_run_id)
    return Launch(origin.kind, origin.name, run.parent_run_id)


def _snapshot_order(web: WebContext, run: RunRecord) -> tuple[list[str] | None, PlanSource, str | None]:
    """The run's step keys in plan order from the job's snapshot, or from its selection when the
    location is not loaded, or (None, EVENTS, why)."""
    from runyard.operations.errors import OperationError
    from runyard.operations.workspace import location_of_run

    try:
        _, job = location_of_run(web.locations(), run)
    except OperationError as exc:
        if run.step_keys_to_execute is not None:
            return list(run.step_keys_to_execute), PlanSource.SELECTION, None
        return None, PlanSource.EVENTS, f"the plan is unknown ({exc}): listing the steps that started"
    order = job.topological_order
    if run.step_keys_to_execute is None:
        return list(order), PlanSource.SNAPSHOT, None
    selected = set(run.step_keys_to_execute)
    known = [k for k in order if k in selected]
    return known + [k for k in run.step_keys_to_execute if k not in set(known)], PlanSource.SNAPSHOT, None


_OUTCOME = {EventType.STEP_SUCCESS: str(StepStatus.SUCCESS), EventType.STEP_FAILURE: str(StepStatus.FAILURE),
            EventType.STEP_UP_FOR_RETRY: str(StepStatus.RETRY)}


def _fold(steps: dict[str, PlanStep], e) -> None:
    """Apply one step event to ``steps`` (step key -> its state so far), in the order events came."""
    kind = EventType(str(e.event_type))
    before = steps.get(e.step_key) or PlanStep(e.step_key, PENDING)
    tries, error = list(before.attempts), before.error
    if kind in (EventType.STEP_START, EventType.STEP_RESTARTED):
        tries.append(StepAttempt(e.timestamp, None, RUNNING))
    elif kind in _OUTCOME:
        if tries and tries[-1].end_time is None:
            tries[-1] = StepAttempt(tries[-1].start_time, e.timestamp, _OUTCOME[kind])
        else:  # an end without a start (e.g. a resumed worker): a point on the timeline
            tries.append(StepAttempt(e.timestamp, e.timestamp, _OUTCOME[kind]))
        error = None if kind == EventType.STEP_SUCCESS else _error_text((e.data or {}).get("error")) or error
    steps[e.step_key] = PlanStep(e.step_key, str(STEP_STATUS_EVENTS[kind]), tuple(tries), error)


@dataclass(frozen=True)
class _Folded:
    cursor: int | None  # the id of the last step event folded in
    steps: dict[str, PlanStep]


class StepFolds:
    """Each run's steps folded from its step events, kept for the runs viewed lately so that the next
    view (the page's refreshes while the run goes on) reads only the step events stored since: events
    only ever get appended, with increasing ids (``RunStorage.get_events``). The first view of a run
    reads its step events once. Stored plans are kept too: a run's plan never changes once stored."""

    def __init__(self, size: int = 256):
        self._size = size
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _Folded] = OrderedDict()
        self._plans: OrderedDict[str, tuple[StoredStep, ...] | None] = OrderedDict()

    def plan(self, storage, run: RunRecord) -> tuple[StoredStep, ...] | None:
        """The plan stored with ``run``, or None (not yet, or never: a run that finished without one
        is remembered as such)."""
        from runyard.execution.plan import stored_plan

        with self._lock:
            if run.run_id in self._plans:
                self._plans.move_to_end(run.run_id)
                return self._plans[run.run_id]
        plan = stored_plan(storage, run.run_id)
        # a plan that grows (dynamic fan-out adds mapped steps) is final once the run is
        if (plan is not None and not getattr(plan, "grows", False)) or run.status.is_finished:
            with self._lock:
                self._plans[run.run_id] = plan
                while len(self._plans) > self._size:
                    self._plans.popitem(last=False)
        return plan

    def steps(self, storage, run_id: str) -> dict[str, PlanStep]:
        """Step key -> its state, for the steps with at least one event, in the order they appeared."""
        with self._lock:
            known = self._runs.get(run_id) or _Folded(None, {})
        events = storage.get_events(run_id, after_id=known.cursor, event_types=list(STEP_STATUS_EVENTS))
        if not events:
            return known.steps
        steps = dict(known.steps)
        for e in events:
            if e.step_key is not None:
                _fold(steps, e)
        folded = _Folded(events[-1].id, steps)
        with self._lock:
            current = self._runs.get(run_id)
            if current is None or (current.cursor or 0) < folded.cursor:
                self._runs[run_id] = folded
            self._runs.move_to_end(run_id)
            while len(self._runs) > self._size:
                self._runs.popitem(last=False)
        return steps


def _error_text(err) -> str | None:
    if err is None or isinstance(err, str):
        return err
    return err.get("message") if isinstance(err, dict) else str(err)


def run_plan(web: WebContext, run: RunRecord) -> RunPlan:
    """Every step of ``run``'s plan with its state and attempts: the plan stored with the run first,
    the job's snapshot for a run without one (the location is asked only then)."""
    stored = web.step_folds.plan(web.storage, run)
    upstream: dict[str, tuple[str, ...]] = {}
    if stored is not None:
        order: list[str] | None = [step.key for step in stored]
        upstream = {step.key: step.upstream for step in stored}
        source, why = PlanSource.RUN, None
    else:
        order, source, why = _snapshot_order(web, run)
    seen = web.step_folds.steps(web.storage, run.run_id)
    keys = list(order or [])
    listed = set(keys)
    keys += [k for k in seen if k not in listed]  # steps outside the plan as we know it
    waiting = NOT_RUN if run.status.is_finished else PENDING
    steps = tuple(replace(seen.get(k) or PlanStep(k, waiting), upstream=upstream.get(k, ())) for k in keys)
    return RunPlan(steps=steps, known=order is not None, why=why, source=source)


#: at most this many re-executions of a run are linked from its page
CHILDREN_LIMIT = 20


def children(web: WebContext, run_id: str, limit: int = CHILDREN_LIMIT) -> list[RunRecord]:
    """Re-executions of ``run_id`` (runs whose parent it is, daemon retries included), newest first."""
    from runyard.storage.records import RunFilter

    return web.storage.get_runs(RunFilter(parent_run_id=run_id), limit=limit)
