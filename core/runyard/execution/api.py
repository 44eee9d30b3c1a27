"""Creating and running runs from Python: what the CLI, tests and the web UI call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..storage.records import FINISHED_STATUSES, CodePointer, Event, RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.graph_view import JobGraph
    from ..definitions.job import JobDefinition
    from ..instance.instance import Instance
    from .result import JobExecutionResult


def prepare_run(instance: Instance, job: JobDefinition, *, code_pointer: CodePointer,
                run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                step_keys_to_execute: list[str] | None = None, parent_run_id: str | None = None,
                root_run_id: str | None = None, runyard_tags: dict[str, str] | None = None) -> RunRecord:
    """Validate run config (and the executor) against ``job``, then store a NOT_STARTED run.
    ``runyard_tags``: reserved tags runyard's own callers set (the CLI's ``runyard/user``), added after
    the user's ``tags`` were checked.

    Raises :class:`runyard.errors.RunConfigError` before anything is written if the config is bad,
    and :class:`runyard.errors.DefinitionError` if an op needs a resource the job does not provide;
    :class:`runyard.tags.ReservedTagError` if ``tags`` (or the job's) set a reserved ``runyard/`` tag.
    ``step_keys_to_execute`` limits the run to those steps; a run without a parent cannot then read
    an input from a step outside them (a ``RunConfigError`` names the op, input and upstream op).
    """
    from ..definitions.config import resolve_run_config
    from ..definitions.selection import check_fresh_selection
    from ..tags import check_user_tags
    from .plan import ExecutionPlan

    check_user_tags(job.tags, f"job '{job.name}'", "tags")
    if parent_run_id is None:  # a re-execution's tags are its parent's, checked by plan_reexecution
        check_user_tags(tags)
    job._check_resources(final=True)  # a job run without Definitions never had its resources checked
    resolved = resolve_run_config(job, run_config, check_executor=True)  # every problem in one error
    ExecutionPlan.build(job, step_keys_to_execute)
    if step_keys_to_execute is not None and parent_run_id is None:
        check_fresh_selection(job, step_keys_to_execute)
    all_tags = {**job.tags, **resolved.tags, **(tags or {}), **(runyard_tags or {})}
    return instance.create_run(job_name=job.name, run_config=run_config or {}, tags=all_tags,
                               code_pointer=code_pointer, step_keys_to_execute=step_keys_to_execute,
                               parent_run_id=parent_run_id, root_run_id=root_run_id)


def _selected_steps(job: JobDefinition, ops: str | list[str] | None) -> list[str] | None:
    from ..definitions.selection import parse_op_selection

    return None if ops is None else parse_op_selection(job, ops)


def execute_job(job: JobDefinition, *, instance: Instance | None = None,
                run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                code_pointer: CodePointer | None = None,
                listeners: list[Callable[[Event], None]] | None = None,
                ops: str | list[str] | None = None, raise_on_error: bool = False) -> JobExecutionResult:
    """Run ``job`` to completion in this process (like ``runyard job execute``) with its own
    executor; return a :class:`~runyard.execution.result.JobExecutionResult` (``.success``,
    ``.output_for_node(...)``, ``.all_events``; the run record's fields, ``.status``, ``.run_id``...,
    are readable on it too). Outputs are read back through their IO managers (none is kept in memory).
    ``ops`` is an op selection (``"*load"``, ``"extract,transform"``, see ``runyard.definitions.
    selection``): only those steps run. ``raise_on_error``: as ``job.execute_in_process``."""
    from ..instance.instance import Instance
    from .in_process_run import run_prepared

    instance = instance or Instance.open()
    run = prepare_run(instance, job, code_pointer=code_pointer or CodePointer(), run_config=run_config,
                      tags=tags, step_keys_to_execute=_selected_steps(job, ops))
    return run_prepared(instance, job, run.run_id, listeners=listeners, raise_on_error=raise_on_error,
                        keep_outputs=False)


def launch_job(instance: Instance, job: JobDefinition, *, code_pointer: CodePointer,
               run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
               ops: str | list[str] | None = None) -> RunRecord:
    """Create a run and submit it through the run coordinator (and so the launcher); see
    :func:`runyard.operations.launch.launch_from_definitions`."""
    from ..operations.launch import launch_from_definitions

    _ = instance.run_coordinator, instance.run_launcher  # config errors before the selection is parsed
    return launch_from_definitions(instance, job, code_pointer=code_pointer, run_config=run_config, tags=tags,
                                   step_keys_to_execute=_selected_steps(job, ops))


REEXECUTION_MODES = ("all", "from_failure")


def check_reexecutable(instance: Instance, run_id: str, mode: str, ops: Any) -> RunRecord:
    """The parent run of a re-execution, or an error: unknown mode, ``ops`` with ``from_failure``,
    a run still in progress, or a run without a code pointer."""
    from ..errors import InvalidTransitionError, RunyardError

    if mode not in REEXECUTION_MODES:
        raise RunyardError(f"unknown re-execution mode '{mode}'; use one of {', '.join(REEXECUTION_MODES)}")
    if mode == "from_failure" and ops is not None:
        raise RunyardError("a re-execution from failure cannot also take an op selection: from failure "
                           "re-executes the steps that did not succeed; an op selection names the steps")
    parent = instance.get_run(run_id)
    if parent.status not in FINISHED_STATUSES:
        raise InvalidTransitionError(
            f"Run {run_id} is {parent.status}; only a finished run (SUCCESS, FAILURE or CANCELED) can be "
            "re-executed. Wait for it to finish or terminate it first.")
    if not (parent.code_pointer.python_file or parent.code_pointer.module):
        raise RunyardError(f"Run {run_id} has no code pointer (it was run from Python without one), so "
                           "its job cannot be loaded to re-execute it; pass code_pointer= when creating runs "
                           "that you want to re-execute.")
    return parent


def plan_reexecution(instance: Instance, parent: RunRecord, graph: JobGraph, mode: str,
                     selected: list[str] | None, tags: dict[str, str] | None = None
                     ) -> tuple[list[str] | None, dict[str, str], str]:
    """``(step keys to execute, tags, root run id)`` of a re-execution of ``parent``.

    ``graph`` is the job's graph (:class:`~runyard.definitions.graph_view.JobGraph`): a
    :class:`~runyard.definitions.job.JobDefinition`, or where user code is not imported (the web UI,
    the daemon) the :class:`~runyard.codeserver.snapshot.JobSnapshot` from the code server.
    ``selected`` is the op selection already resolved to step keys (None: no selection). Raises when
    from-failure finds nothing to re-execute or when a step needs an output no run of the chain made.
    """
    from ..errors import RunyardError
    from ..tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG, ROOT_RUN_ID_TAG, check_user_tags
    from .reexecution import resolve_external_outputs, steps_to_retry

    check_user_tags(tags)
    step_keys = selected
    if mode == "from_failure":
        step_keys = steps_to_retry(instance, graph, parent)
        if not step_keys:
            raise RunyardError(
                f"Run {parent.run_id} ({parent.status}) has no failed, skipped or unstarted step: there is "
                "nothing to re-execute from failure. Re-execute all steps or an op selection instead.")
    resolve_external_outputs(instance, graph, step_keys, parent.run_id)  # every needed output exists
    root_run_id = parent.root_run_id or parent.run_id
    # a retry's number is the daemon's count of its retries: a re-execution made otherwise is none
    inherited = {k: v for k, v in parent.tags.items() if k != RETRY_NUMBER_TAG}
    all_tags = {**inherited, **(tags or {}), PARENT_RUN_ID_TAG: parent.run_id, ROOT_RUN_ID_TAG: root_run_id}
    return step_keys, all_tags, root_run_id


def prepare_reexecution(instance: Instance, run_id: str, *, mode: str = "all",
                        ops: str | list[str] | None = None,
                        tags: dict[str, str] | None = None) -> RunRecord:
    """Validate and store (NOT_STARTED, not submitted) a re-execution of run ``run_id``.

    The new run has the parent's job, run config, code pointer and tags (``tags`` win), plus
    ``parent_run_id``/``root_run_id`` and the tags ``runyard/parent_run_id``/``runyard/root_run_id``.
    ``mode="all"`` runs every step; ``mode="from_failure"`` the steps of the parent that did not
    succeed and everything downstream of them; ``ops`` (only with ``mode="all"``) an op selection.
    Steps not executed reuse the outputs stored by the parent chain. Nothing is stored when the
    run does not exist, is still in progress, has nothing to re-execute from failure, or when a
    selected step needs an output that no run of the chain produced.
    """
    from ..workspace.loader import load_definitions

    parent = check_reexecutable(instance, run_id, mode, ops)
    job = load_definitions(parent.code_pointer).get_job(parent.job_name)
    step_keys, all_tags, root_run_id = plan_reexecution(instance, parent, job, mode,
                                                        _selected_steps(job, ops), tags)
    return prepare_run(instance, job, code_pointer=parent.code_pointer, run_config=parent.run_config,
                       tags=all_tags, step_keys_to_execute=step_keys, parent_run_id=parent.run_id,
                       root_run_id=root_run_id)


def reexecute_run(instance: Instance, run_id: str, *, mode: str = "all", ops: str | list[str] | None = None,
                  tags: dict[str, str] | None = None) -> RunRecord:
    """Create a re-execution of run ``run_id`` (see :func:`prepare_reexecution`) and submit it
    through the run coordinator, like :func:`launch_job`; return the new run."""
    run = prepare_reexecution(instance, run_id, mode=mode, ops=ops, tags=tags)
    return instance.submit_run(run)


def is_finished(run: RunRecord) -> bool:
    return run.status in FINISHED_STATUSES
