"""The retention loop, every ``retention.interval_seconds`` (first pass at start) when
``retention.runs_days`` or ``retention.audit_days`` is set: finished runs created before the cutoff
are deleted with their events and files (:func:`runyard.operations.delete.delete_run`), oldest
first, ``batch_size`` at a time; runs in progress or queued are never touched. Audit log entries
older than their cutoff are deleted in one statement."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..storage.records import FINISHED_STATUSES, RunFilter

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")


def prune_runs(daemon: Daemon, now: float | None = None) -> list[str]:
    """One retention pass; returns the deleted run ids."""
    from ..operations.delete import delete_run

    settings = daemon.instance.settings.retention
    if settings.runs_days is None:
        return []
    cutoff = (time.time() if now is None else now) - settings.runs_days * 86400.0
    wanted = RunFilter(statuses=sorted(FINISHED_STATUSES), created_before=cutoff)
    deleted: list[str] = []
    while daemon.working:
        batch = daemon.storage.get_runs(wanted, limit=settings.batch_size)
        for run in reversed(batch):  # oldest first: an interrupted pass leaves the newest
            try:
                delete_run(daemon.instance, run.run_id, files=True)
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


def prune_audit_log(daemon: Daemon, now: float | None = None) -> int:
    """Delete the audit log entries older than ``retention.audit_days``; returns how many."""
    days = daemon.instance.settings.retention.audit_days
    if days is None or not daemon.working:  # a standby prunes nothing
        return 0
    cutoff = (time.time() if now is None else now) - days * 86400.0
    deleted = daemon.storage.delete_audit_entries(cutoff)
    if deleted:
        log.info("retention: deleted %d audit log entr%s older than %s", deleted, "y" if deleted == 1 else "ies",
                 datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="seconds"))
    return deleted
