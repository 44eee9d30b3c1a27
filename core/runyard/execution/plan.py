"""The execution plan: which steps run, in what order, and where each input comes from.

The run worker stores the plan with the run: the engine event it emits when it hands the plan to
the executor ("Executing N step(s) with the X executor.") carries, under :data:`PLAN_DATA_KEY`, the
step keys in plan order with each step's upstream steps in the plan (:meth:`ExecutionPlan.to_data`).
The web UI lists a run's steps from it (:func:`stored_plan`), not from the job as its code location
defines it now: the job may have changed since, or its location may be down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions.job import JobDefinition
from ..errors import RunConfigError
from ..tags import PRIORITY_TAG

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage

#: the key of the plan in the data of the run worker's "Executing ..." engine event
PLAN_DATA_KEY = "plan"
#: set in the plan event's data when mapped steps are added at run time, each addition an engine
#: event of its own with the added steps under PLAN_DATA_KEY (runyard.execution.dynamic)
PLAN_DYNAMIC_KEY = "dynamic"
#: the plan event is the first engine event the run worker emits; launchers may emit a few before it
PLAN_EVENT_SEARCH = 20


@dataclass
class Step:
    key: str
    node_name: str
    upstream: frozenset[str]
    priority: int = 0


@dataclass
class ExecutionPlan:
    job_name: str
    steps: dict[str, Step]
    order: list[str]
    # (step key, output name) -> run id holding the value, for steps not executed in this run
    external_outputs: dict[tuple[str, str], str] = field(default_factory=dict)
    #: the job has dynamic outputs: the plan grows at run time (runyard.execution.dynamic)
    dynamic: bool = False
    #: mapped nodes whose steps (``op[key]``) are added when their dynamic step finishes
    selected_templates: frozenset[str] = frozenset()

    @classmethod
    def build(cls, job: JobDefinition, step_keys_to_execute: list[str] | None = None,
              external_outputs: dict[tuple[str, str], str] | None = None) -> ExecutionPlan:
        from ..definitions.dynamic import has_dynamic, mapped_nodes

        selected = set(job.nodes) if step_keys_to_execute is None else set(step_keys_to_execute)
        mapped = mapped_nodes(job)
        if mapped or has_dynamic(job) or any("[" in key for key in selected):
            from .dynamic import build_dynamic_steps

            keys = list(job.nodes if step_keys_to_execute is None else step_keys_to_execute)
            steps, templates = build_dynamic_steps(job, keys, mapped)
            return cls(job_name=job.name, steps=steps, order=list(steps),
                       external_outputs=dict(external_outputs or {}), dynamic=True, selected_templates=templates)
        unknown = sorted(selected - set(job.nodes))
        if unknown:
            raise RunConfigError(f"job '{job.name}' has no step(s) {', '.join(unknown)}",
                                 source="step selection")
        steps = {}
        for name in job.topological_order:
            if name not in selected:
                continue
            node = job.nodes[name]
            priority = int(node.op.tags.get(PRIORITY_TAG, 0) or 0)
            steps[name] = Step(key=name, node_name=name,
                               upstream=frozenset(u for u in node.upstream if u in selected),
                               priority=priority)
        return cls(job_name=job.name, steps=steps, order=list(steps),
                   external_outputs=dict(external_outputs or {}))

    def downstream(self, key: str) -> list[str]:
        """Steps in this plan that (transitively) depend on ``key``, in plan order."""
        out: set[str] = set()
        frontier = {key}
        for k in self.order:
            if self.steps[k].upstream & frontier:
                out.add(k)
                frontier.add(k)
        return [k for k in self.order if k in out]

    def add_steps(self, steps: list[Step]) -> None:
        """Add steps found at run time (mapped steps), each before the first step that waits for it."""
        new = {step.key for step in steps}
        for step in steps:
            self.steps[step.key] = step
        at = next((i for i, k in enumerate(self.order) if self.steps[k].upstream & new), len(self.order))
        self.order[at:at] = [step.key for step in steps]

    def data_flags(self) -> dict[str, Any]:
        """Merged into the plan event's data: ``{"dynamic": True}`` when the plan grows at run time
        (:func:`stored_plan` then merges the steps added later)."""
        return {PLAN_DYNAMIC_KEY: True} if self.dynamic else {}

    def to_data(self) -> list[dict[str, Any]]:
        """``[{"key": step key, "upstream": [step keys]}, ...]`` in plan order: what the run worker
        stores under :data:`PLAN_DATA_KEY` (upstream steps outside the plan are left out)."""
        return [{"key": k, "upstream": sorted(self.steps[k].upstream)} for k in self.order]


@dataclass(frozen=True)
class StoredStep:
    """A step of a run's stored plan."""

    key: str
    upstream: tuple[str, ...] = ()


def plan_from_data(data: Any) -> tuple[StoredStep, ...] | None:
    """The plan in an event's data (:meth:`ExecutionPlan.to_data`), or None if it holds none or
    not in that shape."""
    steps = data.get(PLAN_DATA_KEY) if isinstance(data, dict) else None
    if not isinstance(steps, Sequence) or isinstance(steps, str):
        return None
    out = []
    for step in steps:
        if not isinstance(step, dict) or not isinstance(step.get("key"), str):
            return None
        out.append(StoredStep(step["key"], tuple(str(u) for u in step.get("upstream") or ())))
    return tuple(out)


def stored_plan(storage: RunStorage, run_id: str) -> tuple[StoredStep, ...] | None:
    """The plan the run worker stored for ``run_id``, or None: the run has not reached its executor
    (yet), it could not be prepared, or it was executed before runyard stored plans. Reads the run's
    first engine events only (``idx_events_run_type``)."""
    from ..storage.records import EventType

    for event in storage.get_events(run_id, event_types=[EventType.ENGINE_EVENT], limit=PLAN_EVENT_SEARCH):
        plan = plan_from_data(event.data)
        if plan is not None:
            if event.data.get(PLAN_DYNAMIC_KEY) and event.id is not None:
                later = storage.get_events(run_id, after_id=event.id, event_types=[EventType.ENGINE_EVENT])
                return GrowingPlan(merge_added_steps(plan, [e.data for e in later]))
            return plan
    return None


class GrowingPlan(tuple):
    """A stored plan (a tuple of :class:`StoredStep`) to which mapped steps are added while its run
    goes on: a reader that keeps plans keeps this one only once the run has finished."""

    grows = True


def merge_added_steps(plan: tuple[StoredStep, ...], datas: list[Any]) -> tuple[StoredStep, ...]:
    """``plan`` with the steps that later engine events added (mapped steps, in the data of the
    events runyard.execution.dynamic emits: ``plan``, ``upstream_added``), each placed before the
    first step that waits for it, as the executor ordered them."""
    order = [step.key for step in plan]
    upstream = {step.key: list(step.upstream) for step in plan}
    for data in datas:
        if not isinstance(data, dict) or "mapped_from" not in data:
            continue
        added = plan_from_data(data)
        if not added:
            continue
        waits = data.get("upstream_added")
        known = set(order)
        new = {step.key for step in added} - known
        for step in added:
            upstream[step.key] = list(step.upstream)
        for key, extra in (waits.items() if isinstance(waits, dict) else ()):
            if key in upstream and isinstance(extra, list):
                upstream[key] = sorted({*upstream[key], *map(str, extra)})
        at = next((i for i, k in enumerate(order) if new.intersection(upstream[k])), len(order))
        order[at:at] = [step.key for step in added if step.key in new]
    return tuple(StoredStep(key, tuple(upstream[key])) for key in order)
