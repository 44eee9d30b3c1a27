"""Open a workspace and find what it serves: code locations, their jobs, and the location a run came
from; keep a process's view of its locations current (:class:`LocationWatch`) and announce reloads
to the other processes. The daemon, ``runyard daemon|schedule|sensor|dev`` and ``runyard webui``
open workspaces here."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..tags import LOCATION_TAG
from .errors import NotFoundError, OperationError, UnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from ..codeserver.snapshot import JobSnapshot
    from ..storage.base import RunStorage
    from ..storage.records import RunRecord
    from ..workspace.workspace import CodeLocation, Workspace

log = logging.getLogger("runyard.workspace")

_WATCHES: weakref.WeakKeyDictionary[Workspace, LocationWatch] = weakref.WeakKeyDictionary()
_WATCHES_LOCK = threading.Lock()


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


#: where a reload of a code location is announced to other processes: the key-value entry
#: ``<prefix><location name>``, holding a fresh id per reload
RELOAD_KEY_PREFIX = "runyard/location-reload/"
#: how long a status check waits for a code server's health answer
HEALTH_TIMEOUT_SECONDS = 2.0


def announce_reload(storage: RunStorage, name: str) -> str:
    """Tell every process serving location ``name`` that its definitions were reloaded; returns the
    announcement as stored (a fresh id and the time)."""
    announcement = json.dumps({"id": uuid.uuid4().hex, "at": time.time()})
    storage.kv_set(RELOAD_KEY_PREFIX + name, announcement)
    return announcement


class LocationWatch:
    """This process's view of a workspace's code locations, kept current: the daemon's and the web
    UI's (each process has its own workspace: its own code servers for ``python_file`` and
    ``python_module`` entries, and clients of the shared servers of ``code_server`` entries).

    Each location is checked when asked for and its last check is older than ``max_age`` seconds:
    its server's health is asked (waiting at most ``health_timeout``), so the status is the
    location's real health and a new snapshot id (a reload of a shared server, by anyone) fetches
    the new snapshot. A reload announced through storage by another process (:meth:`reload` there,
    ``runyard workspace reload``, the web UI's reload) makes this process reload its own server of
    a local location first. Thread-safe; storage trouble only delays announcements. Get one with
    :meth:`of`: processes that share a workspace (``runyard dev``: the daemon and the web UI) share
    its watch, so a reload made by one is not made again by the other."""

    def __init__(self, workspace: Workspace, storage: RunStorage | Callable[[], RunStorage] | None = None, *,
                 max_age: float = 1.0, health_timeout: float = HEALTH_TIMEOUT_SECONDS):
        self.workspace = workspace
        self._storage = storage  # or how to get it when needed (the web UI's may be down at first)
        self.max_age = max_age
        self.health_timeout = health_timeout
        self._lock = threading.Lock()
        # announcements made before now are already loaded: this process's servers started after
        self._seen = {loc.name: self._announced(loc.name) for loc in workspace.locations()}

    @classmethod
    def of(cls, workspace: Workspace, storage: RunStorage | Callable[[], RunStorage] | None = None, *,
           health_timeout: float = HEALTH_TIMEOUT_SECONDS) -> LocationWatch:
        """The watch of ``workspace`` in this process (made on first use)."""
        with _WATCHES_LOCK:
            watch = _WATCHES.get(workspace)
            if watch is None:
                watch = _WATCHES[workspace] = cls(workspace, storage, health_timeout=health_timeout)
            return watch

    @property
    def storage(self) -> RunStorage | None:
        return self._storage() if callable(self._storage) else self._storage

    def _announced(self, name: str) -> str | None:
        try:
            storage = self.storage
            return None if storage is None else storage.kv_get(RELOAD_KEY_PREFIX + name)
        except Exception as exc:  # noqa: BLE001 - storage down: the announcement is read next time
            log.debug("reading the reload announcement of %s failed: %s", name, exc)
            return None

    def locations(self, max_age: float | None = None) -> list[CodeLocation]:
        """Every location, in workspace order, each checked if its last check is older than
        ``max_age`` (default: the watch's)."""
        max_age = self.max_age if max_age is None else max_age
        now = time.monotonic()
        for loc in self.workspace.locations():
            if loc.checked_at is None or now - loc.checked_at >= max_age:
                self.check(loc)
        return self.workspace.locations()

    def loaded(self, max_age: float | None = None) -> list[CodeLocation]:
        """The locations that have a snapshot (after checking them)."""
        return [loc for loc in self.locations(max_age) if loc.snapshot is not None]

    def check(self, loc: CodeLocation) -> str:
        """Reload ``loc``'s own server if another process announced a reload, then ask its health.
        Returns its status."""
        from ..codeserver.errors import CodeServerError

        loc.checked_at = time.monotonic()  # concurrent askers use this check's answer
        announced = self._announced(loc.name)
        with self._lock:
            new = announced is not None and announced != self._seen.get(loc.name)
            if new:
                self._seen[loc.name] = announced
        if new and loc.is_local:
            log.info("code location %s was reloaded elsewhere; reloading it here", loc.name)
            try:
                loc.client.reload()
            except CodeServerError as exc:  # not running now: a restarted server loads the new code
                log.warning("reloading code location %s failed: %s", loc.name, exc)
        return loc.refresh(health_timeout=self.health_timeout)

    def reload(self, name: str | None = None) -> list[dict[str, Any]]:
        """Reload one location (or all) here, then announce it to other processes for each location
        whose server answered. The results of :meth:`Workspace.reload`."""
        results = self.workspace.reload(name)
        for r in results:
            if r["status"] == "unavailable" or self._storage is None:
                continue
            try:
                announcement = announce_reload(self.storage, r["location"])
            except Exception as exc:  # noqa: BLE001 - reloaded here; others pick it up on their next reload
                log.warning("announcing the reload of %s failed: %s", r["location"], exc)
                continue
            with self._lock:
                self._seen[r["location"]] = announcement
        return results


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
