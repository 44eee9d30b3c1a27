"""The run queue loop, with the ``queued`` coordinator: claim QUEUED runs under the coordinator's
limits (counted by storage inside the claim, fenced by the lease token) and launch them. It waits on
:meth:`RunStorage.wait_for_runs`, so a submission wakes it at once where storage notifies.

A launch is one round trip to the launcher's API (a fork, a container create and start, a
Kubernetes Job). When the launcher declares ``supports_concurrent_launch``, a pass keeps up to
``daemon.launch_concurrency`` launches in flight on a thread pool and goes on claiming as slots
free up, so hundreds of queued runs drain at the API's speed rather than one round trip at a time.
It never claims more than it has free slots for: a claimed run is STARTING (its start timeout
running) and is launched at once, never left waiting behind other launches. Once the slots are full
it claims again when half of them are free, not at each freed slot: a claim is a transaction of its
own (locks, limits counted, RUN_STARTING events, a commit), and one per launch made the claims, made
one after another by this thread, the queue's bottleneck (bench/k8s_compare.py: 500 Kubernetes
launches were no faster with 8 in flight than one at a time). A pass ends when a
claim comes back short (the queue or the limits are exhausted) or the daemon stops, and only after
every launch it started has returned, so stopping leaves no claimed run half-launched.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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


def launch_slots(daemon: Daemon) -> int:
    """How many launches a pass keeps in flight: ``daemon.launch_concurrency`` for a launcher that
    supports concurrent launches, else one."""
    if not daemon.instance.run_launcher.supports_concurrent_launch:
        return 1
    return daemon.settings.launch_concurrency


def dequeue(daemon: Daemon) -> list[RunRecord]:
    """Claim what the limits allow (fenced by the lease) and launch it, at most
    :func:`launch_slots` at once. Returns the launched runs, in claim order."""
    coordinator = daemon.instance.run_coordinator
    limits = coordinator.claim_limits()
    lease = daemon.lease.lease
    if lease is None:
        return []
    batch = daemon.settings.dequeue_batch_size
    slots = launch_slots(daemon)
    started = time.monotonic()
    claimed_total = 0
    launched: list[RunRecord] = []
    if slots == 1:
        while not daemon.stopping:
            claimed = daemon.storage.claim_queued_runs(daemon.daemon_id, batch, fence=lease, limits=limits)
            claimed_at = time.monotonic()
            claimed_total += len(claimed)
            for run in claimed:
                done = _launch(daemon, run, claimed_at)
                if done is not None:
                    launched.append(done)
            if len(claimed) < batch:
                break
    else:
        futures: list[Future[RunRecord | None]] = []
        in_flight: set[Future[RunRecord | None]] = set()
        refill = max(1, slots // 2)  # free slots worth a claim (see the module's docstring)
        with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="runyard-launch") as pool:
            while not daemon.stopping:
                if slots - len(in_flight) < refill:
                    _, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    continue
                want = min(batch, slots - len(in_flight))
                claimed = daemon.storage.claim_queued_runs(daemon.daemon_id, want, fence=lease, limits=limits)
                claimed_at = time.monotonic()
                claimed_total += len(claimed)
                for run in claimed:
                    future = pool.submit(_launch, daemon, run, claimed_at)
                    futures.append(future)
                    in_flight.add(future)
                if len(claimed) < want:
                    break
            # leaving the pool waits for every launch in flight (each returns within seconds)
        launched = [r for r in (f.result() for f in futures) if r is not None]
    if claimed_total:
        log.info("queue: claimed %d run(s), launched %d in %.2fs (%d at a time)", claimed_total, len(launched),
                 time.monotonic() - started, slots)
    return launched


def _launch(daemon: Daemon, run: RunRecord, claimed_at: float) -> RunRecord | None:
    """Launch one claimed run; a failure is logged (the run is then FAILURE) and never raised, so
    one run's trouble never stops the others. ``claimed_at`` (monotonic): when its claim returned,
    where the launch latency metric starts."""
    metrics, launcher = daemon.metrics, daemon.instance.run_launcher.name
    try:
        launched = daemon.instance.launch_claimed_run(run)
    except LaunchError as exc:  # a typed failure (missing image, engine down): no traceback to show
        log.warning("launching run %s failed (%s): %s", run.run_id, exc.reason, exc)
        reason = exc.reason
    except Exception:  # noqa: BLE001 - the run is marked FAILURE with the launcher's error
        log.exception("launching run %s failed", run.run_id)
        reason = "error"
    else:
        if metrics is not None:
            metrics.launched(launcher, time.monotonic() - claimed_at)
        return launched
    if metrics is not None:
        metrics.launch_failed(launcher, reason)
    return None
