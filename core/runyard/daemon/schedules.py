"""The schedule loop: every ``schedule_interval_seconds``, for each running schedule, the cron fire
times since its last tick (at most ``max_catchup_ticks`` of them after downtime) become ticks.
A tick is unique per (schedule, tick time) in storage and its runs have run keys, so a retried or
repeated tick never doubles a run."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..operations.instigators import schedule_fire_times
from ..storage.records import InstigatorStatus, Tick, TickStatus
from ..tags import SCHEDULE_TAG
from .ticks import create_runs, evaluation_failed, finish_tick

if TYPE_CHECKING:  # pragma: no cover
    from ..workspace.workspace import CodeLocation
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")


def run_schedules(daemon: Daemon, now: float | None = None) -> list[Tick]:
    """One pass over every schedule; returns the ticks made."""
    now = time.time() if now is None else now
    storage = daemon.storage
    ticks: list[Tick] = []
    for loc in daemon.locations():
        for name, sched in loc.snapshot.schedules_by_name.items():
            if not daemon.working:
                return ticks
            state = storage.get_instigator_state(name)
            status = state["status"] if state else sched.default_status
            if status != InstigatorStatus.RUNNING:
                continue
            data = dict(state.get("data") or {}) if state else {}
            if "cursor_time" not in data:  # first sight: ticks from now on
                data["cursor_time"] = now
                storage.set_instigator_state(name, "schedule", InstigatorStatus.RUNNING.value, data)
                continue
            due = schedule_fire_times(sched.cron_schedule, sched.execution_timezone, float(data["cursor_time"]), now)
            if not due:
                continue
            keep = due[-daemon.settings.max_catchup_ticks:]
            if len(due) > len(keep):
                log.warning("schedule %s missed %d ticks; running the newest %d (daemon: max_catchup_ticks)",
                            name, len(due), len(keep))
            for tick_time in keep:
                tick = schedule_tick(daemon, loc, name, tick_time)
                if tick is not None:
                    ticks.append(tick)
            current = storage.get_instigator_state(name)
            data["cursor_time"] = due[-1]
            storage.set_instigator_state(name, "schedule",
                                         current["status"] if current else InstigatorStatus.RUNNING.value, data)
    return ticks


def schedule_tick(daemon: Daemon, loc: CodeLocation, name: str, tick_time: float) -> Tick | None:
    """Evaluate one tick of a schedule, recording it once. An existing finished tick for the same
    time is left alone (None); an unfinished one (its daemon died mid-tick) is retried — its run
    keys make the retry create no second run."""
    storage = daemon.storage
    tick = storage.create_tick(Tick(instigator=name, tick_time=tick_time))
    if tick is None:
        existing = next((t for t in storage.get_ticks(name, limit=50) if t.tick_time == tick_time), None)
        if existing is None or existing.status != TickStatus.STARTED:
            return None
        tick = existing
    try:
        result = loc.client.evaluate_schedule(name, tick_time)
    except Exception as exc:  # noqa: BLE001 - unreachable code server, ...
        return finish_tick(daemon, tick, TickStatus.FAILURE, error=f"evaluating the schedule failed: {exc}")
    if result.error is not None:
        return evaluation_failed(daemon, tick, result.error)
    if not result.run_requests:
        return finish_tick(daemon, tick, TickStatus.SKIPPED, skip=result.skip_reason or "no run requested")
    single = len(result.run_requests) == 1
    requests = [(req, req.run_key or (f"{name}:{tick_time:.0f}" if single else f"{name}:{tick_time:.0f}:{i}"))
                for i, req in enumerate(result.run_requests)]
    return create_runs(daemon, loc, tick, SCHEDULE_TAG, name, requests)
