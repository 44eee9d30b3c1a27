"""``job.execute_in_process(...)``: run a job in this process, by default on a throwaway instance,
and get a :class:`~runyard.execution.result.JobExecutionResult` back (docs/testing.md).

What it does, as Dagster's does: every step runs in this process, one after another (the job's
executor is replaced by ``in_process`` unless ``run_config`` names one under ``execution:``), outputs
are kept in memory for ``result.output_for_node(...)``, and with ``raise_on_error=True`` (the
default) a failed run raises: the exception the first failed op raised (the same object), or
:class:`~runyard.execution.result.RunFailedError` when the run failed outside an op.
"""

from __future__ import annotations

import copy
import tempfile
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..storage.records import CodePointer, Event
from .result import JobExecutionResult, capturing, remove_ephemeral

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.job import JobDefinition
    from ..instance.instance import Instance

#: the instance file of an ephemeral instance: SQLite in its temp home; step output is not captured
#: into files (prints stay where the caller sees them, e.g. in pytest's capture)
EPHEMERAL_INSTANCE_YAML = "compute_logs:\n  enabled: false\n"


def ephemeral_instance() -> tuple[Instance, str]:
    """A new instance in a new temp directory (never ``$RUNYARD_HOME``); ``(instance, home)``."""
    from ..instance.instance import Instance

    home = tempfile.mkdtemp(prefix="runyard-ephemeral-")
    return Instance.from_yaml(home, EPHEMERAL_INSTANCE_YAML), home


def run_prepared(instance: Instance, job: JobDefinition, run_id: str, *,
                 listeners: list[Callable[[Event], None]] | None = None, raise_on_error: bool = False,
                 keep_outputs: bool = True, ephemeral_home: str | None = None) -> JobExecutionResult:
    """Execute the stored run ``run_id`` of ``job`` here and wrap it in a result. ``ephemeral_home``:
    the instance is the result's own; it is disposed and its home deleted when the result is
    garbage-collected (or at interpreter exit)."""
    from .run_worker import execute_run

    with capturing(outputs=keep_outputs) as capture:
        try:
            run = execute_run(instance, run_id, job=job, listeners=listeners)
        except BaseException:
            if ephemeral_home is not None:
                remove_ephemeral(instance, ephemeral_home)
            raise
    result = JobExecutionResult(run, instance, job, capture=capture)
    if ephemeral_home is not None:
        weakref.finalize(result, remove_ephemeral, instance, ephemeral_home)
    if raise_on_error:
        result.raise_first_error()
    return result


def _in_process_job(job: JobDefinition, resources: dict[str, Any] | None) -> JobDefinition:
    """A shallow copy of ``job`` that runs its steps in process, with ``resources`` added (they win)."""
    clone = copy.copy(job)
    clone.executor_name, clone.executor_config = "in_process", {}
    if resources:
        clone._own_resources = {**job._own_resources, **resources}
        clone.resource_defs = {**job.resource_defs, **resources}
    return clone


def execute_in_process(job: Any, *, run_config: dict[str, Any] | None = None, instance: Instance | None = None,
                       tags: dict[str, str] | None = None, op_selection: str | list[str] | None = None,
                       partition_key: str | None = None, raise_on_error: bool = True,
                       resources: dict[str, Any] | None = None) -> JobExecutionResult:
    """Run ``job`` (a JobDefinition, or a GraphDefinition turned into one) in this process.

    ``instance=None``: an ephemeral instance (SQLite in a temp directory, deleted with the result).
    ``op_selection``: op selection syntax (``"*load"``, ``["a", "b"]``). ``partition_key``: the run's
    ``runyard/partition`` tag, and when the job is partitioned its run config for that partition
    (unless ``run_config`` is given). ``resources``: added to (and overriding) the job's.
    Bad run config, selection or tags raise before anything runs, as with ``execute_job``."""
    from ..definitions.job import JobDefinition
    from .api import _selected_steps, prepare_run

    if not isinstance(job, JobDefinition):
        job = job.to_job()
    job = _in_process_job(job, resources)
    tags = dict(tags or {})
    runyard_tags: dict[str, str] = {}
    if partition_key is not None:
        from ..tags import PARTITION_TAG

        if getattr(job, "partitions_def", None) is not None:
            partition_config, partition_tags = job.run_request_for_partition(partition_key)
            if run_config is None:
                run_config = partition_config
            for key, value in (partition_tags or {}).items():
                (runyard_tags if key.startswith("runyard/") else tags).setdefault(key, value)
        runyard_tags[PARTITION_TAG] = str(partition_key)
    ephemeral_home = None
    if instance is None:
        instance, ephemeral_home = ephemeral_instance()
    try:
        run = prepare_run(instance, job, code_pointer=CodePointer(), run_config=run_config, tags=tags,
                          step_keys_to_execute=_selected_steps(job, op_selection), runyard_tags=runyard_tags)
    except BaseException:
        if ephemeral_home is not None:
            remove_ephemeral(instance, ephemeral_home)
        raise
    return run_prepared(instance, job, run.run_id, raise_on_error=raise_on_error, ephemeral_home=ephemeral_home)
