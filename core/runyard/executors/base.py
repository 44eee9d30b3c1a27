"""The executor interface.

An executor runs inside the run worker. It receives an :class:`ExecuteContext` and must run every
step of ``context.plan`` whose upstream steps succeeded, skip (``STEP_SKIPPED``) those whose
upstream failed, honour retry outcomes, and stop promptly once ``context.is_terminating()`` is
true. It returns the final outcome of every step; the run worker turns that into the run status.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..component import Component
from ..storage.records import EventType, StepStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.config import ResolvedRunConfig
    from ..definitions.job import JobDefinition
    from ..execution.events import EventSink
    from ..execution.plan import ExecutionPlan
    from ..execution.step import StepOutcome, StepRunner
    from ..instance.instance import Instance
    from ..storage.records import RunRecord


@dataclass
class ExecuteContext:
    """Everything an executor needs; new fields may be added, never removed."""

    run: RunRecord
    job: JobDefinition
    plan: ExecutionPlan
    resolved: ResolvedRunConfig
    instance: Instance
    events: EventSink
    step_runner: StepRunner
    is_terminating: Callable[[], bool]
    extra: dict[str, Any] = field(default_factory=dict)
    #: the run worker owns its process and is a child subreaper: an executor that runs steps in it
    #: kills, when each step ends, the processes the step started (see ``in_process``)
    contain_processes: bool = False


@dataclass
class ExecutionResult:
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    #: skipped because an upstream step failed (or could not run): the run fails
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: skipped because an input's source output was not produced (an optional output left out, see
    #: runyard.execution.dynamic): the run still succeeds
    not_produced: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [k for k, o in self.outcomes.items() if o.status != StepStatus.SUCCESS]

    @property
    def succeeded(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted


class Executor(Component, ABC):
    #: retries requested by a step are honoured by this executor
    supports_step_retries: ClassVar[bool] = True
    #: steps run in processes other than the run worker
    runs_steps_out_of_process: ClassVar[bool] = False

    @abstractmethod
    def execute(self, context: ExecuteContext) -> ExecutionResult:
        """Run the plan's steps; return every step's outcome."""


class TagConcurrencyLimit(BaseModel):
    """One ``tag_concurrency_limits`` rule of an executor that runs steps at once: at most ``limit``
    steps whose op has tag ``key`` (with ``value``, or any value) run at the same time."""

    model_config = ConfigDict(extra="forbid")

    key: str
    value: str | None = Field(None, description="Omit to count every step that has the key.")
    limit: int = Field(ge=0)


def tag_limits_allow(rules: Iterable[TagConcurrencyLimit], running: Iterable[Mapping[str, str]],
                     tags: Mapping[str, str]) -> bool:
    """Whether a step with op ``tags`` may start while steps with the op tags ``running`` run."""
    running = list(running)
    for rule in rules:
        if rule.key not in tags or (rule.value is not None and tags[rule.key] != rule.value):
            continue
        in_use = sum(1 for t in running if rule.key in t and (rule.value is None or t[rule.key] == rule.value))
        if in_use >= rule.limit:
            return False
    return True


def skip_step(context: ExecuteContext, step_key: str, because: str, *, not_produced: bool = False) -> None:
    """``not_produced``: skipped because an input was not produced (not an error: level INFO)."""
    if not_produced:
        context.events.emit(EventType.STEP_SKIPPED, f"Skipped step '{step_key}': {because}.",
                            step_key=step_key, level="INFO", data={"reason": because, "not_produced": True})
        return
    context.events.emit(EventType.STEP_SKIPPED, f"Skipped step '{step_key}': {because}.",
                        step_key=step_key, level="WARNING", data={"reason": because})


def next_attempt(context: ExecuteContext, step_key: str) -> int:
    """The 0-based number of a step's next attempt, counted in storage (not in this process's
    memory), so whichever process runs the retry agrees with the event log."""
    context.events.flush()
    stats = context.instance.storage.get_step_stats(context.run.run_id, [step_key])
    return stats[0].attempts if stats else 0
