"""Open a workspace and find what it serves: code locations, their jobs, and the location a run came
from. The daemon, ``runyard daemon|schedule|sensor|dev`` and ``runyard webui`` open workspaces here."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..tags import LOCATION_TAG
from .errors import NotFoundError, OperationError, UnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from ..codeserver.snapshot import JobSnapshot
    from ..storage.records import RunRecord
    from ..workspace.workspace import CodeLocation, Workspace


class WorkspaceUsageError(OperationError):
    """Neither or both of definitions files and a workspace file were given."""

    exit_code = 2


def open_workspace(files: Sequence[str] = (), workspace_file: str | None = None, *, required: bool = True,
                   **kwargs: Any) -> Workspace | None:
    """A workspace, not started: one ``python_file`` location per file in ``files``, else the
    workspace file (default ``./workspace.yaml``). Without either and without ``./workspace.yaml``:
    None, or with ``required`` a :class:`WorkspaceUsageError`. ``kwargs`` go to
    :class:`~runyard.workspace.workspace.Workspace`."""
    from ..codeserver.protocol import default_location_name
    from ..workspace.config import DEFAULT_WORKSPACE_FILE, LocationOrigin
    from ..workspace.workspace import Workspace

    if files and workspace_file:
        raise WorkspaceUsageError("give definitions files (-f) or a workspace file (-w), not both")
    if files:
        origins = []
        for f in files:
            path = os.path.abspath(f)
            origins.append(LocationOrigin(kind="python_file", location_name=default_location_name(python_file=path),
                                          python_file=path, working_directory=os.path.dirname(path)))
        return Workspace(origins, **kwargs)
    if workspace_file is None and not os.path.exists(DEFAULT_WORKSPACE_FILE):
        if required:
            raise WorkspaceUsageError("give definitions files with -f FILE or a workspace file with -w FILE "
                                      f"(no ./{DEFAULT_WORKSPACE_FILE} here)")
        return None
    return Workspace.from_file(workspace_file or DEFAULT_WORKSPACE_FILE, **kwargs)


def loaded_locations(workspace: Workspace | None) -> list[CodeLocation]:
    """The locations that have a snapshot; one without is asked again first (a code server that
    came back is picked up), one that still fails is left out."""
    if workspace is None:
        return []
    out = []
    for loc in workspace.locations():
        if loc.snapshot is None:
            try:
                loc.refresh()
            except Exception:  # noqa: BLE001 - an unreachable location is simply not served now
                continue
        if loc.snapshot is not None:
            out.append(loc)
    return out


def find_location(locations: Iterable[CodeLocation], name: str) -> CodeLocation:
    locations = list(locations)
    for loc in locations:
        if loc.name == name:
            return loc
    known = ", ".join(loc.name for loc in locations) or "none"
    raise NotFoundError(f"no code location named '{name}'; locations: {known}")


def find_job(locations: Iterable[CodeLocation], location: str, job_name: str) -> tuple[CodeLocation, JobSnapshot]:
    """``(location, job snapshot)``; NotFoundError for an unknown location or job, UnavailableError
    for a location without a snapshot."""
    loc = find_location(locations, location)
    if loc.snapshot is None:
        detail = f": {loc.error.message}" if loc.error else ""
        raise UnavailableError(f"code location '{location}' is {loc.status}{detail}")
    job = loc.snapshot.jobs_by_name.get(job_name)
    if job is None:
        raise NotFoundError(f"no job named '{job_name}' in code location '{location}'; jobs: "
                            f"{', '.join(loc.snapshot.job_names) or 'none'}")
    return loc, job


def location_of_run(locations: Iterable[CodeLocation], run: RunRecord) -> tuple[CodeLocation, JobSnapshot]:
    """The code location (and job snapshot) a run came from: its ``runyard/location`` tag, else the
    location whose server loads the same code, else the only one with a job of that name."""
    from ..storage.records import CodePointer

    locations = list(locations)
    tagged = run.tags.get(LOCATION_TAG)
    if tagged:
        return find_job(locations, tagged, run.job_name)
    candidates = [loc for loc in locations if loc.snapshot and run.job_name in loc.snapshot.jobs_by_name]
    same_code = [loc for loc in candidates if loc.health is not None
                 and CodePointer.from_dict(loc.health.code_pointer) == run.code_pointer]
    chosen = same_code or candidates
    if len(chosen) != 1:
        where = "no code location" if not chosen else f"{len(chosen)} code locations"
        message = f"{where} of this workspace serve job '{run.job_name}' of run {run.run_id}"
        raise UnavailableError(message) if not chosen else OperationError(message)
    return chosen[0], chosen[0].snapshot.jobs_by_name[run.job_name]
