"""The ``queued`` coordinator: a submitted run waits in QUEUED; the daemon's queue loop claims it
under the limits configured here and launches it.

Instance file::

    run_coordinator:
      queued:
        max_concurrent_runs: 10          # -1: unlimited
        tag_concurrency_limits:
          - {key: database, value: prod, limit: 2}
          - {key: tenant, value: {applyLimitPerUniqueValue: true}, limit: 1}
          - {key: heavy, limit: 3}       # every run carrying the key, whatever its value
        dequeue_interval_seconds: 1

The limits are counted by storage inside the claiming transaction (see
:meth:`runyard.storage.base.RunStorage.claim_queued_runs`), so several dequeuers never exceed them
together. Priority: the ``runyard/priority`` tag (an integer, higher first; then oldest first).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InvalidTransitionError
from ..storage.base import ClaimLimits, TagLimit
from ..storage.records import RunRecord, RunStatus
from .base import RunCoordinator, SubmitRunContext


class PerUniqueValue(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    apply_limit_per_unique_value: bool = Field(alias="applyLimitPerUniqueValue")


class TagConcurrencyLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1)
    value: str | PerUniqueValue | None = Field(
        None, description="the tag value the limit applies to; {applyLimitPerUniqueValue: true} for a "
        "separate limit per distinct value; absent: every run carrying the key counts")
    limit: int = Field(ge=0)

    @field_validator("value", mode="before")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float, bool)) else value

    def to_tag_limit(self) -> TagLimit:
        if isinstance(self.value, PerUniqueValue):
            if self.value.apply_limit_per_unique_value:
                return TagLimit(key=self.key, limit=self.limit, per_unique_value=True)
            return TagLimit(key=self.key, limit=self.limit)
        return TagLimit(key=self.key, limit=self.limit, value=self.value)


class QueuedRunCoordinatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent_runs: int = Field(10, ge=-1, description="runs STARTING/STARTED/CANCELING at once; -1 unlimited")
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(default_factory=list)
    dequeue_interval_seconds: float = Field(1.0, gt=0, description="longest wait between queue looks")


class QueuedRunCoordinator(RunCoordinator):
    config_model = QueuedRunCoordinatorConfig
    queues_runs = True
    config: QueuedRunCoordinatorConfig

    def submit_run(self, context: SubmitRunContext) -> RunRecord:
        instance, run = context.instance, context.run
        # transition() writes RUN_ENQUEUED with the status change, as a compare-and-set
        if not instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.QUEUED,
                                   "Run queued; the daemon launches it under the queue's limits."):
            current = instance.get_run(run.run_id)
            raise InvalidTransitionError(f"Run {run.run_id} is {current.status}; only a NOT_STARTED "
                                         "run can be submitted.")
        return instance.get_run(run.run_id)

    def claim_limits(self) -> ClaimLimits:
        cfg = self.config
        return ClaimLimits(
            max_in_progress=None if cfg.max_concurrent_runs < 0 else cfg.max_concurrent_runs,
            tag_limits=tuple(t.to_tag_limit() for t in cfg.tag_concurrency_limits))

    @property
    def dequeue_interval(self) -> float:
        return self.config.dequeue_interval_seconds
