"""``POST /v1/partition-runs``: the run config and tags of a partitioned job's runs, one per
partition key, computed where the user's code is (the job's partitioned config functions).

Every key is checked first: an unknown key (or a job without partitions) answers with one
``unknown_partition`` error naming the job and the key, and nothing is computed. A partitioned
config function that raises, returns something that is not a run config, or overruns the
evaluation timeout is an ``error`` of the answer too (like a schedule's), never an HTTP error.
"""

from __future__ import annotations

from typing import Any

from .evaluation import UserCodeInvalid, evaluate_with_timeout
from .protocol import EvaluationResult, PartitionRunData, PartitionRunsResult, SerializedError

#: keys one request may ask for (a backfill asks in batches)
MAX_KEYS_PER_REQUEST = 10_000


def partition_runs(job: Any, partition_keys: list[str], timeout: float) -> PartitionRunsResult:
    from ..definitions.partitions import PartitionKeyError
    from ..errors import DefinitionError
    from ..tags import ReservedTagError

    if len(partition_keys) > MAX_KEYS_PER_REQUEST:
        return PartitionRunsResult(error=SerializedError(
            message=f"{len(partition_keys)} partition keys in one request: at most {MAX_KEYS_PER_REQUEST}",
            kind="bad_request"))
    if job.partitions_def is None:
        return PartitionRunsResult(error=SerializedError(
            message=f"job '{job.name}' is not partitioned", kind="unknown_partition"))
    keys = job.partitions_def.get_partition_keys() if partition_keys else []
    known = set(keys)
    for key in partition_keys:
        if key not in known:
            sample = ", ".join(keys[:3]) + (f", ... {keys[-1]}" if len(keys) > 3 else "")
            return PartitionRunsResult(error=SerializedError(
                message=f"job '{job.name}' has no partition '{key}' ({len(keys)} partitions: {sample or 'none yet'})",
                kind="unknown_partition"))
    what = f"partitioned config of job '{job.name}'"

    def call() -> Any:
        results = []
        for key in partition_keys:
            try:
                run_config, tags = job.run_request_for_partition(key)
            except (DefinitionError, ReservedTagError, PartitionKeyError) as exc:
                raise UserCodeInvalid(str(exc)) from None
            results.append(PartitionRunData(partition_key=key, run_config=run_config, tags=tags))
        return PartitionRunsResult(results=results)

    result = evaluate_with_timeout(what, call, timeout)
    if isinstance(result, EvaluationResult):  # the evaluation's error
        return PartitionRunsResult(error=result.error)
    return result
