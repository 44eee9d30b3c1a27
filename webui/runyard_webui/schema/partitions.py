"""A partitioned job's partitions in GraphQL (docs/partitions.md): ``Job.partitions`` (the keys and
each one's last run) and ``Job.partitionRun`` (the run config and tags of one partition, what the
launchpad fills its editor with). Launching a partition is ``launchRun(partitionKey:)``."""

from __future__ import annotations

import graphene
from graphene.types.generic import GenericScalar

from .types import Run, Tag, tag_list, web

#: partitions one answer lists at most (an hourly job has ~9,000 a year)
MAX_PARTITIONS = 5000


class Partition(graphene.ObjectType):
    """One partition and its last run. Root: a :class:`runyard.operations.partitions.PartitionStatus`."""

    key = graphene.String(required=True)
    status = graphene.String(required=True, description="Its last run's status; MISSING when it never ran.")
    run_id = graphene.String(description="Its last run (null: never run).")
    run = graphene.Field(Run)

    resolve_key = staticmethod(lambda root, info: root.partition_key)
    resolve_status = staticmethod(lambda root, info: root.status)
    resolve_run_id = staticmethod(lambda root, info: root.run_id)
    resolve_run = staticmethod(lambda root, info: root.run)


class JobPartitions(graphene.ObjectType):
    """The partitions of a job. Root: ``(JobInLocation, PartitionsSnapshot)``."""

    kind = graphene.String(required=True, description="static or time_window")
    cadence = graphene.String(description="hourly, daily, weekly or monthly (time windows)")
    timezone = graphene.String()
    count = graphene.Int(required=True, description="How many partitions exist now.")
    keys = graphene.List(graphene.NonNull(graphene.String), required=True,
                         description="Every key, oldest first.")
    statuses = graphene.List(
        graphene.NonNull(Partition), required=True, limit=graphene.Int(default_value=500),
        description=f"The newest `limit` partitions (at most {MAX_PARTITIONS}), newest first, each with its last "
                    "run (read in one storage query).")

    resolve_kind = staticmethod(lambda root, info: root[1].kind)
    resolve_cadence = staticmethod(lambda root, info: root[1].cadence)
    resolve_timezone = staticmethod(lambda root, info: root[1].timezone)
    resolve_count = staticmethod(lambda root, info: len(root[1].get_partition_keys()))
    resolve_keys = staticmethod(lambda root, info: root[1].get_partition_keys())

    @staticmethod
    def resolve_statuses(root, info, limit=500):
        job_root, _ = root
        return web(info).partition_statuses(job_root.location, job_root.job.name,
                                            max(0, min(limit, MAX_PARTITIONS)))


class PartitionRun(graphene.ObjectType):
    """What a run of one partition gets from the job's partitioned config; ``ok: false`` with
    ``code``/``message`` for an unknown key (INVALID) or a failing config or server (UNAVAILABLE)."""

    ok = graphene.Boolean(required=True)
    code = graphene.String()
    message = graphene.String()
    partition_key = graphene.String(required=True)
    run_config = GenericScalar()
    run_config_yaml = graphene.String()
    tags = graphene.List(graphene.NonNull(Tag), required=True,
                         description="The partition's tags (runyard/partition is added at launch).")


def resolve_partitions(root, info):
    return None if root.job.partitions is None else (root, root.job.partitions)


def resolve_partition_run(root, info, partition_key):
    from runyard.errors import RunyardError

    from ..context import WebError, error_code
    from ..launchpad import dump_yaml

    try:
        run_config, tags = web(info).partition_run(root.location, root.job.name, partition_key)
    except (WebError, RunyardError) as exc:
        return PartitionRun(ok=False, code=error_code(exc), message=exc.message if isinstance(exc, WebError)
                            else str(exc), partition_key=partition_key, tags=[])
    return PartitionRun(ok=True, partition_key=partition_key, run_config=run_config,
                        run_config_yaml=dump_yaml(run_config), tags=tag_list(tags))


def partitions_field() -> graphene.Field:
    return graphene.Field(JobPartitions, resolver=resolve_partitions,
                          description="The job's partitions with their status; null when it is not partitioned.")


def partition_run_field() -> graphene.Field:
    return graphene.Field(PartitionRun, required=True, resolver=resolve_partition_run,
                          partition_key=graphene.String(required=True),
                          description="The run config and tags a run of this partition gets (runs the "
                                      "job's partitioned config on its code location; nothing is stored).")
