"""What ``runyard daemon status`` and the web UI's status page show: who holds the daemon lease and
each daemon's state and loops (last heartbeat, last error), read from storage alone.

A daemon's state comes from the age of its newest heartbeat, measured in its own heartbeat interval
(each heartbeat records ``daemon.heartbeat_interval_seconds`` of the daemon that wrote it):
``stopped`` (it said so when stopping cleanly), ``dead`` (silent for more than
:data:`DEAD_AFTER_INTERVALS` intervals: killed, host gone), ``stale`` (more than
:data:`STALE_AFTER_INTERVALS`: stuck, or dying), else ``leader`` or ``standby``. A loop is ``stale``
when it has not reported for that many of its own periods (the longer of its interval and the
heartbeat interval).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage

#: a daemon (or loop) silent for more than this many heartbeat intervals (loop periods) is "stale"
STALE_AFTER_INTERVALS = 3
#: a daemon silent for more than this many heartbeat intervals is "dead"
DEAD_AFTER_INTERVALS = 6
#: the interval assumed for heartbeats that do not record one (written by an older daemon)
DEFAULT_HEARTBEAT_INTERVAL = 5.0

STATES = ("leader", "standby", "stale", "dead", "stopped")


def daemon_state(*, age_seconds: float, interval: float, leader: bool, stopped: bool) -> str:
    """One of :data:`STATES` for a daemon whose newest heartbeat is ``age_seconds`` old."""
    if stopped:
        return "stopped"
    if age_seconds > DEAD_AFTER_INTERVALS * interval:
        return "dead"
    if age_seconds > STALE_AFTER_INTERVALS * interval:
        return "stale"
    return "leader" if leader else "standby"


def daemon_status(storage: RunStorage, now: float | None = None) -> dict[str, Any]:
    """``{"lease": {holder, token, expires_in_seconds} | None, "daemons": [{daemon_id, state,
    age_seconds, heartbeat_interval_seconds, leader, stopped, loops: {name: {last_heartbeat,
    age_seconds, stale, last_error, error_time}}}]}`` — the stable ``runyard daemon status --json``
    shape (docs/cli.md). ``leader``: holds the unexpired lease (a dead leader still does until the
    lease expires); ``state``: see the module docstring."""
    from .lease import LEASE_NAME

    now = time.time() if now is None else now
    lease = storage.get_lease(LEASE_NAME)
    daemons: dict[str, dict[str, Any]] = {}
    for b in storage.get_heartbeats():
        info = b["info"] or {}
        d = daemons.setdefault(b["daemon_id"], {"daemon_id": b["daemon_id"], "loops": {},
                                                "leader": False, "stopped": False, "_newest": 0.0})
        interval = float(info.get("interval") or d.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT_INTERVAL)
        d["heartbeat_interval_seconds"] = interval
        age = now - b["timestamp"]
        period = float(info.get("period") or interval)
        d["loops"][b["loop"]] = {"last_heartbeat": b["timestamp"], "age_seconds": round(age, 1),
                                 "stale": age > STALE_AFTER_INTERVALS * period,
                                 "last_error": info.get("last_error"), "error_time": info.get("error_time")}
        d["leader"] = bool(lease and lease.holder == b["daemon_id"] and lease.expires_at >= now)
        if b["loop"] == "lease":
            d["stopped"] = bool(info.get("stopping"))
        d["_newest"] = max(d["_newest"], b["timestamp"])
    for d in daemons.values():
        d["age_seconds"] = round(now - d.pop("_newest"), 1)
        d["state"] = daemon_state(age_seconds=d["age_seconds"], interval=d["heartbeat_interval_seconds"],
                                  leader=d["leader"], stopped=d["stopped"])
    return {"lease": None if lease is None else {"holder": lease.holder, "token": lease.token,
                                                  "expires_in_seconds": round(lease.expires_at - now, 1)},
            "daemons": list(daemons.values())}
