"""Partitioned config: a job's run config (and tags) computed from the partition a run is for.

::

    @daily_partitioned_config(start_date="2024-01-01")
    def my_config(start: datetime, end: datetime):
        return {"ops": {"load": {"config": {"day": start.strftime("%Y-%m-%d")}}}}

    @job(config=my_config)          # the job's partitions are my_config's
    def etl(): ...

:meth:`runyard.definitions.job.JobDefinition.run_request_for_partition` calls these functions (in the
process that holds the user's code: the code server, ``runyard job ...``, ``execute_in_process``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ..errors import DefinitionError
from .partitions import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)


class PartitionedConfig:
    """Run config per partition of ``partitions_def``: ``run_config_for_partition_key_fn(key) ->
    dict`` (None: the same ``run_config`` for every partition) and, optionally,
    ``tags_for_partition_key_fn(key) -> dict`` (tags a user may set: no reserved ``runyard/`` tag)."""

    def __init__(self, partitions_def: PartitionsDefinition,
                 run_config_for_partition_key_fn: Callable[[str], Mapping[str, Any]] | None = None,
                 tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None, *,
                 run_config: Mapping[str, Any] | None = None, name: str | None = None):
        if not isinstance(partitions_def, PartitionsDefinition):
            raise DefinitionError(f"PartitionedConfig needs a PartitionsDefinition, not {partitions_def!r}")
        if run_config_for_partition_key_fn is not None and run_config is not None:
            raise DefinitionError("PartitionedConfig takes run_config_for_partition_key_fn or run_config, not both")
        self.partitions_def = partitions_def
        self.run_config_for_partition_key_fn = run_config_for_partition_key_fn
        self.tags_for_partition_key_fn = tags_for_partition_key_fn
        self.run_config = dict(run_config or {})
        self.name = name or getattr(run_config_for_partition_key_fn, "__name__", None) or "partitioned_config"

    def get_run_config_for_partition_key(self, partition_key: str) -> dict[str, Any]:
        """The run config of ``partition_key``, as JSON data; a :class:`DefinitionError` naming the
        function when it returns something else."""
        if self.run_config_for_partition_key_fn is None:
            return json.loads(json.dumps(self.run_config))
        value = self.run_config_for_partition_key_fn(partition_key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise DefinitionError(f"partitioned config '{self.name}' returned {type(value).__name__} for partition "
                                  f"'{partition_key}'; expected a run config dict")
        try:
            return json.loads(json.dumps(dict(value)))
        except (TypeError, ValueError) as exc:
            raise DefinitionError(f"partitioned config '{self.name}' returned a run config for partition "
                                  f"'{partition_key}' that is not JSON data: {exc}") from None

    def get_tags_for_partition_key(self, partition_key: str) -> dict[str, str]:
        if self.tags_for_partition_key_fn is None:
            return {}
        value = self.tags_for_partition_key_fn(partition_key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise DefinitionError(f"the tags function of partitioned config '{self.name}' returned "
                                  f"{type(value).__name__} for partition '{partition_key}'; expected a dict")
        return {str(k): str(v) for k, v in value.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The decorated function stays callable (tests call it directly)."""
        fn = getattr(self, "_decorated_fn", None)
        if fn is None:
            raise TypeError(f"partitioned config '{self.name}' is not callable")
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<PartitionedConfig {self.name} {self.partitions_def!r}>"


def static_partitioned_config(partition_keys: Sequence[str], *,
                              tags_for_partition_fn: Callable[[str], Mapping[str, str]] | None = None,
                              tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None,
                              ) -> Callable[[Callable[[str], Mapping[str, Any]]], PartitionedConfig]:
    """Decorate ``fn(partition_key) -> run config`` as the config of a job partitioned by
    ``partition_keys`` (a :class:`StaticPartitionsDefinition`)."""
    partitions_def = StaticPartitionsDefinition(partition_keys)

    def decorate(fn: Callable[[str], Mapping[str, Any]]) -> PartitionedConfig:
        config = PartitionedConfig(partitions_def, fn, tags_for_partition_key_fn or tags_for_partition_fn,
                                   name=fn.__name__)
        config._decorated_fn = fn  # type: ignore[attr-defined]
        return config

    return decorate


def _time_window_decorator(partitions_def: TimeWindowPartitionsDefinition,
                           tags_for_partition_fn: Callable[[datetime, datetime], Mapping[str, str]] | None,
                           tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None,
                           ) -> Callable[[Callable[[datetime, datetime], Mapping[str, Any]]], PartitionedConfig]:
    def decorate(fn: Callable[[datetime, datetime], Mapping[str, Any]]) -> PartitionedConfig:
        def config_for_key(key: str) -> Mapping[str, Any]:
            window = partitions_def.time_window_for_partition_key(key)
            return fn(window.start, window.end)

        tags_fn = tags_for_partition_key_fn
        if tags_fn is None and tags_for_partition_fn is not None:
            def tags_fn(key: str) -> Mapping[str, str]:
                window = partitions_def.time_window_for_partition_key(key)
                return tags_for_partition_fn(window.start, window.end)

        config = PartitionedConfig(partitions_def, config_for_key, tags_fn, name=fn.__name__)
        config._decorated_fn = fn  # type: ignore[attr-defined]
        return config

    return decorate


DateLike = datetime | date | str


def hourly_partitioned_config(start_date: DateLike, *, minute_offset: int = 0, timezone: str = "UTC",
                              fmt: str | None = None, end_offset: int = 0, end_date: DateLike | None = None,
                              tags_for_partition_fn: Callable[[datetime, datetime], Mapping[str, str]] | None = None,
                              tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None):
    """Decorate ``fn(start, end) -> run config`` as the config of a job with hourly partitions."""
    return _time_window_decorator(
        HourlyPartitionsDefinition(start_date, minute_offset=minute_offset, timezone=timezone, fmt=fmt,
                                   end_offset=end_offset, end_date=end_date),
        tags_for_partition_fn, tags_for_partition_key_fn)


def daily_partitioned_config(start_date: DateLike, *, minute_offset: int = 0, hour_offset: int = 0,
                             timezone: str = "UTC", fmt: str | None = None, end_offset: int = 0,
                             end_date: DateLike | None = None,
                             tags_for_partition_fn: Callable[[datetime, datetime], Mapping[str, str]] | None = None,
                             tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None):
    """Decorate ``fn(start, end) -> run config`` as the config of a job with daily partitions."""
    return _time_window_decorator(
        DailyPartitionsDefinition(start_date, minute_offset=minute_offset, hour_offset=hour_offset,
                                  timezone=timezone, fmt=fmt, end_offset=end_offset, end_date=end_date),
        tags_for_partition_fn, tags_for_partition_key_fn)


def weekly_partitioned_config(start_date: DateLike, *, minute_offset: int = 0, hour_offset: int = 0,
                              day_offset: int = 0, timezone: str = "UTC", fmt: str | None = None,
                              end_offset: int = 0, end_date: DateLike | None = None,
                              tags_for_partition_fn: Callable[[datetime, datetime], Mapping[str, str]] | None = None,
                              tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None):
    """Decorate ``fn(start, end) -> run config`` as the config of a job with weekly partitions."""
    return _time_window_decorator(
        WeeklyPartitionsDefinition(start_date, minute_offset=minute_offset, hour_offset=hour_offset,
                                   day_offset=day_offset, timezone=timezone, fmt=fmt, end_offset=end_offset,
                                   end_date=end_date),
        tags_for_partition_fn, tags_for_partition_key_fn)


def monthly_partitioned_config(start_date: DateLike, *, minute_offset: int = 0, hour_offset: int = 0,
                               day_offset: int = 1, timezone: str = "UTC", fmt: str | None = None,
                               end_offset: int = 0, end_date: DateLike | None = None,
                               tags_for_partition_fn: Callable[[datetime, datetime], Mapping[str, str]] | None = None,
                               tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None):
    """Decorate ``fn(start, end) -> run config`` as the config of a job with monthly partitions."""
    return _time_window_decorator(
        MonthlyPartitionsDefinition(start_date, minute_offset=minute_offset, hour_offset=hour_offset,
                                    day_offset=day_offset, timezone=timezone, fmt=fmt, end_offset=end_offset,
                                    end_date=end_date),
        tags_for_partition_fn, tags_for_partition_key_fn)


__all__ = [
    "PartitionedConfig", "daily_partitioned_config", "hourly_partitioned_config", "monthly_partitioned_config",
    "static_partitioned_config", "weekly_partitioned_config",
]


def partitions_of_job(job_name: str, partitions_def: Any, config: Any
                      ) -> tuple[PartitionsDefinition | None, PartitionedConfig | None]:
    """A job's ``(partitions_def, partitioned config)`` from its ``partitions_def=`` and ``config=``
    arguments: a ``PartitionedConfig`` brings its partitions; both given must agree."""
    if partitions_def is not None and not isinstance(partitions_def, PartitionsDefinition):
        raise DefinitionError(f"job '{job_name}': partitions_def must be a PartitionsDefinition "
                              f"(StaticPartitionsDefinition, DailyPartitionsDefinition, ...), not {partitions_def!r}")
    if not isinstance(config, PartitionedConfig):
        return partitions_def, None
    if partitions_def is not None and partitions_def != config.partitions_def:
        raise DefinitionError(f"job '{job_name}': partitions_def {partitions_def!r} differs from the partitions "
                              f"of its partitioned config '{config.name}' ({config.partitions_def!r})")
    return config.partitions_def, config


def run_request_for_partition(job: Any, partition_key: str, current_time: datetime | None = None
                              ) -> tuple[dict[str, Any], dict[str, str]]:
    """See :meth:`runyard.definitions.job.JobDefinition.run_request_for_partition`."""
    from ..tags import PARTITION_TAG, check_user_tags
    from .partitions import PartitionKeyError

    partitions_def = job.partitions_def
    if partitions_def is None:
        raise PartitionKeyError(f"job '{job.name}' is not partitioned, so it has no partition '{partition_key}'",
                                job_name=job.name, partition_key=partition_key)
    if not isinstance(partition_key, str) or not partitions_def.has_partition_key(partition_key, current_time):
        keys = partitions_def.get_partition_keys(current_time)
        sample = ", ".join(keys[:3]) + (f", ... {keys[-1]}" if len(keys) > 3 else "")
        raise PartitionKeyError(f"job '{job.name}' has no partition '{partition_key}' ({len(keys)} partitions: "
                                f"{sample or 'none yet'})", job_name=job.name, partition_key=partition_key)
    config = job.partitioned_config
    if config is None:
        run_config = json.loads(json.dumps(job.default_run_config))
        tags: dict[str, str] = {}
    else:
        run_config = config.get_run_config_for_partition_key(partition_key)
        tags = config.get_tags_for_partition_key(partition_key)
        check_user_tags(tags, f"partitioned config '{config.name}' of job '{job.name}'")
    return run_config, {**tags, PARTITION_TAG: partition_key}
