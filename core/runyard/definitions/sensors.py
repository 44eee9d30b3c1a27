"""Sensors: a function the daemon calls every ``minimum_interval_seconds`` that may request runs.

It yields (or returns) :class:`RunRequest` objects or a :class:`SkipReason`. A ``run_key`` makes a
request idempotent: a key already used by this sensor creates no run. ``context.cursor`` persists
between evaluations; set it with ``context.update_cursor(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError


@dataclass
class RunRequest:
    """A run a schedule or sensor asks for. ``partition_key``: a run of that partition of a
    partitioned job (docs/partitions.md): its run config (``run_config`` merged over it) and tags,
    and ``runyard/partition``, which runyard sets once the key is checked."""

    run_key: str | None = None
    run_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    job_name: str | None = None
    partition_key: str | None = None


@dataclass
class SkipReason:
    message: str = ""


@dataclass
class SensorEvaluationContext:
    sensor_name: str
    cursor: str | None = None
    last_tick_time: float | None = None

    def update_cursor(self, cursor: str | None) -> None:
        self.cursor = cursor


@dataclass
class SensorDefinition:
    name: str
    evaluation_fn: Callable[[SensorEvaluationContext], Any]
    job: Any = None  # JobDefinition or job name
    minimum_interval_seconds: float = 30
    default_status: str = "STOPPED"
    description: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise DefinitionError(f"sensor name '{self.name}' must be a valid identifier")
        if self.minimum_interval_seconds <= 0:
            raise DefinitionError(f"sensor '{self.name}': minimum_interval_seconds must be > 0")

    @property
    def job_name(self) -> str | None:
        if self.job is None:
            return None
        return self.job if isinstance(self.job, str) else self.job.name


def sensor(*, job: Any = None, name: str | None = None, minimum_interval_seconds: float = 30,
           default_status: str = "STOPPED") -> Any:
    def decorate(fn: Callable[[SensorEvaluationContext], Any]) -> SensorDefinition:
        return SensorDefinition(name=name or fn.__name__, evaluation_fn=fn, job=job,
                                minimum_interval_seconds=minimum_interval_seconds,
                                default_status=default_status, description=fn.__doc__)

    return decorate
