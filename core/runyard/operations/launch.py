"""Launch a run: validate it, store it with its code pointer and tags, hand it to the run
coordinator.

From a code location (the web UI's launchpad and GraphQL ``launchRun``, and each run a schedule or
sensor tick requests): the location's code server validates the run config and op selection, the
run gets the code pointer that server reports and the ``runyard/location`` tag, so the run worker
(not the caller) imports the job and later lookups find the location by name. The daemon needs a
step between creating and submitting (recording the run on its tick), so the pieces are public:
:func:`validate_on_location`, :func:`create_from_location`, :func:`submit`.

From definitions imported in this process (``runyard job launch -f FILE``):
:func:`launch_from_definitions`.

Reserved tags: the user's ``tags`` (``--tag``, GraphQL ``tags``) and the job's and run config's tags
must not set a reserved ``runyard/`` tag other than :data:`runyard.tags.USER_TAGS`
(:func:`runyard.tags.check_user_tags`, raising :class:`~runyard.tags.ReservedTagError`). The
launch functions here check what the user gave; :func:`create_from_location` also checks the tags
the location's validation reports (the job's and the run config's), and adds the tags runyard sets
itself (a tick's, a re-execution's) from its ``tags`` argument, which only runyard code fills.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..tags import CONTAINER_CONTEXT_TAG, IMAGE_TAG, LOCATION_TAG, check_user_tags
from .errors import UnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from ..codeserver.protocol import ConfigErrorData, ValidationResult
    from ..definitions.job import JobDefinition
    from ..instance.instance import Instance
    from ..storage.records import CodePointer, Event, RunRecord
    from ..workspace.workspace import CodeLocation


@dataclass(frozen=True, kw_only=True)
class LaunchResult:
    """What a launch did. ``errors``: the run config problems (nothing was stored). ``message``: the
    run was stored but the coordinator or launcher failed (the run is then FAILURE). Else ``run`` as
    the coordinator left it (QUEUED, STARTING, ...)."""

    run: RunRecord | None = None
    errors: Sequence[ConfigErrorData] = field(default_factory=tuple)
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.run is not None and not self.errors and self.message is None


def location_code_pointer(loc: CodeLocation) -> CodePointer:
    """The code pointer a location's server loads (what a run worker imports)."""
    from ..storage.records import CodePointer

    health = loc.health
    return CodePointer.from_dict(health.code_pointer) if health is not None else CodePointer()


def location_image(loc: CodeLocation) -> str | None:
    """The container image of a location's runs: its workspace entry's ``image``, else the one its
    code server reports; ``None`` when neither says (a container launcher then uses its own)."""
    health = loc.health
    return loc.origin.image or (health.image if health is not None else None)


def location_tags(loc: CodeLocation) -> dict[str, str]:
    """The tags every run of ``loc`` gets: ``runyard/location``, and ``runyard/image`` /
    ``runyard/container_context`` when the location has an image / a ``container_context``."""
    image = location_image(loc)
    context = loc.origin.container_context
    return {LOCATION_TAG: loc.name, **({IMAGE_TAG: image} if image else {}),
            **({CONTAINER_CONTEXT_TAG: json.dumps(context, sort_keys=True)} if context else {})}


def validate_on_location(loc: CodeLocation, job_name: str, run_config: Mapping[str, Any] | None,
                         ops: str | None = None) -> ValidationResult:
    """The run config (and op selection) checked by the location's code server; an unreachable or
    failing server is an :class:`UnavailableError` naming the location."""
    from ..codeserver.errors import CodeServerError

    try:
        return loc.client.validate(job_name, dict(run_config or {}), ops or None)
    except CodeServerError as exc:
        raise UnavailableError(f"code location '{loc.name}' could not validate the run: {exc}") from exc


def create_from_location(instance: Instance, loc: CodeLocation, validation: ValidationResult, *,
                         run_config: Mapping[str, Any] | None, tags: Mapping[str, str] | None = None,
                         run_id: str | None = None, code_pointer: CodePointer | None = None,
                         step_keys_to_execute: list[str] | None = None, parent_run_id: str | None = None,
                         root_run_id: str | None = None, events: Sequence[Event] = ()) -> RunRecord:
    """Store a NOT_STARTED run that ``validation`` accepted: the job's tags, then ``tags``, then the
    ``runyard/location`` tag; the location's code pointer unless ``code_pointer`` is given; the
    validated step selection unless ``step_keys_to_execute`` is given; the ``runyard/image`` tag when
    the location has an image (:func:`location_image`), the ``runyard/container_context`` tag when its
    workspace entry has a ``container_context``. ``tags`` may hold reserved
    tags (runyard's callers set them); a user's tags are checked by the caller first. The tags the
    validation reports (the job's and the run config's) are the user's: a reserved one is refused.
    ``events`` are stored in the run's own transaction."""
    check_user_tags(validation.tags, f"job '{validation.job_name}' or run config")
    return instance.create_run(
        job_name=validation.job_name, run_config=dict(run_config or {}),
        tags={**validation.tags, **(tags or {}), **location_tags(loc)},
        code_pointer=code_pointer or location_code_pointer(loc), run_id=run_id,
        step_keys_to_execute=(validation.step_keys_to_execute if step_keys_to_execute is None
                              else step_keys_to_execute),
        parent_run_id=parent_run_id, root_run_id=root_run_id, events=events)


def submit(instance: Instance, run: RunRecord) -> LaunchResult:
    """Hand a stored run to the run coordinator. A coordinator or launcher failure is not raised:
    the run is then FAILURE (with the error as its event) and the result says so."""
    try:
        return LaunchResult(run=instance.submit_run(run))
    except Exception as exc:  # noqa: BLE001 - the coordinator/launcher marked the run FAILURE
        return LaunchResult(run=instance.storage.get_run(run.run_id), message=f"launch failed: {exc}")


def launch_from_location(instance: Instance, loc: CodeLocation, job_name: str, run_config: Any = None,
                         tags: Mapping[str, str] | None = None, ops: str | None = None, *,
                         runyard_tags: Mapping[str, str] | None = None) -> LaunchResult:
    """Validate on ``loc``'s code server, store the run and submit it. Invalid run config comes back
    as ``errors`` with nothing stored; a reserved tag in ``tags`` raises
    :class:`~runyard.tags.ReservedTagError` (nothing stored). ``runyard_tags``: reserved tags the
    caller (runyard code: the web UI's ``runyard/user``) sets on the run after that check."""
    from ..codeserver.protocol import ConfigErrorData

    check_user_tags(tags)
    if run_config is None:
        run_config = {}
    if not isinstance(run_config, Mapping):
        return LaunchResult(errors=(ConfigErrorData(message="run config must be a mapping", reason="type"),))
    validation = validate_on_location(loc, job_name, run_config, ops)
    if not validation.ok:
        return LaunchResult(errors=tuple(validation.errors))
    return submit(instance, create_from_location(instance, loc, validation, run_config=run_config,
                                                 tags={**(tags or {}), **(runyard_tags or {})}))


def launch_from_definitions(instance: Instance, job: JobDefinition, *, code_pointer: CodePointer,
                            run_config: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
                            step_keys_to_execute: list[str] | None = None,
                            runyard_tags: Mapping[str, str] | None = None) -> RunRecord:
    """Validate against ``job`` (imported in this process), store the run and submit it. A bad
    coordinator or launcher config fails before the run is stored; a bad run config raises
    :class:`~runyard.errors.RunConfigError` with nothing stored, a reserved tag
    :class:`~runyard.tags.ReservedTagError`. The run has no location tag: it did not come from a
    workspace location. ``runyard_tags``: reserved tags runyard code sets (the CLI's ``runyard/user``)."""
    from ..execution.api import prepare_run

    _ = instance.run_coordinator, instance.run_launcher
    run = prepare_run(instance, job, code_pointer=code_pointer, run_config=dict(run_config or {}),
                      tags=dict(tags or {}), step_keys_to_execute=step_keys_to_execute,
                      runyard_tags=dict(runyard_tags or {}))
    return instance.submit_run(run)
