"""Schedules: run a job on a cron schedule in a time zone. Declared here; the daemon evaluates them.

A cron string or time zone that cannot be parsed fails at definition time with the string in the
message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError
from ..storage.records import InstigatorStatus


@dataclass
class ScheduleEvaluationContext:
    scheduled_time: Any  # datetime in the schedule's time zone
    schedule_name: str


@dataclass
class ScheduleDefinition:
    name: str
    cron_schedule: str
    job: Any  # JobDefinition or job name
    run_config: dict[str, Any] | None = None
    execution_timezone: str = "UTC"
    tags: dict[str, str] = field(default_factory=dict)
    evaluation_fn: Callable[[ScheduleEvaluationContext], Any] | None = None
    default_status: str = "STOPPED"
    description: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise DefinitionError(f"schedule name '{self.name}' must be a valid identifier")
        if self.default_status not in InstigatorStatus.__members__:
            raise DefinitionError(f"schedule '{self.name}': default_status must be RUNNING or STOPPED")
        self.trigger()  # validates cron string and time zone now, not at the first tick

    @property
    def job_name(self) -> str:
        return self.job if isinstance(self.job, str) else self.job.name

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        try:
            return CronTrigger.from_crontab(self.cron_schedule, timezone=self.execution_timezone)
        except ValueError as exc:
            raise DefinitionError(f"schedule '{self.name}': invalid cron string "
                                  f"'{self.cron_schedule}': {exc}") from None
        except Exception as exc:  # unknown time zone
            raise DefinitionError(f"schedule '{self.name}': invalid execution_timezone "
                                  f"'{self.execution_timezone}': {exc}") from None


def schedule(cron_schedule: str, *, job: Any, name: str | None = None, execution_timezone: str = "UTC",
             tags: dict[str, str] | None = None, default_status: str = "STOPPED") -> Any:
    """Decorate ``fn(context) -> run config dict | RunRequest | SkipReason`` as a schedule."""

    def decorate(fn: Callable[[ScheduleEvaluationContext], Any]) -> ScheduleDefinition:
        return ScheduleDefinition(name=name or fn.__name__, cron_schedule=cron_schedule, job=job,
                                  execution_timezone=execution_timezone, tags=dict(tags or {}),
                                  evaluation_fn=fn, default_status=default_status,
                                  description=fn.__doc__)

    return decorate
