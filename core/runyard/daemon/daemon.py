"""The daemon: four loops driven by APScheduler, all state in storage.

* ``queue`` — with the ``queued`` coordinator: claims QUEUED runs under the coordinator's limits
  (counted by storage inside the claim) and launches them. It waits on
  :meth:`RunStorage.wait_for_runs`, so a submission wakes it at once where storage notifies.
* ``schedules`` — every ``schedule_interval_seconds``: for each running schedule, the cron fire times
  since its last tick (at most ``max_catchup_ticks`` of them after downtime) become ticks.
* ``sensors`` — every ``sensor_interval_seconds``: each running sensor whose
  ``minimum_interval_seconds`` passed is evaluated with its cursor.
* ``lease`` — every second (a third of ``lease_seconds`` if shorter): the holder renews every third
  of ``lease_seconds``, a standby tries to take the lease.
* ``monitoring`` — every ``run_monitoring.poll_interval_seconds``: start and cancel timeouts, the
  ``runyard/max_runtime`` tag, and the launcher's health check on started runs.

Only the holder of the ``runyard-daemon`` lease works (:mod:`.lease`); the others stand by. Ticks
are unique per (instigator, tick time) in storage and run keys are claimed once, so a retried or
repeated tick never doubles a run; queue claims are fenced by the lease token.

The daemon talks to user code only through the workspace's code servers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..storage.records import EventType, RunFilter, RunRecord, RunStatus, Tick
from .lease import LeaseKeeper

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..workspace.workspace import CodeLocation, Workspace

log = logging.getLogger("runyard.daemon")

SCHEDULE_TAG = "runyard/schedule"
SENSOR_TAG = "runyard/sensor"
TICK_TAG = "runyard/tick"
RUN_KEY_TAG = "runyard/run_key"
MAX_RUNTIME_TAG = "runyard/max_runtime"
LOOPS = ("queue", "schedules", "sensors", "monitoring", "retention")

RUNNING, STOPPED = "RUNNING", "STOPPED"
SUCCESS, SKIPPED, FAILURE = "SUCCESS", "SKIPPED", "FAILURE"


def instigator_status(instance: Instance, name: str, default_status: str | None) -> str:
    """RUNNING or STOPPED: the state stored by ``start``/``stop``, else the definition's default."""
    state = instance.storage.get_instigator_state(name)
    if state is not None:
        return str(state["status"])
    return default_status or STOPPED


def schedule_fire_times(cron: str, tz: str, after: float, until: float, limit: int | None = None) -> list[float]:
    """Cron fire times in (after, until], oldest first (epoch seconds). With ``limit``, the newest ones."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=tz)
    end = datetime.fromtimestamp(until, UTC)
    prev = datetime.fromtimestamp(after, UTC)
    times: list[float] = []
    nxt = trigger.get_next_fire_time(None, prev + timedelta(microseconds=1))
    while nxt is not None and nxt <= end:
        times.append(nxt.timestamp())
        if limit is not None and len(times) > limit:
            times.pop(0)
        nxt = trigger.get_next_fire_time(nxt, nxt + timedelta(microseconds=1))
    return times


def next_fire_times(cron: str, tz: str, after: float, n: int) -> list[float]:
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=tz)
    out: list[float] = []
    nxt = trigger.get_next_fire_time(None, datetime.fromtimestamp(after, UTC) + timedelta(microseconds=1))
    while nxt is not None and len(out) < n:
        out.append(nxt.timestamp())
        nxt = trigger.get_next_fire_time(nxt, nxt + timedelta(microseconds=1))
    return out


class Daemon:
    def __init__(self, instance: Instance, workspace: Workspace | None = None, *,
                 daemon_id: str | None = None):
        self.instance = instance
        self.workspace = workspace
        self.settings = instance.settings.daemon
        self.daemon_id = daemon_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.storage = instance.storage
        self.lease = LeaseKeeper(self.storage, self.daemon_id, self.settings.lease_seconds,
                                 on_change=self._leadership_changed)
        self._stop = threading.Event()
        self._scheduler: Any = None
        self._queue_thread: threading.Thread | None = None
        self._errors: dict[str, tuple[float, str] | None] = {loop: None for loop in (*LOOPS, "lease")}
        self._last_beat: dict[str, float] = {}
        self._work_lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Daemon:
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:  # already running (``with daemon.start():``)
            return self
        self.instance.run_launcher.prepare(self.instance)
        self.lease.tick()
        self._beat("lease", force=True)
        sched = BackgroundScheduler(timezone=UTC,
                                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        sched.add_job(self._lease_job, "interval", seconds=self.lease.retry_interval, id="lease")
        sched.add_job(lambda: self._loop("schedules", self.run_schedules), "interval",
                      seconds=self.settings.schedule_interval_seconds, id="schedules")
        sched.add_job(lambda: self._loop("sensors", self.run_sensors), "interval",
                      seconds=self.settings.sensor_interval_seconds, id="sensors")
        monitoring = self.instance.settings.run_monitoring
        if monitoring.enabled:
            sched.add_job(lambda: self._loop("monitoring", self.run_monitoring), "interval",
                          seconds=monitoring.poll_interval_seconds, id="monitoring")
        retention = self.instance.settings.retention
        if retention.runs_days is not None:  # first pass at start, then every interval
            sched.add_job(lambda: self._loop("retention", self.prune_runs), "interval",
                          seconds=retention.interval_seconds, id="retention", next_run_time=datetime.now(UTC))
        sched.start()
        self._scheduler = sched
        if getattr(self.instance.run_coordinator, "queues_runs", False):
            self._queue_thread = threading.Thread(target=self._queue_main, name="runyard-daemon-queue",
                                                  daemon=True)
            self._queue_thread.start()
        log.info("daemon %s started (%s)", self.daemon_id, "leader" if self.lease.is_leader else "standby")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self._queue_thread is not None:
            self._queue_thread.join(timeout=10)
        with self._work_lock:
            self.lease.release()
        try:
            self._beat("lease", force=True)
        except Exception:  # noqa: BLE001
            pass

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- leadership and heartbeats ---------------------------------------------------------------
    def _leadership_changed(self, leader: bool) -> None:
        self._beat("lease", force=True)

    def _lease_job(self) -> None:
        if self._stop.is_set():
            return
        with self._work_lock:
            self.lease.tick()
        self._errors["lease"] = (time.time(), self.lease.last_error) if self.lease.last_error else None
        self._beat("lease")

    def _beat(self, loop: str, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_beat.get(loop, 0.0) < self.settings.heartbeat_interval_seconds:
            return
        self._last_beat[loop] = now
        err = self._errors.get(loop)
        lease = self.lease.lease
        info = {"leader": lease is not None, "token": lease.token if lease else None,
                "last_error": err[1] if err else None, "error_time": err[0] if err else None,
                "pid": os.getpid(), "stopping": self._stop.is_set()}
        try:
            self.storage.heartbeat(self.daemon_id, loop, info)
        except Exception as exc:  # noqa: BLE001
            log.warning("daemon %s: heartbeat failed: %s", self.daemon_id, exc)

    def _loop(self, name: str, fn: Callable[[], Any]) -> None:
        """One pass of a loop: only on the leader; errors are logged and heartbeated, never fatal."""
        if self._stop.is_set() or not self.lease.is_leader:
            return
        try:
            fn()
            changed = self._errors.get(name) is not None
            self._errors[name] = None
        except Exception as exc:  # noqa: BLE001
            log.exception("daemon loop %s failed", name)
            self._errors[name] = (time.time(), f"{type(exc).__name__}: {exc}")
            changed = True
        self._beat(name, force=changed)

    # ---- retention -------------------------------------------------------------------------------
    def prune_runs(self, now: float | None = None) -> list[str]:
        """Delete finished runs created more than ``retention.runs_days`` ago, with their events and
        the local files runyard wrote for them; oldest first, ``batch_size`` at a time. Runs in
        progress or queued are never touched. Returns the deleted run ids."""
        from ..storage.records import FINISHED_STATUSES

        settings = self.instance.settings.retention
        if settings.runs_days is None:
            return []
        cutoff = (time.time() if now is None else now) - settings.runs_days * 86400.0
        wanted = RunFilter(statuses=sorted(FINISHED_STATUSES), created_before=cutoff)
        deleted: list[str] = []
        while not self._stop.is_set() and self.lease.is_leader:
            batch = self.storage.get_runs(wanted, limit=settings.batch_size)
            for run in reversed(batch):  # oldest first: an interrupted pass leaves the newest
                try:
                    self.instance.delete_run(run.run_id, files=True)
                except Exception as exc:  # noqa: BLE001 - e.g. someone re-executed it meanwhile
                    log.warning("retention: could not delete run %s: %s", run.run_id, exc)
                    return deleted
                deleted.append(run.run_id)
            if len(batch) < settings.batch_size:
                break
        if deleted:
            log.info("retention: deleted %d run(s) created before %s", len(deleted),
                     datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="seconds"))
        return deleted

    # ---- the run queue ---------------------------------------------------------------------------
    def _queue_main(self) -> None:
        coordinator = self.instance.run_coordinator
        interval = float(getattr(coordinator, "dequeue_interval", 1.0))
        self.storage.wait_for_runs(0)  # start watching
        while not self._stop.is_set():
            self._loop("queue", self.dequeue)
            self.storage.wait_for_runs(interval)

    def dequeue(self) -> list[RunRecord]:
        """Claim what the limits allow (fenced by the lease) and launch it. Returns the launched runs."""
        coordinator = self.instance.run_coordinator
        limits = coordinator.claim_limits() if hasattr(coordinator, "claim_limits") else None
        lease = self.lease.lease
        if lease is None:
            return []
        launched: list[RunRecord] = []
        while not self._stop.is_set():
            claimed = self.storage.claim_queued_runs(self.daemon_id, self.settings.dequeue_batch_size,
                                                     fence=lease, limits=limits)
            for run in claimed:
                try:
                    launched.append(self.instance.launch_claimed_run(run))
                except Exception:  # noqa: BLE001 - the run is marked FAILURE with the launcher's error
                    log.exception("launching run %s failed", run.run_id)
            if len(claimed) < self.settings.dequeue_batch_size:
                break
        return launched

    # ---- code locations --------------------------------------------------------------------------
    def _locations(self) -> list[CodeLocation]:
        if self.workspace is None:
            return []
        out = []
        for loc in self.workspace.locations():
            if loc.snapshot is None:
                try:
                    loc.refresh()
                except Exception:  # noqa: BLE001
                    continue
            if loc.snapshot is not None:
                out.append(loc)
        return out

    def find_instigator(self, kind: str, name: str) -> tuple[CodeLocation, dict[str, Any]] | None:
        for loc in self._locations():
            table = loc.snapshot.schedules if kind == "schedule" else loc.snapshot.sensors
            if name in table:
                return loc, table[name]
        return None

    # ---- schedules -------------------------------------------------------------------------------
    def run_schedules(self, now: float | None = None) -> list[Tick]:
        now = time.time() if now is None else now
        ticks: list[Tick] = []
        for loc in self._locations():
            for name, sched in loc.snapshot.schedules.items():
                if self._stop.is_set() or not self.lease.is_leader:
                    return ticks
                state = self.storage.get_instigator_state(name)
                status = state["status"] if state else sched.get("default_status", STOPPED)
                if status != RUNNING:
                    continue
                data = dict(state.get("data") or {}) if state else {}
                if "cursor_time" not in data:  # first sight: ticks from now on
                    data["cursor_time"] = now
                    self.storage.set_instigator_state(name, "schedule", RUNNING, data)
                    continue
                due = schedule_fire_times(sched["cron_schedule"], sched.get("execution_timezone") or "UTC",
                                          float(data["cursor_time"]), now)
                if not due:
                    continue
                keep = due[-self.settings.max_catchup_ticks:]
                if len(due) > len(keep):
                    log.warning("schedule %s missed %d ticks; running the newest %d (daemon: max_catchup_ticks)",
                                name, len(due), len(keep))
                for tick_time in keep:
                    tick = self.schedule_tick(loc, name, tick_time)
                    if tick is not None:
                        ticks.append(tick)
                current = self.storage.get_instigator_state(name)
                data["cursor_time"] = due[-1]
                self.storage.set_instigator_state(name, "schedule",
                                                  current["status"] if current else RUNNING, data)
        return ticks

    def schedule_tick(self, loc: CodeLocation, name: str, tick_time: float) -> Tick | None:
        """Evaluate one tick of a schedule, recording it once. An existing finished tick for the same
        time is left alone (None); an unfinished one (its daemon died mid-tick) is retried — its run
        keys make the retry create no second run."""
        tick = self.storage.create_tick(Tick(instigator=name, tick_time=tick_time))
        if tick is None:
            existing = next((t for t in self.storage.get_ticks(name, limit=50) if t.tick_time == tick_time), None)
            if existing is None or existing.status != "STARTED":
                return None
            tick = existing
        try:
            result = loc.client.evaluate_schedule(name, tick_time)
        except Exception as exc:  # noqa: BLE001 - unreachable code server, ...
            return self._finish_tick(tick, FAILURE, error=f"evaluating the schedule failed: {exc}")
        if result.error is not None:
            return self._finish_tick(tick, FAILURE, error=_format_error(result.error))
        if not result.run_requests:
            return self._finish_tick(tick, SKIPPED, skip=result.skip_reason or "no run requested")
        requests = [(req, req.run_key or (f"{name}:{tick_time:.0f}" if len(result.run_requests) == 1
                                          else f"{name}:{tick_time:.0f}:{i}"))
                    for i, req in enumerate(result.run_requests)]
        return self._create_runs(loc, tick, SCHEDULE_TAG, name, requests)

    # ---- sensors ---------------------------------------------------------------------------------
    def run_sensors(self, now: float | None = None) -> list[Tick]:
        ticks: list[Tick] = []
        for loc in self._locations():
            for name, sensor in loc.snapshot.sensors.items():
                if self._stop.is_set() or not self.lease.is_leader:
                    return ticks
                t = time.time() if now is None else now
                state = self.storage.get_instigator_state(name)
                status = state["status"] if state else sensor.get("default_status", STOPPED)
                if status != RUNNING:
                    continue
                data = dict(state.get("data") or {}) if state else {}
                last = data.get("last_tick_time")
                if last is not None and t - float(last) < float(sensor.get("minimum_interval_seconds") or 0):
                    continue
                tick = self.sensor_tick(loc, name, t)
                if tick is not None:
                    ticks.append(tick)
        return ticks

    def sensor_tick(self, loc: CodeLocation, name: str, tick_time: float) -> Tick | None:
        state = self.storage.get_instigator_state(name)
        status = state["status"] if state else RUNNING
        data = dict(state.get("data") or {}) if state else {}
        tick = self.storage.create_tick(Tick(instigator=name, tick_time=tick_time, cursor=data.get("cursor")))
        if tick is None:
            return None
        last = data.get("last_tick_time")
        data["last_tick_time"] = tick_time
        self.storage.set_instigator_state(name, "sensor", status, data)
        try:
            result = loc.client.evaluate_sensor(name, cursor=data.get("cursor"), last_tick_time=last)
        except Exception as exc:  # noqa: BLE001
            return self._finish_tick(tick, FAILURE, error=f"evaluating the sensor failed: {exc}")
        if result.error is not None:
            return self._finish_tick(tick, FAILURE, error=_format_error(result.error))
        if result.cursor != data.get("cursor"):
            data["cursor"] = result.cursor
            tick.cursor = result.cursor
            current = self.storage.get_instigator_state(name)
            self.storage.set_instigator_state(name, "sensor", current["status"] if current else status, data)
        if not result.run_requests:
            return self._finish_tick(tick, SKIPPED, skip=result.skip_reason or "no run requested")
        return self._create_runs(loc, tick, SENSOR_TAG, name, [(r, r.run_key) for r in result.run_requests])

    # ---- runs from ticks -------------------------------------------------------------------------
    def _create_runs(self, loc: CodeLocation, tick: Tick, tag: str, name: str,
                     requests: list[tuple[Any, str | None]]) -> Tick:
        from ..storage.records import CodePointer

        errors: list[str] = []
        skipped: list[str] = []
        health = loc.health
        pointer = CodePointer.from_dict(health.code_pointer) if health is not None else CodePointer()
        for req, run_key in requests:
            try:
                existing = None
                if run_key is not None:
                    found = self.storage.get_runs(RunFilter(
                        tags={tag: name, RUN_KEY_TAG: run_key, TICK_TAG: str(tick.id)}), limit=1)
                    existing = found[0] if found else None
                if existing is not None:  # this tick, retried: its run exists already
                    run = existing
                    self.storage.claim_run_key(name, run_key, run.run_id)
                else:
                    validation = loc.client.validate(req.job_name, req.run_config)
                    if not validation.ok:
                        errors.append(f"run config for job '{req.job_name}' is invalid: "
                                      + "; ".join(_format_config_error(e) for e in validation.errors))
                        continue
                    tags = {**validation.tags, **req.tags, tag: name, TICK_TAG: str(tick.id)}
                    run_id = uuid.uuid4().hex
                    if run_key is not None:
                        tags[RUN_KEY_TAG] = run_key
                        if not self.storage.claim_run_key(name, run_key, run_id):
                            skipped.append(run_key)
                            continue
                    run = self.instance.create_run(job_name=req.job_name, run_config=req.run_config, tags=tags,
                                                   code_pointer=pointer, run_id=run_id,
                                                   step_keys_to_execute=validation.step_keys_to_execute)
                if run.run_id not in tick.run_ids:
                    tick.run_ids.append(run.run_id)
                if run_key is not None and run_key not in tick.run_keys:
                    tick.run_keys.append(run_key)
                self.storage.update_tick(tick)
                if run.status == RunStatus.NOT_STARTED:
                    self.instance.submit_run(run)
            except Exception as exc:  # noqa: BLE001
                log.exception("creating a run for %s failed", name)
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            return self._finish_tick(tick, FAILURE, error="\n".join(errors))
        if not tick.run_ids:
            return self._finish_tick(tick, SKIPPED, skip="run keys already used: " + ", ".join(skipped))
        return self._finish_tick(tick, SUCCESS)

    def _finish_tick(self, tick: Tick, status: str, *, error: str | None = None, skip: str | None = None) -> Tick:
        tick.status, tick.error, tick.skip_reason = status, error, skip
        self.storage.update_tick(tick)
        if error:
            log.warning("tick of %s at %s failed: %s", tick.instigator, tick.tick_time, error)
        return tick

    # ---- run monitoring --------------------------------------------------------------------------
    def run_monitoring(self, now: float | None = None) -> list[tuple[str, str]]:
        """One monitoring pass; returns (run_id, what was done) pairs."""
        from ..launchers.base import TerminateRunContext

        settings = self.instance.settings.run_monitoring
        now = time.time() if now is None else now
        actions: list[tuple[str, str]] = []
        runs = self.storage.get_runs(RunFilter(statuses=[RunStatus.STARTING, RunStatus.STARTED,
                                                         RunStatus.CANCELING]))
        launcher = self.instance.run_launcher
        for run in runs:
            if self._stop.is_set() or not self.lease.is_leader:
                break
            try:
                if run.status == RunStatus.STARTING:
                    since = self._status_since(run, EventType.RUN_STARTING)
                    if now - since > settings.start_timeout_seconds:
                        launcher.terminate(TerminateRunContext(instance=self.instance, run=run))
                        if self.instance.transition(
                                run, [RunStatus.STARTING], RunStatus.FAILURE,
                                f"Run did not start within {settings.start_timeout_seconds:g}s "
                                "(run_monitoring.start_timeout_seconds); its worker was terminated.",
                                data={"reason": "start_timeout"}):
                            actions.append((run.run_id, "start_timeout"))
                            continue
                elif run.status == RunStatus.CANCELING:
                    since = self._status_since(run, EventType.RUN_CANCELING)
                    if now - since > settings.cancel_timeout_seconds:
                        launcher.terminate(TerminateRunContext(instance=self.instance, run=run))
                        if self.instance.transition(
                                run, [RunStatus.CANCELING], RunStatus.CANCELED,
                                f"Run did not finish canceling within {settings.cancel_timeout_seconds:g}s "
                                "(run_monitoring.cancel_timeout_seconds); its worker was terminated.",
                                data={"reason": "cancel_timeout"}):
                            actions.append((run.run_id, "cancel_timeout"))
                            continue
                elif run.status == RunStatus.STARTED:
                    limit = _float_tag(run.tags.get(MAX_RUNTIME_TAG))
                    if limit is not None and run.start_time is not None and now - run.start_time > limit:
                        self.instance.report_engine_event(
                            run.run_id, f"Run exceeded its max runtime of {limit:g}s ({MAX_RUNTIME_TAG} tag); "
                            "terminating it.", level="WARNING", data={"reason": "max_runtime"})
                        self.instance.terminate_run(run.run_id)
                        actions.append((run.run_id, "max_runtime"))
                        continue
                if self.instance.check_run_health(run.run_id) == "dead":
                    actions.append((run.run_id, "dead"))
            except Exception:  # noqa: BLE001 - one run's trouble never stops the pass
                log.exception("monitoring run %s failed", run.run_id)
        return actions

    def _status_since(self, run: RunRecord, event_type: EventType) -> float:
        events = self.storage.get_events(run.run_id, event_types=[event_type])
        return events[-1].timestamp if events else run.updated_at


def _float_tag(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value))
    except ValueError:
        return None


def _format_error(error: Any) -> str:
    text = error.message
    if getattr(error, "traceback", None):
        text += "\n" + error.traceback
    return text


def _format_config_error(error: Any) -> str:
    return str(getattr(error, "message", error))


def open_workspace(files: tuple[str, ...] | list[str] = (), workspace_file: str | None = None,
                   **kwargs: Any) -> Workspace:
    """A workspace (not started) from ``-f FILE`` arguments or a workspace file."""
    from ..codeserver.protocol import default_location_name
    from ..workspace.config import LocationOrigin
    from ..workspace.workspace import Workspace

    if files:
        origins = []
        for f in files:
            path = os.path.abspath(f)
            origins.append(LocationOrigin(kind="python_file", location_name=default_location_name(python_file=path),
                                          python_file=path, working_directory=os.path.dirname(path)))
        return Workspace(origins, **kwargs)
    if workspace_file is None:
        from ..workspace.config import DEFAULT_WORKSPACE_FILE

        workspace_file = DEFAULT_WORKSPACE_FILE
    return Workspace.from_file(workspace_file, **kwargs)
