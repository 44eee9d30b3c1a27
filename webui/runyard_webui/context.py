"""What the pages and the GraphQL API do, in one place: read runs and events from storage, read
definitions from code location snapshots, and launch, terminate or toggle through the instance.

Nothing here imports user code: a launch is validated by the location's code server and stored with
the code pointer that server reports, so the run worker (not the web UI) imports the job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance
    from runyard.storage.records import Event, RunRecord
    from runyard.workspace.workspace import CodeLocation, Workspace

    from .settings import WebuiSettings


class WebError(Exception):
    """A request the web UI refuses; ``code`` is one of NOT_FOUND, INVALID, READ_ONLY, UNAVAILABLE."""

    def __init__(self, message: str, code: str = "INVALID"):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass
class LaunchResult:
    run: RunRecord | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # run config problems: message, path, reason
    message: str | None = None


@dataclass
class EventPage:
    events: list[Event]
    cursor: int | None
    run: RunRecord


class WebContext:
    """Shared by every request thread. ``workspace`` may be None: runs are still browsable."""

    # A location without a snapshot is asked again at most this often: a code server that is down
    # must not cost every page view a connection attempt.
    RETRY_UNAVAILABLE_SECONDS = 5.0

    def __init__(self, instance: Instance, workspace: Workspace | None, settings: WebuiSettings):
        self.instance = instance
        self.workspace = workspace
        self.settings = settings
        self._last_retry: dict[str, float] = {}

    @property
    def storage(self):
        return self.instance.storage

    def _check_writable(self, what: str) -> None:
        if self.settings.read_only:
            raise WebError(f"this web UI is read-only (webui.read_only): cannot {what}", "READ_ONLY")

    # ---- code locations --------------------------------------------------------------------------
    def locations(self) -> list[CodeLocation]:
        if self.workspace is None:
            return []
        now = time.monotonic()
        for loc in self.workspace.locations():
            if (loc.snapshot is None and loc.status != "starting"
                    and now - self._last_retry.get(loc.name, -1e9) >= self.RETRY_UNAVAILABLE_SECONDS):
                self._last_retry[loc.name] = now
                loc.refresh()
        return self.workspace.locations()

    def location(self, name: str) -> CodeLocation:
        for loc in self.locations():
            if loc.name == name:
                return loc
        known = ", ".join(loc.name for loc in self.locations()) or "none"
        raise WebError(f"no code location named '{name}'; locations: {known}", "NOT_FOUND")

    def job(self, location: str, job_name: str) -> tuple[CodeLocation, dict[str, Any]]:
        loc = self.location(location)
        if loc.snapshot is None:
            detail = f": {loc.error.message}" if loc.error else ""
            raise WebError(f"code location '{location}' is {loc.status}{detail}", "UNAVAILABLE")
        if job_name not in loc.snapshot.jobs:
            raise WebError(f"no job named '{job_name}' in code location '{location}'; jobs: "
                           f"{', '.join(loc.snapshot.job_names) or 'none'}", "NOT_FOUND")
        return loc, loc.snapshot.jobs[job_name]

    def reload_location(self, name: str) -> dict[str, Any]:
        if self.workspace is None:
            raise WebError("the web UI was started without a workspace", "NOT_FOUND")
        self.location(name)
        return self.workspace.reload(name)[0]

    # ---- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        run = self.storage.get_run(run_id)
        if run is None:
            raise WebError(f"no run with id '{run_id}'", "NOT_FOUND")
        return run

    def launch_run(self, location: str, job_name: str, run_config: Any = None,
                   tags: dict[str, str] | None = None, ops: str | None = None) -> LaunchResult:
        """Validate on the code server, store the run, hand it to the run coordinator. Invalid run
        config comes back as ``errors`` with nothing stored."""
        from runyard.codeserver.errors import CodeServerError
        from runyard.storage.records import CodePointer

        self._check_writable("launch runs")
        if run_config is None:
            run_config = {}
        if not isinstance(run_config, dict):
            return LaunchResult(errors=[{"message": "run config must be a mapping", "path": None,
                                         "reason": "type"}])
        loc, _ = self.job(location, job_name)
        try:
            validation = loc.client.validate(job_name, run_config, ops or None)
        except CodeServerError as exc:
            raise WebError(f"code location '{location}' could not validate the run: {exc}", "UNAVAILABLE") from exc
        if not validation.ok:
            return LaunchResult(errors=[e.to_json() for e in validation.errors])
        health = loc.health
        pointer = CodePointer.from_dict(health.code_pointer) if health is not None else CodePointer()
        run = self.instance.create_run(job_name=job_name, run_config=run_config,
                                       tags={**validation.tags, **(tags or {})}, code_pointer=pointer,
                                       step_keys_to_execute=validation.step_keys_to_execute)
        try:
            run = self.instance.submit_run(run)
        except Exception as exc:  # noqa: BLE001 - the coordinator/launcher marked the run FAILURE
            return LaunchResult(run=self.storage.get_run(run.run_id), message=f"launch failed: {exc}")
        return LaunchResult(run=run)

    def location_of_run(self, run: RunRecord) -> tuple[CodeLocation, dict[str, Any]]:
        """The code location (and job snapshot) a run came from: its ``runyard/location`` tag, else the
        location whose server loads the same code, else the only one with a job of that name."""
        from runyard.storage.records import CodePointer

        tagged = run.tags.get("runyard/location")
        if tagged:
            return self.job(tagged, run.job_name)
        candidates = [loc for loc in self.locations() if loc.snapshot and run.job_name in loc.snapshot.jobs]
        same_code = [loc for loc in candidates if loc.health is not None
                     and CodePointer.from_dict(loc.health.code_pointer) == run.code_pointer]
        chosen = same_code or candidates
        if len(chosen) != 1:
            where = "no code location" if not chosen else f"{len(chosen)} code locations"
            raise WebError(f"{where} of this workspace serve job '{run.job_name}' of run {run.run_id}",
                           "UNAVAILABLE" if not chosen else "INVALID")
        return chosen[0], chosen[0].snapshot.jobs[run.job_name]

    def reexecute_run(self, run_id: str, mode: str = "all", ops: str | None = None,
                      tags: dict[str, str] | None = None) -> LaunchResult:
        """A new run of a finished run's job and config: every step (``all``), an op selection, or the
        steps that did not succeed and what follows them (``from_failure``). Steps not executed read
        the outputs stored by the parent chain. Planned from the location's snapshot: no user code
        is imported here."""
        from runyard.codeserver.errors import CodeServerError
        from runyard.codeserver.snapshot import SnapshotGraph
        from runyard.definitions.selection import parse_op_selection
        from runyard.execution.api import check_reexecutable, plan_reexecution

        self._check_writable("re-execute runs")
        self.get_run(run_id)
        parent = check_reexecutable(self.instance, run_id, mode, ops or None)
        loc, job = self.location_of_run(parent)
        graph = SnapshotGraph(job)
        selected = parse_op_selection(graph, ops) if ops else None
        step_keys, all_tags, root_run_id = plan_reexecution(self.instance, parent, graph, mode, selected, tags)
        try:  # the run config, against the job as its location serves it now
            validation = loc.client.validate(parent.job_name, parent.run_config)
        except CodeServerError as exc:
            raise WebError(f"code location '{loc.name}' could not validate the run: {exc}", "UNAVAILABLE") from exc
        if not validation.ok:
            return LaunchResult(errors=[e.to_json() for e in validation.errors])
        run = self.instance.create_run(job_name=parent.job_name, run_config=parent.run_config,
                                       tags={**validation.tags, **all_tags}, code_pointer=parent.code_pointer,
                                       step_keys_to_execute=step_keys, parent_run_id=parent.run_id,
                                       root_run_id=root_run_id)
        try:
            run = self.instance.submit_run(run)
        except Exception as exc:  # noqa: BLE001 - the coordinator/launcher marked the run FAILURE
            return LaunchResult(run=self.storage.get_run(run.run_id), message=f"launch failed: {exc}")
        return LaunchResult(run=run)

    def terminate_run(self, run_id: str) -> tuple[bool, RunRecord]:
        self._check_writable("terminate runs")
        self.get_run(run_id)
        ok = self.instance.terminate_run(run_id)
        return ok, self.get_run(run_id)

    def delete_run(self, run_id: str) -> None:
        from runyard.storage.records import FINISHED_STATUSES

        self._check_writable("delete runs")
        run = self.get_run(run_id)
        if run.status not in FINISHED_STATUSES:
            raise WebError(f"run {run_id} is {run.status}: terminate it before deleting it")
        self.instance.delete_run(run_id, files=True)

    def run_events(self, run_id: str, after_id: int | None = None, limit: int = 1000,
                   wait_seconds: float = 0.0) -> EventPage:
        """Events after ``after_id``; when there are none and the run is not finished, wait up to
        ``wait_seconds`` for one (woken by a notification where the storage has them)."""
        from runyard.storage.records import FINISHED_STATUSES

        run = self.get_run(run_id)
        limit = max(1, min(int(limit), 5000))
        events = self.storage.get_events(run_id, after_id=after_id, limit=limit)
        wait = min(max(wait_seconds, 0.0), self.settings.long_poll_seconds)
        deadline = time.monotonic() + wait
        while not events and run.status not in FINISHED_STATUSES and time.monotonic() < deadline:
            self.storage.wait_for_events(run_id, after_id, timeout=min(1.0, deadline - time.monotonic()))
            events = self.storage.get_events(run_id, after_id=after_id, limit=limit)
            run = self.get_run(run_id)
        cursor = events[-1].id if events else after_id
        return EventPage(events=events, cursor=cursor, run=run if not events else self.get_run(run_id))

    # ---- captured step output ----------------------------------------------------------------------
    def step_logs(self, run_id: str, step_key: str, stream: str = "stdout", offset: int = 0,
                  max_bytes: int = 256 * 1024) -> dict[str, Any]:
        """A chunk of a step's captured stdout or stderr (its latest attempt) from ``offset``:
        ``{available, data, next_offset, finished, message}``. Read only from this instance's compute
        log directory, so a stored event cannot point the web UI at any other file."""
        import os

        from runyard.execution.compute_logs import captured_steps, read_chunk, step_finished, step_log_files

        if stream not in ("stdout", "stderr"):
            raise WebError(f"unknown stream '{stream}': stdout or stderr")
        run = self.get_run(run_id)
        event = captured_steps(self.storage, run_id).get(step_key)
        manager = self.instance.compute_log_manager
        if event is None or manager is None:
            why = ("compute log capture is off for this instance (compute_logs.enabled: false)" if manager is None
                   else f"no output was captured for step '{step_key}' (yet)")
            return {"available": False, "data": "", "next_offset": 0, "finished": run.status.is_finished,
                    "message": why}
        path = os.path.realpath(step_log_files(event).path(stream))
        base = os.path.realpath(getattr(manager, "base_dir", "") or "/nonexistent")
        if os.path.commonpath([path, base]) != base:
            return {"available": False, "data": "", "next_offset": 0, "finished": True,
                    "message": f"the output was captured outside this instance's compute log directory ({path})"}
        chunk = read_chunk(path, max(0, int(offset)), max(1, min(int(max_bytes), 4 << 20)))
        text, used = _decode_whole_chars(chunk)
        finished = run.status.is_finished or step_finished(self.storage, run_id, step_key, event.id)
        return {"available": True, "data": text, "next_offset": max(0, int(offset)) + used,
                "finished": finished and used == len(chunk) and len(chunk) < max_bytes, "message": None}

    # ---- schedules and sensors -------------------------------------------------------------------
    def instigators(self, kind: str) -> list[dict[str, Any]]:
        """Every schedule (``kind="schedule"``) or sensor of every loaded location, with its status."""
        from runyard.daemon.daemon import instigator_status, next_fire_times

        rows = []
        for loc in self.locations():
            if loc.snapshot is None:
                continue
            table = loc.snapshot.schedules if kind == "schedule" else loc.snapshot.sensors
            for name, d in sorted(table.items()):
                row = {"name": name, "kind": kind, "location": loc.name, "definition": d,
                       "status": instigator_status(self.instance, name, d.get("default_status"))}
                if kind == "schedule":
                    nxt = next_fire_times(d["cron_schedule"], d.get("execution_timezone") or "UTC", time.time(), 1)
                    row["next_tick"] = nxt[0] if nxt else None
                rows.append(row)
        return rows

    def instigator(self, kind: str, name: str) -> dict[str, Any]:
        for row in self.instigators(kind):
            if row["name"] == name:
                return row
        raise WebError(f"no {kind} named '{name}' in the workspace", "NOT_FOUND")

    def set_instigator_status(self, kind: str, name: str, running: bool) -> dict[str, Any]:
        self._check_writable(f"start or stop {kind}s")
        self.instigator(kind, name)
        state = self.storage.get_instigator_state(name)
        data = dict(state.get("data") or {}) if state else {}
        if running and kind == "schedule":
            data["cursor_time"] = time.time()  # ticks from now on: turning on never replays old ticks
        self.storage.set_instigator_state(name, kind, "RUNNING" if running else "STOPPED", data)
        return self.instigator(kind, name)

    def ticks(self, name: str, limit: int = 20):
        return self.storage.get_ticks(name, limit=max(1, min(int(limit), 200)))


def _decode_whole_chars(chunk: bytes) -> tuple[str, int]:
    """``chunk`` as text without a UTF-8 character cut at its end (left for the next read); returns
    (text, bytes used). Bytes that are not UTF-8 at all become U+FFFD."""
    for cut in range(0, min(4, len(chunk)) + 1):
        try:
            return chunk[:len(chunk) - cut].decode("utf-8"), len(chunk) - cut
        except UnicodeDecodeError as exc:
            if exc.start < len(chunk) - 4:  # broken in the middle: not a cut character
                break
    return chunk.decode("utf-8", errors="replace"), len(chunk)


def scaffold_run_config(job: dict[str, Any]) -> dict[str, Any]:
    """A starting run config for the launchpad: every configurable op and resource of ``job`` (a
    snapshot dict) with each field's default, ``None`` where a field is required, and the job's own
    default run config on top — so the user edits values instead of recalling key names."""
    from runyard.definitions.config import deep_merge

    def fields(schema: dict[str, Any] | None) -> dict[str, Any] | None:
        props = (schema or {}).get("properties")
        if not props:
            return None
        return {name: prop.get("default") for name, prop in props.items()}

    scaffold: dict[str, Any] = {}
    ops = {op["name"]: {"config": cfg} for op in job.get("ops", []) if (cfg := fields(op.get("config_schema")))}
    if ops:
        scaffold["ops"] = ops
    resources = {r["key"]: {"config": cfg} for r in job.get("resources", [])
                 if (cfg := fields(r.get("config_schema")))}
    if resources:
        scaffold["resources"] = resources
    return deep_merge(scaffold, job.get("default_run_config") or {})
