"""The execution plan: which steps run, in what order, and where each input comes from."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..definitions.job import JobDefinition
from ..errors import RunConfigError
from ..tags import PRIORITY_TAG


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
