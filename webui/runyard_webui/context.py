"""What the web UI adds to :mod:`runyard.operations`: the read-only guard and the role and code
location checks (:meth:`WebContext.check`), what a principal sees (:meth:`WebContext.locations`,
:meth:`WebContext.get_run`), the mapping of refusals to the GraphQL error codes, web limits (long
poll, page sizes), and not asking a code server that is down on every page view. The pages and the
GraphQL API reach everything through a :class:`WebContext`; the work itself (launch, re-execute,
toggle, follow, delete) is in :mod:`runyard.operations`.

Nothing here imports user code: a launch is validated by the location's code server and stored with
the code pointer that server reports, so the run worker (not the web UI) imports the job.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.auth import Action

from .auth import ANY_LOCATION
from .limits import LongPollSlots

if TYPE_CHECKING:  # pragma: no cover
    from runyard.auth import Principal
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
#: the principal's role or code locations do not allow it (docs/auth.md)
FORBIDDEN = "FORBIDDEN"


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did to one run: ``ok``, else why not (``message``, ``code``); ``run`` is the
    run afterwards (terminate) or the new run (re-execute)."""

    run_id: str
    ok: bool
    message: str | None = None
    code: str | None = None
    run: RunRecord | None = None


class WebError(Exception):
    """A request the web UI refuses; ``code`` is one of NOT_FOUND, INVALID, READ_ONLY, FORBIDDEN,
    UNAVAILABLE."""

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


def _note_location(location: str | None) -> None:
    """Remember a code location a check of this request was about, for its audit entry."""
    from flask import g, has_request_context

    if has_request_context():
        g.setdefault("audit_locations", [])
        if location not in g.audit_locations:
            g.audit_locations.append(location)


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

    # ---- who asks: roles and code locations (docs/auth.md) ---------------------------------------
    @property
    def principal(self) -> Principal:
        """Who sent this request (:func:`runyard_webui.auth.current_principal`)."""
        from .auth import current_principal

        return current_principal()

    def check(self, action: Action, location: Any = ANY_LOCATION, what: str | None = None) -> None:
        """Refuse ``action`` on something of code ``location`` unless this request's principal may
        do it: READ_ONLY first in a read-only web UI (for anything but reading), then FORBIDDEN
        for the role, the principal's code locations or an authorization plugin. ``location``
        :data:`~runyard_webui.auth.ANY_LOCATION` checks the role alone (a bulk action as a whole).
        The location checked is kept for the audit entry of this request."""
        from .auth import refusal

        if action is not Action.READ:
            self._check_writable(what or action.label.replace("_", " "))
        if location is not ANY_LOCATION:
            _note_location(location)
        why = refusal(self.principal, action, location, self)
        if why is not None:
            raise WebError(why, FORBIDDEN)

    def _target_run(self, action: Action, run_id: str, what: str) -> RunRecord:
        """The run a mutation acts on, once :meth:`check` allowed ``action`` on its code location
        (its ``runyard/location`` tag). A run outside the principal's locations is refused
        (FORBIDDEN), not hidden: run ids are not guessable, and the audit log then says who tried."""
        from runyard.tags import LOCATION_TAG

        self._check_writable(what)
        run = self.storage.get_run(run_id)
        if run is None:
            raise WebError(f"no run with id '{run_id}'", NOT_FOUND)
        self.check(action, run.tags.get(LOCATION_TAG), what)
        return run

    # ---- code locations --------------------------------------------------------------------------
    def locations(self) -> list[CodeLocation]:
        """The code locations this request's principal sees."""
        principal = self.principal
        found = self.all_locations()
        return found if principal.locations is None else [loc for loc in found if principal.sees(loc.name)]

    def all_locations(self) -> list[CodeLocation]:
        """Every code location, whoever asks (to find what a mutation acts on before checking it)."""
        watch = self.watch
        if watch is None:
            return []
        # `runyard webui` serves while its code servers start; what needs a location waits for them
        # (at once after startup), so a page or a launch never sees a location half-started
        self.workspace.wait_started(self.workspace.startup_timeout)
        return watch.locations(max_age=self.LOCATION_CHECK_SECONDS)

    def job(self, location: str, job_name: str) -> tuple[CodeLocation, Any]:
        from runyard.operations.workspace import find_job

        with _refusals():
            return find_job(self.locations(), location, job_name)

    def reload_location(self, name: str, action: Action | None = None) -> dict[str, Any]:
        """Reload code location ``name`` (``action``: RELOAD_LOCATION, or SHUTDOWN_LOCATION for
        Dagster's shutdown, which reloads here)."""
        from runyard.operations.workspace import find_location

        self.check(action or Action.RELOAD_LOCATION, name, "reload code locations")
        if self.workspace is None:
            raise WebError("the web UI was started without a workspace", NOT_FOUND)
        with _refusals():
            find_location(self.locations(), name)
        return self.watch.reload(name)[0]  # announced: the daemon reloads its own server too

    # ---- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        """The run, when this request's principal sees its code location (else NOT_FOUND, as if it
        did not exist)."""
        run = self.visible_run(run_id)
        if run is None:
            raise WebError(f"no run with id '{run_id}'", NOT_FOUND)
        return run

    def visible_run(self, run_id: str) -> RunRecord | None:
        """The run, or None when unknown or outside this request's principal's code locations."""
        from runyard.tags import LOCATION_TAG

        run = self.storage.get_run(run_id)
        if run is None or not self.principal.sees(run.tags.get(LOCATION_TAG)):
            return None
        return run

    def launch_run(self, location: str, job_name: str, run_config: Any = None,
                   tags: dict[str, str] | None = None, ops: str | None = None,
                   partition_key: str | None = None) -> LaunchResult:
        """``partition_key``: a run of that partition (its run config, ``run_config`` merged over it,
        its tags and ``runyard/partition``: docs/partitions.md)."""
        from runyard.operations.launch import launch_from_location
        from runyard.operations.partitions import launch_partition_from_location

        self.check(Action.LAUNCH_RUN, location, "launch runs")
        with _refusals():
            loc, _ = self.job(location, job_name)
            if partition_key is not None:
                return launch_partition_from_location(self.instance, loc, job_name, partition_key, run_config,
                                                      tags, ops, runyard_tags=self.launched_by_tags())
            return launch_from_location(self.instance, loc, job_name, run_config, tags, ops,
                                        runyard_tags=self.launched_by_tags())

    # ---- partitions (docs/partitions.md) ---------------------------------------------------------
    def partition_statuses(self, location: str, job_name: str, limit: int | None = None) -> list[Any]:
        """The job's partitions, newest first (at most ``limit``), each with its last run
        (:class:`runyard.operations.partitions.PartitionStatus`); [] for a job without partitions."""
        from runyard.operations.partitions import partition_statuses

        _, snap = self.job(location, job_name)
        if snap.partitions is None:
            return []
        keys = snap.partitions.get_partition_keys()[::-1]
        if limit is not None:
            keys = keys[:max(0, limit)]
        return partition_statuses(self.storage, job_name, keys)

    def partition_run(self, location: str, job_name: str, partition_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``(run config, tags)`` of a run of ``partition_key``, from the location's code server
        (the launchpad fills its editor with them). Allowed read-only: nothing is stored."""
        from runyard.operations.partitions import partition_run_request

        with _refusals():
            loc, _ = self.job(location, job_name)
            return partition_run_request(loc, job_name, partition_key)

    def reexecute_run(self, run_id: str, mode: str = "all", ops: str | None = None,
                      tags: dict[str, str] | None = None) -> LaunchResult:
        from runyard.operations.reexecute import reexecute_from_location

        self._target_run(Action.REEXECUTE_RUN, run_id, "re-execute runs")
        with _refusals():
            return reexecute_from_location(self.instance, self.locations(), run_id, mode=mode, ops=ops, tags=tags,
                                           runyard_tags=self.launched_by_tags())

    def terminate_run(self, run_id: str) -> tuple[bool, RunRecord]:
        self._target_run(Action.TERMINATE_RUN, run_id, "terminate runs")
        ok = self.instance.terminate_run(run_id)
        return ok, self.get_run(run_id)

    def delete_run(self, run_id: str) -> None:
        from runyard.operations.delete import delete_run

        self._target_run(Action.DELETE_RUN, run_id, "delete runs")
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

    # ---- the run page ----------------------------------------------------------------------------
    @functools.cached_property
    def step_folds(self):
        """The run page's steps, folded from step events and kept per run (:class:`~.run_view.StepFolds`)."""
        from .run_view import StepFolds

        return StepFolds()

    def older_run_events(self, run_id: str, before_id: int, limit: int = 1000,
                         after_id: int | None = None) -> tuple[list, bool, RunRecord]:
        """``(events, has_older, run)``: the last ``limit`` events of ``run_id`` older than
        ``before_id`` (and after ``after_id``), in order, and whether older ones remain. How the run
        page loads older events on demand; never waits."""
        run = self.get_run(run_id)
        limit = max(1, min(int(limit), 5000))
        events = self.storage.get_events(run_id, after_id=after_id, before_id=before_id, limit=limit + 1)
        return events[-limit:], len(events) > limit, run

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

    # ---- runs list: who launches, bulk actions ----------------------------------------------------
    def launched_by_tags(self) -> dict[str, str]:
        """The ``runyard/user`` tag of a run launched or re-executed by this request: the principal's
        name (``alice``, ``token:ci``; ``anonymous`` without ``webui.auth``), which the runs list's
        "launched by" filter reads."""
        from runyard.tags import USER_TAG

        return {USER_TAG: self.principal.name}

    #: most runs one bulk action takes (a page of the runs list is 50)
    MAX_BULK_RUNS = 500

    def bulk(self, action: str, run_ids: list[str], act, needs: Action | None = None) -> list[BulkResult]:
        """``act(run_id)`` for each of ``run_ids`` (in order, each once), a refusal or failure of one
        run not stopping the others: one :class:`BulkResult` per run. The read-only guard, the role
        ``needs`` and the size limit refuse the whole request; each run's code location is checked
        by ``act``."""
        self._check_writable(f"{action} runs")
        if needs is not None:
            self.check(needs, ANY_LOCATION, f"{action} runs")
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            raise WebError(f"no runs to {action}: give at least one run id")
        if len(ids) > self.MAX_BULK_RUNS:
            raise WebError(f"cannot {action} {len(ids)} runs at once (at most {self.MAX_BULK_RUNS})")
        results = []
        for run_id in ids:
            try:
                results.append(act(run_id))
            except WebError as exc:
                results.append(BulkResult(run_id, False, exc.message, exc.code))
            except Exception as exc:  # noqa: BLE001 - reported for this run; the others go on
                from runyard.errors import RunyardError

                code = error_code(exc) if isinstance(exc, RunyardError) else INVALID
                results.append(BulkResult(run_id, False, f"{type(exc).__name__}: {exc}"
                                          if not isinstance(exc, RunyardError) else str(exc), code))
        return results

    def terminate_runs(self, run_ids: list[str]) -> list[BulkResult]:
        def one(run_id: str) -> BulkResult:
            ok, run = self.terminate_run(run_id)
            return BulkResult(run_id, ok, None if ok else f"run is {run.status}: nothing to stop", None, run)

        return self.bulk("terminate", run_ids, one, Action.TERMINATE_RUN)

    def delete_runs(self, run_ids: list[str]) -> list[BulkResult]:
        def one(run_id: str) -> BulkResult:
            self.delete_run(run_id)
            return BulkResult(run_id, True)

        return self.bulk("delete", run_ids, one, Action.DELETE_RUN)

    def reexecute_runs(self, run_ids: list[str], mode: str = "all") -> list[BulkResult]:
        def one(run_id: str) -> BulkResult:
            result = self.reexecute_run(run_id, mode)
            if result.errors:
                problems = "; ".join(e.message for e in result.errors)
                return BulkResult(run_id, False, f"run config is invalid: {problems}", INVALID)
            return BulkResult(run_id, result.message is None, result.message, None, result.run)

        return self.bulk("re-execute", run_ids, one, Action.REEXECUTE_RUN)

    # ---- schedules and sensors -------------------------------------------------------------------
    @staticmethod
    def _row(info: InstigatorInfo) -> dict[str, Any]:
        """What the GraphQL ``Instigator`` type and the automation page read."""
        return {"name": info.name, "kind": info.kind, "location": info.location.name,
                "definition": info.definition, "status": info.status.value, "next_tick": info.next_tick}

    def instigators(self, kind: str) -> list[dict[str, Any]]:
        """Every schedule (``kind="schedule"``) or sensor of every loaded location this request's
        principal sees, with its status."""
        from runyard.operations.instigators import list_instigators

        return [self._row(i) for i in list_instigators(self.instance, self.locations(), kind)]

    def _target_instigator(self, action: Action, kind: str, name: str, what: str) -> None:
        """Check ``action`` on the code location of a schedule or sensor (an unknown one is left to
        the operation, which says so)."""
        from runyard.operations.instigators import KINDS

        self._check_writable(what)
        location = None
        if kind in KINDS:
            try:
                location = self.automation_row(kind, name, scoped=False)["location"]
            except WebError:
                location = ANY_LOCATION
        self.check(action, location, what)

    def set_instigator_status(self, kind: str, name: str, running: bool) -> dict[str, Any]:
        from runyard.operations.instigators import set_status

        self._target_instigator(Action.TOGGLE_INSTIGATOR, kind, name, f"start or stop {kind}s")
        with _refusals():
            return self._row(set_status(self.instance, self.all_locations(), kind, name, running))

    def ticks(self, name: str, limit: int = 20):
        return self.storage.get_ticks(name, limit=max(1, min(int(limit), 200)))

    # ---- automation pages: every schedule and sensor (a failing location's too), tick pages, dry runs
    #: how many upcoming fire times the automation pages show for a schedule
    NEXT_TICKS = 5

    def automation_rows(self, kind: str | None = None, scoped: bool = True) -> list[dict[str, Any]]:
        """Every schedule and sensor (or those of ``kind``) as the automation pages and the GraphQL
        ``Instigator`` type read them: :meth:`_row` plus ``location_status``, ``location_error`` (a
        :class:`~runyard.codeserver.protocol.SerializedError`) and ``stale``. Those of a location
        that fails to load stay listed from their stored state (``stale``: True, with their last
        status; ``definition`` the one this process saw last, else None) beside that location's
        error — a running sensor does not vanish while its code is broken. ``scoped``: only those of
        the code locations this request's principal sees."""
        from runyard.operations.instigators import KINDS, list_instigators

        kinds = KINDS if kind is None else (kind,)
        locations = self.all_locations()
        by_name = {loc.name: loc for loc in locations}
        # {(kind, name): (location name, definition)} as last seen loaded: what a failing location's
        # schedules and sensors are shown with (created here so the block stays self-contained)
        known = self.__dict__.setdefault("_known_definitions", {})
        rows: list[dict[str, Any]] = []
        for k in kinds:
            for info in list_instigators(self.instance, locations, k):
                known[(k, info.name)] = (info.location.name, info.definition)
                rows.append({**self._row(info), "location_status": info.location.status,
                             "location_error": None, "stale": False})
        listed = {(r["kind"], r["name"]) for r in rows}
        failing = [loc for loc in locations if loc.snapshot is None]
        if failing:
            for state in self.storage.get_instigator_states(kind):
                key = (state["kind"], state["name"])
                if key in listed or state["kind"] not in kinds:
                    continue
                loc_name, definition = known.get(key, (None, None))
                loc = by_name.get(loc_name) if loc_name else self._location_of_ticks(state["name"], by_name)
                if loc is None and len(failing) == 1:
                    loc = failing[0]  # the only location that could be hiding it
                if loc is not None and loc.snapshot is not None:
                    continue  # its location loads and no longer defines it: removed, not broken
                rows.append({"name": state["name"], "kind": state["kind"],
                             "location": loc.name if loc else None, "definition": definition,
                             "status": str(state["status"]), "next_tick": None,
                             "location_status": loc.status if loc else None,
                             "location_error": loc.error if loc else None, "stale": True})
        if scoped and self.principal.locations is not None:
            rows = [r for r in rows if self.principal.sees(r["location"])]
        return sorted(rows, key=lambda r: (r["kind"], r["name"]))

    def _location_of_ticks(self, name: str, by_name: dict[str, CodeLocation]) -> CodeLocation | None:
        """The location of the runs an instigator's newest ticks launched (their location tag)."""
        from runyard.tags import LOCATION_TAG

        for tick in self.storage.get_ticks(name, limit=20):
            for run_id in tick.run_ids:
                run = self.storage.get_run(run_id)
                if run is not None and run.tags.get(LOCATION_TAG) in by_name:
                    return by_name[run.tags[LOCATION_TAG]]
        return None

    def automation_row(self, kind: str, name: str, scoped: bool = True) -> dict[str, Any]:
        from runyard.operations.instigators import KINDS

        if kind not in KINDS:
            raise WebError(f"unknown kind {kind!r}: schedule or sensor", NOT_FOUND)
        for row in self.automation_rows(kind, scoped):
            if row["name"] == name:
                return row
        raise WebError(f"no {kind} named '{name}' in the workspace or in storage", NOT_FOUND)

    def next_ticks(self, row: dict[str, Any], count: int | None = None) -> list[float]:
        """A schedule's next fire times (computed in its own execution timezone); [] for a sensor."""
        from runyard.operations.instigators import next_fire_times

        definition = row.get("definition")
        if row["kind"] != "schedule" or definition is None:
            return []
        import time

        return next_fire_times(definition.cron_schedule, definition.execution_timezone, time.time(),
                               max(1, min(int(count or self.NEXT_TICKS), 50)))

    def tick_page(self, name: str, limit: int = 20, before: int | None = None,
                  after: int | None = None) -> dict[str, Any]:
        """``{ticks (newest first), older, newer}``: ``older`` / ``newer`` are the cursors (tick ids)
        of the next page each way, None at either end. ``before`` and ``after`` are exclusive."""
        if before is not None and after is not None:
            raise WebError("give before or after, not both")
        limit = max(1, min(int(limit), 200))
        storage = self.storage
        ticks = storage.get_ticks(name, limit=limit + 1, before_id=before, after_id=after)
        if after is not None:  # newest first: the extra one is the newest, beyond this page
            more_newer, ticks = len(ticks) > limit, ticks[-limit:]
            more_older = bool(ticks) and bool(storage.get_ticks(name, limit=1, before_id=ticks[-1].id))
        else:
            more_older, ticks = len(ticks) > limit, ticks[:limit]
            more_newer = before is not None and bool(ticks) and bool(
                storage.get_ticks(name, limit=1, after_id=ticks[0].id))
        return {"ticks": ticks, "older": ticks[-1].id if more_older else None,
                "newer": ticks[0].id if more_newer else None}

    def dry_run(self, kind: str, name: str) -> dict[str, Any]:
        """Evaluate a schedule (for its next fire time) or a sensor (with its stored cursor) on its
        code server now, launching and storing nothing: ``{kind, name, tick_time, cursor_before,
        result}`` with ``result`` an :class:`~runyard.codeserver.protocol.EvaluationResult`. Refused
        in a read-only web UI: it runs the user's code."""
        from runyard.codeserver.errors import CodeServerError
        from runyard.operations.instigators import KINDS, preview_schedule, preview_sensor

        if kind not in KINDS:
            raise WebError(f"unknown kind {kind!r}: schedule or sensor")
        self._target_instigator(Action.DRY_RUN_INSTIGATOR, kind, name, f"dry-run {kind}s (that runs their code)")
        locations = self.all_locations()
        try:
            with _refusals():
                if kind == "schedule":
                    previews = preview_schedule(locations, name, 1)
                    if not previews:
                        raise WebError(f"schedule '{name}' has no next fire time")
                    tick_time, result = previews[0]
                    cursor = None
                else:
                    import time

                    tick_time = time.time()
                    cursor, result = preview_sensor(self.instance, locations, name)
        except CodeServerError as exc:
            raise WebError(f"could not evaluate {kind} '{name}': {exc}", UNAVAILABLE) from exc
        return {"kind": kind, "name": name, "tick_time": tick_time, "cursor_before": cursor, "result": result}

    # ---- launchpad: validation without launching -------------------------------------------------
    def validate_run_config(self, location: str, job_name: str, run_config_yaml: str | None = None,
                            ops: str | None = None, tags: dict[str, str] | None = None,
                            run_config: Any = None) -> Any:
        """Check a run config (YAML text, or data in ``run_config``), an op selection and tags on the
        job's code location without launching: a :class:`runyard_webui.validation.RunConfigCheck`
        with every problem at its line. Allowed in read-only mode: nothing is stored."""
        from .validation import check_run_config

        with _refusals():
            loc, _ = self.job(location, job_name)
            return check_run_config(loc, job_name, run_config_yaml, ops, tags, run_config)
