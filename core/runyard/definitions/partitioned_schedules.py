"""Schedules built from a partitioned job: each tick runs the job's last complete partition.

``build_schedule_from_partitioned_job(job)`` reads the cron schedule off the job's time windows
(a daily job: every day at its ``hour_offset:minute_offset``, in its time zone), and each tick
requests the partition that the tick completes — the last key at the tick's time — with that
partition's run config and tags, and the partition key as the run key, so a partition runs once
per schedule however often its tick is evaluated. The ``*_of_*`` arguments move the tick later
(e.g. a daily job's run at 06:00 instead of midnight), still requesting the last complete day.

A job with static partitions has no windows: give ``cron_schedule``; each tick requests every key
(run key ``<key>@<tick time>``, so every tick runs them again).
"""

from __future__ import annotations

from typing import Any

from ..errors import DefinitionError
from .partitions import StaticPartitionsDefinition, TimeWindowPartitionsDefinition
from .schedules import ScheduleDefinition, ScheduleEvaluationContext


def _cron_of(partitions_def: TimeWindowPartitionsDefinition, minute_of_hour: int | None, hour_of_day: int | None,
             day_of_week: int | None, day_of_month: int | None, name: str) -> str:
    cadence = partitions_def.cadence
    minute = partitions_def.minute_offset if minute_of_hour is None else minute_of_hour
    hour = partitions_def.hour_offset if hour_of_day is None else hour_of_day
    checks = {"minute_of_hour": (minute, 0, 59), "hour_of_day": (hour, 0, 23)}
    if day_of_week is not None:
        checks["day_of_week"] = (day_of_week, 0, 6)
    if day_of_month is not None:
        checks["day_of_month"] = (day_of_month, 1, 28)
    for arg, (value, low, high) in checks.items():
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DefinitionError(f"schedule '{name}': {arg} must be an integer from {low} to {high}, not {value!r}")
    misplaced = {"hourly": ("hour_of_day", "day_of_week", "day_of_month"), "daily": ("day_of_week", "day_of_month"),
                 "weekly": ("day_of_month",), "monthly": ("day_of_week",)}[cadence]
    given = {"hour_of_day": hour_of_day, "day_of_week": day_of_week, "day_of_month": day_of_month}
    for arg in misplaced:
        if given[arg] is not None:
            raise DefinitionError(f"schedule '{name}': {arg} has no meaning for a job with {cadence} partitions")
    if cadence == "hourly":
        return f"{minute} * * * *"
    if cadence == "daily":
        return f"{minute} {hour} * * *"
    if cadence == "weekly":
        return f"{minute} {hour} * * {partitions_def.day_offset if day_of_week is None else day_of_week}"
    return f"{minute} {hour} {partitions_def.day_offset if day_of_month is None else day_of_month} * *"


def build_schedule_from_partitioned_job(job: Any, minute_of_hour: int | None = None, hour_of_day: int | None = None,
                                        day_of_week: int | None = None, day_of_month: int | None = None,
                                        name: str | None = None, *, cron_schedule: str | None = None,
                                        tags: dict[str, str] | None = None, default_status: str = "STOPPED",
                                        description: str | None = None) -> ScheduleDefinition:
    """A schedule of partitioned ``job`` whose ticks request the last complete partition (named
    ``<job>_schedule`` unless ``name``). See the module's docstring."""
    from .sensors import RunRequest, SkipReason

    partitions_def = getattr(job, "partitions_def", None)
    schedule_name = name or f"{getattr(job, 'name', job)}_schedule"
    if partitions_def is None:
        raise DefinitionError(f"schedule '{schedule_name}': job '{getattr(job, 'name', job)}' is not partitioned "
                              "(give it partitions_def= or a partitioned config)")
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        if cron_schedule is not None:
            raise DefinitionError(f"schedule '{schedule_name}': cron_schedule comes from the job's time windows; "
                                  "move the tick with minute_of_hour, hour_of_day, day_of_week, day_of_month")
        cron = _cron_of(partitions_def, minute_of_hour, hour_of_day, day_of_week, day_of_month, schedule_name)
        timezone = partitions_def.timezone

        def evaluate(context: ScheduleEvaluationContext) -> Any:
            key = partitions_def.get_last_partition_key(context.scheduled_time)
            if key is None:
                return SkipReason(f"no partition of job '{job.name}' has ended by {context.scheduled_time.isoformat()}")
            return RunRequest(run_key=key, partition_key=key)
    else:
        if cron_schedule is None:
            raise DefinitionError(f"schedule '{schedule_name}': job '{job.name}' has {type(partitions_def).__name__}, "
                                  "which has no time windows to schedule by: give cron_schedule")
        if any(a is not None for a in (minute_of_hour, hour_of_day, day_of_week, day_of_month)):
            raise DefinitionError(f"schedule '{schedule_name}': with cron_schedule, the *_of_* arguments have no use")
        cron, timezone = cron_schedule, "UTC"
        assert isinstance(partitions_def, StaticPartitionsDefinition)

        def evaluate(context: ScheduleEvaluationContext) -> Any:
            stamp = context.scheduled_time.isoformat()
            return [RunRequest(run_key=f"{key}@{stamp}", partition_key=key)
                    for key in partitions_def.get_partition_keys(context.scheduled_time)]

    return ScheduleDefinition(name=schedule_name, cron_schedule=cron, job=job, execution_timezone=timezone,
                              tags=dict(tags or {}), evaluation_fn=evaluate, default_status=default_status,
                              description=description or f"Runs the last complete partition of job '{job.name}'.")


__all__ = ["build_schedule_from_partitioned_job"]
