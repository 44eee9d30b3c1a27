"""Schedules and sensors ("instigators"): list them with their on/off state, last tick and next
fire time; turn them on and off; preview an evaluation without recording anything.

Their definitions come from code location snapshots; their state (RUNNING/STOPPED, a schedule's
``cursor_time``, a sensor's cursor) lives in storage, keyed by name, where the daemon reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..storage.records import InstigatorStatus
from .errors import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from ..codeserver.protocol import EvaluationResult
    from ..codeserver.snapshot import ScheduleSnapshot, SensorSnapshot
    from ..instance.instance import Instance
    from ..storage.records import Tick
    from ..workspace.workspace import CodeLocation

KINDS = ("schedule", "sensor")


@dataclass(frozen=True, kw_only=True)
class InstigatorInfo:
    """One schedule or sensor as a front end shows it. ``definition`` is its snapshot;
    ``next_tick`` (schedules only) the next cron fire time; ``last_tick`` the newest stored tick."""

    name: str
    kind: str
    location: CodeLocation
    definition: ScheduleSnapshot | SensorSnapshot
    status: InstigatorStatus
    next_tick: float | None = None
    last_tick: Tick | None = None


def instigator_status(instance: Instance, name: str, default_status: str | None) -> InstigatorStatus:
    """RUNNING or STOPPED: the state stored by start/stop, else the definition's default."""
    state = instance.storage.get_instigator_state(name)
    if state is not None:
        return InstigatorStatus(str(state["status"]))
    return InstigatorStatus(default_status or InstigatorStatus.STOPPED)


def _trigger(cron: str, tz: str | None) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(cron, timezone=tz or "UTC")


def _fire_times_after(trigger: Any, after: float):
    nxt = trigger.get_next_fire_time(None, datetime.fromtimestamp(after, UTC) + timedelta(microseconds=1))
    while nxt is not None:
        yield nxt
        nxt = trigger.get_next_fire_time(nxt, nxt + timedelta(microseconds=1))


def schedule_fire_times(cron: str, tz: str | None, after: float, until: float,
                        limit: int | None = None) -> list[float]:
    """Cron fire times in (after, until], oldest first (epoch seconds). With ``limit``, the newest ones."""
    end = datetime.fromtimestamp(until, UTC)
    times: list[float] = []
    for nxt in _fire_times_after(_trigger(cron, tz), after):
        if nxt > end:
            break
        times.append(nxt.timestamp())
        if limit is not None and len(times) > limit:
            times.pop(0)
    return times


def next_fire_times(cron: str, tz: str | None, after: float, n: int) -> list[float]:
    """The next ``n`` cron fire times after ``after`` (epoch seconds)."""
    out: list[float] = []
    for nxt in _fire_times_after(_trigger(cron, tz), after):
        if len(out) >= n:
            break
        out.append(nxt.timestamp())
    return out


def definitions_of(locations: Iterable[CodeLocation],
                   kind: str) -> dict[str, tuple[CodeLocation, ScheduleSnapshot | SensorSnapshot]]:
    """``{name: (location, snapshot)}`` of every schedule (``kind="schedule"``) or sensor of the
    locations that have a snapshot."""
    if kind not in KINDS:
        raise ValueError(f"unknown instigator kind {kind!r}")
    found: dict[str, tuple[CodeLocation, ScheduleSnapshot | SensorSnapshot]] = {}
    for loc in locations:
        if loc.snapshot is None:
            continue
        for name, definition in loc.snapshot.instigators(kind).items():
            found[name] = (loc, definition)
    return found


def find_definition(locations: Iterable[CodeLocation], kind: str,
                    name: str) -> tuple[CodeLocation, ScheduleSnapshot | SensorSnapshot]:
    found = definitions_of(locations, kind)
    if name not in found:
        raise NotFoundError(f"no {kind} named '{name}' in the workspace; {kind}s: "
                            f"{', '.join(sorted(found)) or 'none'}")
    return found[name]


def describe(instance: Instance, kind: str, name: str, loc: CodeLocation,
             definition: ScheduleSnapshot | SensorSnapshot, *,
             now: float | None = None, last_tick: bool = False) -> InstigatorInfo:
    next_tick = None
    if kind == "schedule":
        nxt = next_fire_times(definition.cron_schedule, definition.execution_timezone,
                              time.time() if now is None else now, 1)
        next_tick = nxt[0] if nxt else None
    ticks = instance.storage.get_ticks(name, limit=1) if last_tick else []
    return InstigatorInfo(name=name, kind=kind, location=loc, definition=definition,
                          status=instigator_status(instance, name, definition.default_status),
                          next_tick=next_tick, last_tick=ticks[0] if ticks else None)


def list_instigators(instance: Instance, locations: Iterable[CodeLocation], kind: str, *,
                     now: float | None = None, last_tick: bool = False) -> list[InstigatorInfo]:
    """Every schedule or sensor of ``locations``, sorted by name (with ``last_tick``, each one's
    newest tick is read too)."""
    return [describe(instance, kind, name, loc, definition, now=now, last_tick=last_tick)
            for name, (loc, definition) in sorted(definitions_of(locations, kind).items())]


def set_status(instance: Instance, locations: Iterable[CodeLocation], kind: str, name: str,
               running: bool) -> InstigatorInfo:
    """Turn a schedule or sensor on or off (stored; the daemon acts on it). A schedule turned on
    ticks from now on: starting never replays the fire times it missed while off. A sensor keeps
    its cursor."""
    locations = list(locations)
    loc, definition = find_definition(locations, kind, name)
    state = instance.storage.get_instigator_state(name)
    data = dict(state.get("data") or {}) if state else {}
    if running and kind == "schedule":
        data["cursor_time"] = time.time()
    status = InstigatorStatus.RUNNING if running else InstigatorStatus.STOPPED
    instance.storage.set_instigator_state(name, kind, status.value, data)
    return describe(instance, kind, name, loc, definition)


def preview_schedule(locations: Iterable[CodeLocation], name: str, ticks: int,
                     now: float | None = None) -> list[tuple[float, EvaluationResult]]:
    """The next ``ticks`` fire times of a schedule, each evaluated by its code server; nothing is
    recorded and no run is created."""
    loc, definition = find_definition(locations, "schedule", name)
    times = next_fire_times(definition.cron_schedule, definition.execution_timezone,
                            time.time() if now is None else now, ticks)
    return [(t, loc.client.evaluate_schedule(name, t)) for t in times]


def preview_sensor(instance: Instance, locations: Iterable[CodeLocation],
                   name: str) -> tuple[str | None, EvaluationResult]:
    """``(stored cursor, result)`` of one evaluation of a sensor with its stored cursor; nothing is
    stored and no run is created."""
    loc, _ = find_definition(locations, "sensor", name)
    state = instance.storage.get_instigator_state(name)
    data = (state or {}).get("data") or {}
    return data.get("cursor"), loc.client.evaluate_sensor(name, cursor=data.get("cursor"),
                                                          last_tick_time=data.get("last_tick_time"))
