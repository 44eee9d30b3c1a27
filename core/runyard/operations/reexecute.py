"""Re-execute a finished run as a new run of the same job and run config, linked to it
(``parent_run_id``, ``root_run_id`` and their tags). Steps not executed again read the outputs
stored by the parent chain.

Planned either from the job's snapshot in the run's code location (the web UI: no user code is
imported) or from the definitions at the run's code pointer, imported in this process
(``runyard run reexecute``). Both use the same planning (:func:`runyard.execution.api.plan_reexecution`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .launch import LaunchResult, create_from_location, submit, validate_on_location
from .workspace import location_of_run

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import Event, RunRecord
    from ..workspace.workspace import CodeLocation


def reexecute_from_location(instance: Instance, locations: Iterable[CodeLocation], run_id: str, *,
                            mode: str = "all", ops: str | None = None,
                            tags: Mapping[str, str] | None = None,
                            runyard_tags: Mapping[str, str] | None = None) -> LaunchResult:
    """Re-execute ``run_id`` (``mode`` ``all``, optionally with an op selection ``ops``, or
    ``from_failure``), planned from the job snapshot of the location the run came from; the run
    config is validated against the job as that location serves it now. Invalid run config comes
    back as ``errors`` with nothing stored. ``tags`` may not set a reserved tag
    (:class:`~runyard.tags.ReservedTagError`, checked by the planning both re-execution paths share);
    the parent's tags, reserved ones included, carry over; ``runyard_tags`` (reserved tags runyard code
    sets, e.g. the web UI's ``runyard/user``) go on top."""
    result = create_reexecution_on_location(instance, locations, run_id, mode=mode, ops=ops, tags=tags,
                                            runyard_tags=runyard_tags)
    if result.run is None:
        return result
    return submit(instance, result.run)


def create_reexecution_on_location(instance: Instance, locations: Iterable[CodeLocation], run_id: str, *,
                                   mode: str = "all", ops: str | None = None, tags: Mapping[str, str] | None = None,
                                   runyard_tags: Mapping[str, str] | None = None, new_run_id: str | None = None,
                                   events: Sequence[Event] = ()) -> LaunchResult:
    """Store (NOT_STARTED, not submitted) the re-execution :func:`reexecute_from_location` makes.

    For runyard's own callers (the daemon's run retries): ``runyard_tags`` are reserved tags runyard
    sets on the new run (``runyard/retry_number``), added after the user's ``tags`` were checked;
    ``new_run_id`` is the new run's id (a retry's is derived from the failed run's, so storage holds
    it once however many daemons try); ``events`` (on any run) are stored in the new run's transaction."""
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
    run = create_from_location(instance, loc, validation, run_config=parent.run_config,
                               tags={**all_tags, **(runyard_tags or {})}, run_id=new_run_id,
                               code_pointer=parent.code_pointer, step_keys_to_execute=step_keys,
                               parent_run_id=parent.run_id, root_run_id=root_run_id, events=events)
    return LaunchResult(run=run)


def reexecute_from_definitions(instance: Instance, run_id: str, *, mode: str = "all", ops: str | None = None,
                               tags: Mapping[str, str] | None = None) -> RunRecord:
    """Re-execute ``run_id`` with its job imported from its code pointer in this process; raises
    what :func:`runyard.execution.api.prepare_reexecution` raises (a reserved tag in ``tags``:
    :class:`~runyard.tags.ReservedTagError`, checked by its planning)."""
    from ..execution.api import reexecute_run

    return reexecute_run(instance, run_id, mode=mode, ops=ops, tags=dict(tags or {}))
