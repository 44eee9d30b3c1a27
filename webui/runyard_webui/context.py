"""What the web UI adds to :mod:`runyard.operations`: the read-only guard, the mapping of refusals
to the GraphQL error codes, web limits (long poll, page sizes), and not asking a code server that
is down on every page view. The pages and the GraphQL API reach everything through a
:class:`WebContext`; the work itself (launch, re-execute, toggle, follow, delete) is in
:mod:`runyard.operations`.

Nothing here imports user code: a launch is validated by the location's code server and stored with
the code pointer that server reports, so the run worker (not the web UI) imports the job.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .limits import LongPollSlots

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance
    from runyard.operations.follow import EventPage
    from runyard.operations.instigators import InstigatorInfo
    from runyard.operations.launch import LaunchResult
    from runyard.operations.workspace import LocationWatch
    from runyard.storage.records import RunRecord
    from runyard.workspace.workspace import CodeLocation, Workspace

    from .settings import WebuiSettings

#: GraphQL ``code`` of each kind of refusal
NOT_FOUND, INVALID, READ_ONLY, UNAVAILABLE = "NOT_FOUND", "INVALID", "READ_ONLY", "UNAVAILABLE"


class WebError(Exception):
    """A request the web UI refuses; ``code`` is one of NOT_FOUND, INVALID, READ_ONLY, UNAVAILABLE."""

    def __init__(self, message: str, code: str = INVALID):
        super().__init__(message)
        self.message, self.code = message, code


def error_code(exc: Exception) -> str:
    """The GraphQL code of a refusal raised by an operation."""
    from runyard.errors import RunNotFoundError
    from runyard.operations.errors import NotFoundError, UnavailableError

    if isinstance(exc, WebError):
        return exc.code
    if isinstance(exc, NotFoundError | RunNotFoundError):
        return NOT_FOUND
    if isinstance(exc, UnavailableError):
        return UNAVAILABLE
    return INVALID


@contextmanager
def _refusals() -> Iterator[None]:
    """Operations' refusals as :class:`WebError` with their code (what pages and mutations show)."""
    from runyard.operations.errors import OperationError

    try:
        yield
    except OperationError as exc:
        raise WebError(str(exc), error_code(exc)) from exc


class WebContext:
    """Shared by every request thread. ``workspace`` may be None: runs are still browsable."""

    # A location's health is asked again at most this often (with a short timeout): the status a
    # page shows is at most this old, and a code server that is down does not cost every page view a
    # connection attempt. Reloads announced by other processes are picked up on the same check.
    LOCATION_CHECK_SECONDS = 2.0

    def __init__(self, instance: Instance, workspace: Workspace | None, settings: WebuiSettings):
        self.instance = instance
        self.workspace = workspace
        self.settings = settings
        self._watch: LocationWatch | None = None
        self.long_polls = LongPollSlots(settings.long_poll_slots())

    @property
    def watch(self) -> LocationWatch | None:
        """The workspace's locations kept current (:class:`runyard.operations.workspace.LocationWatch`)."""
        if self._watch is None and self.workspace is not None:
            from runyard.operations.workspace import LocationWatch

            # storage is asked for when a check needs it: a database that is down at the first
            # page view does not stop the watch from reading announcements later
            self._watch = LocationWatch.of(self.workspace, lambda: self.storage)
        return self._watch

    #: a request waits at most this long for an unavailable database, then answers 503
    STORAGE_WAIT_SECONDS = 1.0

    @property
    def storage(self):
        # set before the first connection (check_ready), so even that one does not wait long
        self.instance.storage_unchecked().max_wait_seconds = self.STORAGE_WAIT_SECONDS
        return self.instance.storage

    def _check_writable(self, what: str) -> None:
        if self.settings.read_only:
            raise WebError(f"this web UI is read-only (webui.read_only): cannot {what}", READ_ONLY)

    # ---- code locations --------------------------------------------------------------------------
    def locations(self) -> list[CodeLocation]:
        watch = self.watch
        return [] if watch is None else watch.locations(max_age=self.LOCATION_CHECK_SECONDS)

    def job(self, location: str, job_name: str) -> tuple[CodeLocation, Any]:
        from runyard.operations.workspace import find_job

        with _refusals():
            return find_job(self.locations(), location, job_name)

    def reload_location(self, name: str) -> dict[str, Any]:
        from runyard.operations.workspace import find_location

        if self.workspace is None:
            raise WebError("the web UI was started without a workspace", NOT_FOUND)
        with _refusals():
            find_location(self.locations(), name)
        return self.watch.reload(name)[0]  # announced: the daemon reloads its own server too

    # ---- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        run = self.storage.get_run(run_id)
        if run is None:
            raise WebError(f"no run with id '{run_id}'", NOT_FOUND)
        return run

    def launch_run(self, location: str, job_name: str, run_config: Any = None,
                   tags: dict[str, str] | None = None, ops: str | None = None) -> LaunchResult:
        from runyard.operations.launch import launch_from_location

        self._check_writable("launch runs")
        with _refusals():
            loc, _ = self.job(location, job_name)
            return launch_from_location(self.instance, loc, job_name, run_config, tags, ops)

    def reexecute_run(self, run_id: str, mode: str = "all", ops: str | None = None,
                      tags: dict[str, str] | None = None) -> LaunchResult:
        from runyard.operations.reexecute import reexecute_from_location

        self._check_writable("re-execute runs")
        self.get_run(run_id)
        with _refusals():
            return reexecute_from_location(self.instance, self.locations(), run_id, mode=mode, ops=ops, tags=tags)

    def terminate_run(self, run_id: str) -> tuple[bool, RunRecord]:
        self._check_writable("terminate runs")
        self.get_run(run_id)
        ok = self.instance.terminate_run(run_id)
        return ok, self.get_run(run_id)

    def delete_run(self, run_id: str) -> None:
        from runyard.operations.delete import delete_run

        self._check_writable("delete runs")
        self.get_run(run_id)
        with _refusals():
            delete_run(self.instance, run_id, files=True, finished_only=True)

    def run_events(self, run_id: str, after_id: int | None = None, limit: int = 1000,
                   wait_seconds: float = 0.0) -> EventPage:
        """Events after ``after_id``; when there are none and the run is not finished, wait up to
        ``wait_seconds`` (at most ``webui.long_poll_seconds``) for one: a long poll. Without a free
        long-poll slot (``webui.max_long_polls``) it answers at once."""
        from runyard.operations.follow import next_events

        self.get_run(run_id)
        with self.long_polls.wait_allowed(min(max(wait_seconds, 0.0), self.settings.long_poll_seconds)) as wait:
            return next_events(self.instance, run_id, after_id=after_id, limit=max(1, min(int(limit), 5000)),
                               wait_seconds=wait)

    def step_logs(self, run_id: str, step_key: str, stream: str = "stdout", offset: int = 0,
                  max_bytes: int = 256 * 1024) -> dict[str, Any]:
        """A chunk of a step's captured stdout or stderr (its latest attempt) from ``offset``:
        ``{available, data, next_offset, finished, message}``, at most 4 MiB."""
        from runyard.operations.step_logs import read_step_output

        self.get_run(run_id)
        with _refusals():
            chunk = read_step_output(self.instance, run_id, step_key, stream, offset=max(0, int(offset)),
                                     max_bytes=max(1, min(int(max_bytes), 4 << 20)))
        return {"available": chunk.available, "data": chunk.text, "next_offset": chunk.next_offset,
                "finished": chunk.finished, "message": chunk.message}

    # ---- schedules and sensors -------------------------------------------------------------------
    @staticmethod
    def _row(info: InstigatorInfo) -> dict[str, Any]:
        """What the GraphQL ``Instigator`` type and the automation page read."""
        return {"name": info.name, "kind": info.kind, "location": info.location.name,
                "definition": info.definition, "status": info.status.value, "next_tick": info.next_tick}

    def instigators(self, kind: str) -> list[dict[str, Any]]:
        """Every schedule (``kind="schedule"``) or sensor of every loaded location, with its status."""
        from runyard.operations.instigators import list_instigators

        return [self._row(i) for i in list_instigators(self.instance, self.locations(), kind)]

    def set_instigator_status(self, kind: str, name: str, running: bool) -> dict[str, Any]:
        from runyard.operations.instigators import set_status

        self._check_writable(f"start or stop {kind}s")
        with _refusals():
            return self._row(set_status(self.instance, self.locations(), kind, name, running))

    def ticks(self, name: str, limit: int = 20):
        return self.storage.get_ticks(name, limit=max(1, min(int(limit), 200)))
