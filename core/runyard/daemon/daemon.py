"""The daemon: APScheduler drives its loops, all state is in storage, one module per loop.

* :mod:`.queue` — the run queue (its own thread, woken by storage).
* :mod:`.schedules` and :mod:`.sensors` — ticks, with :mod:`.ticks` turning run requests into runs.
* :mod:`.monitoring` — start and cancel timeouts, ``runyard/max_runtime``, worker health.
* :mod:`.retention` — deleting old finished runs.
* :mod:`.retries` — re-executing failed runs (``run_retries``), by failure reason.
* :mod:`.backfills` — turning backfills into queued runs, a batch per transaction (docs/backfills.md).
* ``lease`` — every second (a third of ``lease_seconds`` if shorter): the holder renews every third
  of ``lease_seconds``, a standby tries to take the lease (:mod:`.lease`).

Only the holder of the ``runyard-daemon`` lease works; the others stand by. This class owns what the
loops share: the lease, the stop flag, heartbeats with each loop's last error, and the workspace's
code locations (the daemon talks to user code only through their code servers).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import backfills, monitoring, queue, retention, retries, schedules, sensors
from .lease import LeaseKeeper

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..operations.workspace import LocationWatch
    from ..storage.records import RunRecord, Tick
    from ..workspace.workspace import CodeLocation, Workspace
    from .metrics import DaemonMetrics

log = logging.getLogger("runyard.daemon")

LOOPS = ("queue", "schedules", "sensors", "monitoring", "retention", "retries", "backfills")


class Daemon:
    def __init__(self, instance: Instance, workspace: Workspace | None = None, *,
                 daemon_id: str | None = None):
        self.instance = instance
        self.workspace = workspace
        self.settings = instance.settings.daemon
        self.daemon_id = daemon_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.storage = instance.storage
        self.lease = LeaseKeeper(self.storage, self.daemon_id, self.settings.lease_seconds,
                                 on_change=lambda leader: self._beat("lease", force=True))
        self._stop = threading.Event()
        self._scheduler: Any = None
        self._queue_thread: threading.Thread | None = None
        self._errors: dict[str, tuple[float, str] | None] = {loop: None for loop in (*LOOPS, "lease")}
        self._last_beat: dict[str, float] = {}
        self._periods: dict[str, float] = {"lease": self.lease.retry_interval}
        self._work_lock = threading.Lock()
        self._watch: LocationWatch | None = None
        #: the metrics port's registry and server (runyard.daemon.metrics), when daemon.metrics_port is set
        self.metrics: DaemonMetrics | None = None
        if self.settings.metrics_port is not None:
            from .metrics import DaemonMetrics

            self.metrics = DaemonMetrics(self)

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Daemon:
        if self._scheduler is not None:  # already running (``with daemon.start():``)
            return self
        if self.metrics is not None:  # first: a port in use fails the start before anything else ran
            self.metrics.start()
        try:
            return self._start()
        except BaseException:
            if self.metrics is not None:
                self.metrics.stop()
            raise

    def _start(self) -> Daemon:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.instance.run_launcher.prepare(self.instance)
        self.lease.tick()
        self._beat("lease", force=True)
        sched = BackgroundScheduler(timezone=UTC,
                                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        sched.add_job(self._lease_job, "interval", seconds=self.lease.retry_interval, id="lease")
        loops: list[tuple[str, Callable[[], Any], float, dict[str, Any]]] = [
            ("schedules", self.run_schedules, self.settings.schedule_interval_seconds, {}),
            ("sensors", self.run_sensors, self.settings.sensor_interval_seconds, {}),
            # first pass at start: a new leader goes on with the backfills the old one left
            ("backfills", self.run_backfills, self.settings.backfill_interval_seconds,
             {"next_run_time": datetime.now(UTC)})]
        if self.instance.settings.run_monitoring.enabled:  # first pass at start: a new leader looks at once
            loops.append(("monitoring", self.run_monitoring,
                          self.instance.settings.run_monitoring.poll_interval_seconds,
                          {"next_run_time": datetime.now(UTC)}))
        if self.instance.settings.run_retries.enabled:
            loops.append(("retries", self.run_retries, self.instance.settings.run_retries.interval_seconds, {}))
        retention_settings = self.instance.settings.retention
        if retention_settings.runs_days is not None or retention_settings.audit_days is not None:
            # first pass at start, then every interval
            loops.append(("retention", self.prune, retention_settings.interval_seconds,
                          {"next_run_time": datetime.now(UTC)}))
        for name, fn, seconds, extra in loops:
            self._periods[name] = float(seconds)
            sched.add_job(self.run_loop, "interval", args=(name, fn), seconds=seconds, id=name, **extra)
        if self.metrics is not None:  # not a loop of its own: it has no heartbeat, the leader's passes feed a histogram
            sched.add_job(self.metrics.follow_steps, "interval", seconds=self.settings.heartbeat_interval_seconds,
                          id="metrics-steps")
        sched.start()
        self._scheduler = sched
        if getattr(self.instance.run_coordinator, "queues_runs", False):
            self._periods["queue"] = float(self.instance.run_coordinator.dequeue_interval)
            self._queue_thread = threading.Thread(target=queue.queue_main, args=(self,),
                                                  name="runyard-daemon-queue", daemon=True)
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
        except Exception:  # noqa: BLE001 - storage gone while stopping: the lease expires anyway
            pass
        if self.metrics is not None:
            self.metrics.stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def working(self) -> bool:
        """Whether loops should go on: not stopping, and holding the lease."""
        return not self._stop.is_set() and self.lease.is_leader

    # ---- leadership, heartbeats, one pass of a loop ----------------------------------------------
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
        # ``interval`` and ``period`` let a reader in another process judge this heartbeat's age
        # (daemon/status.py): silent for several intervals means stuck or dead, not standing by
        interval = self.settings.heartbeat_interval_seconds
        info = {"leader": lease is not None, "token": lease.token if lease else None,
                "last_error": err[1] if err else None, "error_time": err[0] if err else None,
                "pid": os.getpid(), "stopping": self._stop.is_set(), "interval": interval,
                "period": max(interval, self._periods.get(loop, interval))}
        try:
            self.storage.heartbeat(self.daemon_id, loop, info)
        except Exception as exc:  # noqa: BLE001
            log.warning("daemon %s: heartbeat failed: %s", self.daemon_id, exc)

    def heartbeat_ages(self, now: float | None = None) -> dict[str, float]:
        """Seconds since each loop's last heartbeat written by this daemon (what its metrics say)."""
        now = time.time() if now is None else now
        return {loop: max(0.0, now - at) for loop, at in dict(self._last_beat).items()}

    def run_loop(self, name: str, fn: Callable[[], Any]) -> None:
        """One pass of a loop: only on the leader; errors are logged and heartbeated, never fatal."""
        if not self.working:
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

    def locations(self) -> list[CodeLocation]:
        """The workspace's code locations that have a snapshot now, each checked at most once a
        second: a new snapshot (a reload here, on a shared code server, or announced through storage
        by another process) is picked up on the next pass (docs/daemon.md)."""
        if self.workspace is None:
            return []
        if self._watch is None:
            from ..operations.workspace import LocationWatch

            self._watch = LocationWatch.of(self.workspace, self.storage)
        return self._watch.loaded(max_age=1.0)

    # ---- the loops (each in its own module; called directly by tests) ---------------------------
    def dequeue(self) -> list[RunRecord]:
        return queue.dequeue(self)

    def run_schedules(self, now: float | None = None) -> list[Tick]:
        return schedules.run_schedules(self, now)

    def schedule_tick(self, loc: CodeLocation, name: str, tick_time: float) -> Tick | None:
        return schedules.schedule_tick(self, loc, name, tick_time)

    def run_sensors(self, now: float | None = None) -> list[Tick]:
        return sensors.run_sensors(self, now)

    def sensor_tick(self, loc: CodeLocation, name: str, tick_time: float) -> Tick | None:
        return sensors.sensor_tick(self, loc, name, tick_time)

    def run_monitoring(self, now: float | None = None) -> list[tuple[str, str]]:
        return monitoring.run_monitoring(self, now)

    def prune_runs(self, now: float | None = None) -> list[str]:
        return retention.prune_runs(self, now)

    def prune_audit_log(self, now: float | None = None) -> int:
        return retention.prune_audit_log(self, now)

    def prune(self, now: float | None = None) -> None:
        """One retention pass: old runs, then old audit log entries."""
        self.prune_runs(now)
        self.prune_audit_log(now)

    def run_retries(self, now: float | None = None) -> list[tuple[str, str]]:
        return retries.run_retries(self, now)

    def run_backfills(self) -> list[str]:
        return backfills.run_backfills(self)
