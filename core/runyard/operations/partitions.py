"""Partitions from every front end: a partitioned job's partition statuses (the last run of each
partition) and launching the run of one partition from a code location (docs/partitions.md).

The partition's run config and tags come from the location's code server
(``POST /v1/partition-runs``: the user's partitioned config runs there); the run is then validated,
stored and submitted like any launch (:mod:`.launch`). ``runyard/partition`` is set by runyard, after
the code server checked the key: it is passed as one of runyard's own tags, never as a user's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..tags import PARTITION_TAG, check_user_tags
from .errors import NotFoundError, UnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.base import RunStorage
    from ..storage.records import RunRecord
    from ..workspace.workspace import CodeLocation
    from .launch import LaunchResult

#: the status of a partition that has no run
MISSING = "MISSING"

#: up to this many keys are looked up by value; more (an hourly job's years) read every run of the tag
_BY_VALUE_LIMIT = 900


@dataclass(frozen=True, kw_only=True)
class PartitionStatus:
    """One partition: its key, its last run (None: never run) and that run's status (``MISSING``
    without one)."""

    partition_key: str
    run: RunRecord | None = None

    @property
    def status(self) -> str:
        return MISSING if self.run is None else str(self.run.status)

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.run_id

    @property
    def end_time(self) -> float | None:
        return None if self.run is None else self.run.end_time


def partition_statuses(storage: RunStorage, job_name: str, keys: Sequence[str]) -> list[PartitionStatus]:
    """Each of ``keys`` (in order) with the last run of ``job_name`` for it."""
    keys = list(keys)
    if not keys:
        return []
    values = keys if len(keys) <= _BY_VALUE_LIMIT else None
    last = storage.get_last_runs_by_tag(PARTITION_TAG, job_name=job_name, values=values)
    return [PartitionStatus(partition_key=k, run=last.get(k)) for k in keys]


def partition_run_request(loc: CodeLocation, job_name: str, partition_key: str
                          ) -> tuple[dict[str, Any], dict[str, str]]:
    """``(run config, user tags)`` of ``partition_key``'s run, from the location's code server (the
    tags without ``runyard/partition``). An unknown key raises
    :class:`~runyard.definitions.partitions.PartitionKeyError`; an unknown job
    :class:`~.errors.NotFoundError`; a failing partitioned config or server :class:`~.errors.UnavailableError`."""
    from ..codeserver.errors import CodeServerError, CodeServerNotFoundError
    from ..definitions.partitions import PartitionConfigError

    try:
        (data,) = loc.client.partition_runs(job_name, [partition_key])
    except CodeServerNotFoundError as exc:
        raise NotFoundError(f"code location '{loc.name}' has no job '{job_name}'") from exc
    except (CodeServerError, PartitionConfigError) as exc:
        raise UnavailableError(f"code location '{loc.name}' could not compute the run of partition "
                               f"'{partition_key}' of job '{job_name}': {exc}") from exc
    tags = {k: v for k, v in data.tags.items() if k != PARTITION_TAG}
    return dict(data.run_config), tags


def launch_partition_from_location(instance: Instance, loc: CodeLocation, job_name: str, partition_key: str,
                                   run_config: Mapping[str, Any] | None = None,
                                   tags: Mapping[str, str] | None = None, ops: str | None = None, *,
                                   runyard_tags: Mapping[str, str] | None = None) -> LaunchResult:
    """Launch the run of ``partition_key``: the partition's run config with ``run_config`` merged over
    it (None: the partition's own), the partition's tags and ``tags``, and ``runyard/partition``.
    Errors as :func:`partition_run_request` and :func:`.launch.launch_from_location`."""
    from ..definitions.config import deep_merge
    from .launch import launch_from_location

    check_user_tags(tags)
    partition_config, partition_tags = partition_run_request(loc, job_name, partition_key)
    merged = deep_merge(partition_config, dict(run_config or {})) if isinstance(run_config, Mapping) or \
        run_config is None else run_config
    return launch_from_location(instance, loc, job_name, merged, {**partition_tags, **(tags or {})}, ops,
                                runyard_tags={**(runyard_tags or {}), PARTITION_TAG: partition_key})


__all__ = ["MISSING", "PartitionStatus", "launch_partition_from_location", "partition_run_request",
           "partition_statuses"]
