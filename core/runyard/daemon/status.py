"""What ``runyard daemon status`` and the web UI's status page show: who holds the daemon lease and
each daemon's loops (last heartbeat, last error), read from storage alone."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.base import RunStorage


def daemon_status(storage: RunStorage, now: float | None = None) -> dict[str, Any]:
    """``{"lease": {holder, token, expires_in_seconds} | None, "daemons": [{daemon_id, leader,
    stopped, loops: {name: {last_heartbeat, age_seconds, last_error, error_time}}}]}`` — the
    stable ``runyard daemon status --json`` shape (docs/cli.md)."""
    from .lease import LEASE_NAME

    now = time.time() if now is None else now
    lease = storage.get_lease(LEASE_NAME)
    daemons: dict[str, dict[str, Any]] = {}
    for b in storage.get_heartbeats():
        d = daemons.setdefault(b["daemon_id"], {"daemon_id": b["daemon_id"], "loops": {}})
        d["loops"][b["loop"]] = {"last_heartbeat": b["timestamp"], "age_seconds": round(now - b["timestamp"], 1),
                                 "last_error": b["info"].get("last_error"),
                                 "error_time": b["info"].get("error_time")}
        d["leader"] = bool(lease and lease.holder == b["daemon_id"] and lease.expires_at >= now)
        d["stopped"] = bool(b["info"].get("stopping")) if b["loop"] == "lease" else d.get("stopped", False)
    return {"lease": None if lease is None else {"holder": lease.holder, "token": lease.token,
                                                  "expires_in_seconds": round(lease.expires_at - now, 1)},
            "daemons": list(daemons.values())}
