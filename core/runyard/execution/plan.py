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

    @classmethod
    def build(cls, job: JobDefinition, step_keys_to_execute: list[str] | None = None,
              external_outputs: dict[tuple[str, str], str] | None = None) -> ExecutionPlan:
        selected = set(job.nodes) if step_keys_to_execute is None else set(step_keys_to_execute)
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
            return plan
    return None
