"""The sensor loop: every ``sensor_interval_seconds``, each running sensor whose
``minimum_interval_seconds`` passed is evaluated with its stored cursor. Run keys make a sensor's
repeated request create one run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..storage.records import InstigatorStatus, Tick, TickStatus
from ..tags import SENSOR_TAG
from .ticks import create_runs, evaluation_failed, finish_tick

if TYPE_CHECKING:  # pragma: no cover
    from ..workspace.workspace import CodeLocation
    from .daemon import Daemon


def run_sensors(daemon: Daemon, now: float | None = None) -> list[Tick]:
    """One pass over every sensor; returns the ticks made."""
    ticks: list[Tick] = []
    for loc in daemon.locations():
        for name, sensor in loc.snapshot.sensors_by_name.items():
            if not daemon.working:
                return ticks
            t = time.time() if now is None else now
            state = daemon.storage.get_instigator_state(name)
            status = state["status"] if state else sensor.default_status
            if status != InstigatorStatus.RUNNING:
                continue
            data = dict(state.get("data") or {}) if state else {}
            last = data.get("last_tick_time")
            if last is not None and t - float(last) < float(sensor.minimum_interval_seconds):
                continue
            tick = sensor_tick(daemon, loc, name, t)
            if tick is not None:
                ticks.append(tick)
    return ticks


def sensor_tick(daemon: Daemon, loc: CodeLocation, name: str, tick_time: float) -> Tick | None:
    """Evaluate a sensor once with its cursor, store the new cursor, create the requested runs."""
    storage = daemon.storage
    state = storage.get_instigator_state(name)
    status = state["status"] if state else InstigatorStatus.RUNNING.value
    data = dict(state.get("data") or {}) if state else {}
    tick = storage.create_tick(Tick(instigator=name, tick_time=tick_time, cursor=data.get("cursor")))
    if tick is None:
        return None
    last = data.get("last_tick_time")
    data["last_tick_time"] = tick_time
    storage.set_instigator_state(name, "sensor", status, data)
    try:
        result = loc.client.evaluate_sensor(name, cursor=data.get("cursor"), last_tick_time=last)
    except Exception as exc:  # noqa: BLE001 - unreachable code server, timeout, ...
        return finish_tick(daemon, tick, TickStatus.FAILURE, error=f"evaluating the sensor failed: {exc}")
    if result.error is not None:
        return evaluation_failed(daemon, tick, result.error)
    if result.cursor != data.get("cursor"):
        data["cursor"] = result.cursor
        tick.cursor = result.cursor
        current = storage.get_instigator_state(name)
        storage.set_instigator_state(name, "sensor", current["status"] if current else status, data)
    if not result.run_requests:
        return finish_tick(daemon, tick, TickStatus.SKIPPED, skip=result.skip_reason or "no run requested")
    return create_runs(daemon, loc, tick, SENSOR_TAG, name, [(r, r.run_key) for r in result.run_requests])
