"""The run queue loop, with the ``queued`` coordinator: claim QUEUED runs under the coordinator's
limits (counted by storage inside the claim, fenced by the lease token) and launch them. It waits on
:meth:`RunStorage.wait_for_runs`, so a submission wakes it at once where storage notifies."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..launchers.base import LaunchError

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.records import RunRecord
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")


def queue_main(daemon: Daemon) -> None:
    """The queue thread: a pass whenever runs change (or every ``dequeue_interval``) until stopped."""
    interval = float(daemon.instance.run_coordinator.dequeue_interval)
    daemon.storage.wait_for_runs(0)  # start watching
    while not daemon.stopping:
        daemon.run_loop("queue", daemon.dequeue)
        daemon.storage.wait_for_runs(interval)


def dequeue(daemon: Daemon) -> list[RunRecord]:
    """Claim what the limits allow (fenced by the lease) and launch it. Returns the launched runs."""
    coordinator = daemon.instance.run_coordinator
    limits = coordinator.claim_limits()
    lease = daemon.lease.lease
    if lease is None:
        return []
    batch = daemon.settings.dequeue_batch_size
    launched: list[RunRecord] = []
    while not daemon.stopping:
        claimed = daemon.storage.claim_queued_runs(daemon.daemon_id, batch, fence=lease, limits=limits)
        for run in claimed:
            try:
                launched.append(daemon.instance.launch_claimed_run(run))
            except LaunchError as exc:  # a typed failure (missing image, engine down): no traceback to show
                log.warning("launching run %s failed (%s): %s", run.run_id, exc.reason, exc)
            except Exception:  # noqa: BLE001 - the run is marked FAILURE with the launcher's error
                log.exception("launching run %s failed", run.run_id)
        if len(claimed) < batch:
            break
    return launched
