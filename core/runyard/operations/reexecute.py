"""Re-execute a finished run as a new run of the same job and run config, linked to it
(``parent_run_id``, ``root_run_id`` and their tags). Steps not executed again read the outputs
stored by the parent chain.

Planned either from the job's snapshot in the run's code location (the web UI: no user code is
imported) or from the definitions at the run's code pointer, imported in this process
(``runyard run reexecute``). Both use the same planning (:func:`runyard.execution.api.plan_reexecution`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .launch import LaunchResult, create_from_location, submit, validate_on_location
from .workspace import location_of_run

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import RunRecord
    from ..workspace.workspace import CodeLocation


def reexecute_from_location(instance: Instance, locations: Iterable[CodeLocation], run_id: str, *,
                            mode: str = "all", ops: str | None = None,
                            tags: Mapping[str, str] | None = None) -> LaunchResult:
    """Re-execute ``run_id`` (``mode`` ``all``, optionally with an op selection ``ops``, or
    ``from_failure``), planned from the job snapshot of the location the run came from; the run
    config is validated against the job as that location serves it now. Invalid run config comes
    back as ``errors`` with nothing stored. ``tags`` may not set a reserved tag
    (:class:`~runyard.tags.ReservedTagError`, checked by the planning both re-execution paths share);
    the parent's tags, reserved ones included, carry over."""
    from ..definitions.selection import parse_op_selection
    from ..execution.api import check_reexecutable, plan_reexecution

    parent = check_reexecutable(instance, run_id, mode, ops or None)
    loc, job = location_of_run(locations, parent)  # the job snapshot is the graph to plan on
    selected = parse_op_selection(job, ops) if ops else None
    step_keys, all_tags, root_run_id = plan_reexecution(instance, parent, job, mode, selected, dict(tags or {}))
    validation = validate_on_location(loc, parent.job_name, parent.run_config)
    if not validation.ok:
        return LaunchResult(errors=tuple(validation.errors))
    # The parent's code pointer, not the location's: a re-execution runs the code the parent ran.
    run = create_from_location(instance, loc, validation, run_config=parent.run_config, tags=all_tags,
                               code_pointer=parent.code_pointer, step_keys_to_execute=step_keys,
                               parent_run_id=parent.run_id, root_run_id=root_run_id)
    return submit(instance, run)


def reexecute_from_definitions(instance: Instance, run_id: str, *, mode: str = "all", ops: str | None = None,
                               tags: Mapping[str, str] | None = None) -> RunRecord:
    """Re-execute ``run_id`` with its job imported from its code pointer in this process; raises
    what :func:`runyard.execution.api.prepare_reexecution` raises (a reserved tag in ``tags``:
    :class:`~runyard.tags.ReservedTagError`, checked by its planning)."""
    from ..execution.api import reexecute_run

    return reexecute_run(instance, run_id, mode=mode, ops=ops, tags=dict(tags or {}))
