"""Creating and running runs from Python: what the CLI, tests and (later) the web UI call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..storage.records import CodePointer, Event, RunRecord, RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.job import JobDefinition
    from ..instance.instance import Instance


def prepare_run(instance: Instance, job: JobDefinition, *, code_pointer: CodePointer,
                run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                step_keys_to_execute: list[str] | None = None, parent_run_id: str | None = None,
                root_run_id: str | None = None) -> RunRecord:
    """Validate run config (and the executor) against ``job``, then store a NOT_STARTED run.

    Raises :class:`runyard.errors.RunConfigError` before anything is written if the config is bad,
    and :class:`runyard.errors.DefinitionError` if an op needs a resource the job does not provide.
    """
    from ..definitions.config import resolve_run_config, validate_executor
    from .plan import ExecutionPlan

    job._check_resources(final=True)  # a job run without Definitions never had its resources checked
    resolved = resolve_run_config(job, run_config)
    validate_executor(resolved)
    ExecutionPlan.build(job, step_keys_to_execute)
    all_tags = {**job.tags, **resolved.tags, **(tags or {})}
    return instance.create_run(job_name=job.name, run_config=run_config or {}, tags=all_tags,
                               code_pointer=code_pointer, step_keys_to_execute=step_keys_to_execute,
                               parent_run_id=parent_run_id, root_run_id=root_run_id)


def execute_job(job: JobDefinition, *, instance: Instance | None = None,
                run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                code_pointer: CodePointer | None = None,
                listeners: list[Callable[[Event], None]] | None = None) -> RunRecord:
    """Run ``job`` to completion in this process (like ``runyard job execute``); return the run."""
    from ..instance.instance import Instance
    from .run_worker import execute_run

    instance = instance or Instance.open()
    run = prepare_run(instance, job, code_pointer=code_pointer or CodePointer(), run_config=run_config,
                      tags=tags)
    return execute_run(instance, run.run_id, job=job, listeners=listeners)


def launch_job(instance: Instance, job: JobDefinition, *, code_pointer: CodePointer,
               run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> RunRecord:
    """Create a run and submit it through the run coordinator (and so the launcher)."""
    run = prepare_run(instance, job, code_pointer=code_pointer, run_config=run_config, tags=tags)
    return instance.submit_run(run)


def is_finished(run: RunRecord) -> bool:
    return run.status in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED)
