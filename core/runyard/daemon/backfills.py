"""The backfill loop (leader only): turn REQUESTED backfills into QUEUED runs, in batches, and finish
canceled ones (docs/backfills.md).

For each REQUESTED backfill, oldest first, the next ``daemon.backfill_batch_size`` partition keys
after its cursor (``submitted``) go to the job's code server in one call
(:meth:`CodeServerClient.partition_runs`: each partition's run config and tags, from the job's
partitioned config); their runs are then stored QUEUED, with their ``RUN_ENQUEUED`` events, in the
transaction that moves the cursor — a compare-and-set on the old cursor, fenced by the daemon's
lease (:meth:`RunStorage.submit_backfill_runs`). A daemon that lost the lease, or a new leader that
retries a batch the old one committed just before dying, writes nothing, so every partition gets
exactly one run however the leadership moves. The queue loop then launches the runs under the
queue's limits; with a coordinator that does not queue, this loop claims and launches each batch
itself, and on each pass any backfill run left QUEUED by a leader that died before launching it (the
claim is a compare-and-set too).

Code server trouble: unreachable, or its definitions failing to load, is retried on the next pass
(the backfill stays REQUESTED, its ``error`` says what happened); an error in user code (a
partitioned config function that raised) or a job that no longer exists fails the backfill.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from ..storage.records import BackfillRecord, BackfillStatus, Event, EventType, RunRecord, RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..codeserver.protocol import PartitionRunData
    from ..workspace.workspace import CodeLocation
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")

QUEUED_MESSAGE = "Run queued by backfill {id}; the daemon launches it under the queue's limits."


def run_backfills(daemon: Daemon) -> list[str]:
    """One pass: finish CANCELING backfills, then create the runs of REQUESTED ones, oldest first,
    while this daemon leads. Returns the ids of the runs created."""
    from ..operations.backfills import finish_cancel

    storage = daemon.storage
    try:
        canceling = storage.get_backfills(statuses=[BackfillStatus.CANCELING])
    except NotImplementedError:  # a storage plugin written before backfills: nothing to do, quietly
        return []
    for bf in canceling:
        if not daemon.working:
            return []
        finish_cancel(daemon.instance, bf.backfill_id)
    if not getattr(daemon.instance.run_coordinator, "queues_runs", False):
        launch_queued(daemon)  # runs a leader made but did not get to launch before it died
    pending = storage.get_backfills(statuses=[BackfillStatus.REQUESTED])
    if not pending:
        return []
    locations = {loc.name: loc for loc in daemon.locations()}
    created: list[str] = []
    for bf in reversed(pending):  # oldest first
        if not daemon.working:
            break
        created += submit_backfill(daemon, bf, locations.get(bf.location))
    return created


def submit_backfill(daemon: Daemon, bf: BackfillRecord, loc: CodeLocation | None) -> list[str]:
    """Create the runs of ``bf``'s remaining partitions, a batch per transaction, until done, the
    daemon stops leading, or the backfill is canceled. Returns the ids of the runs created."""
    from ..codeserver.errors import CodeLocationLoadError, CodeServerError, CodeServerUnavailableError

    storage = daemon.storage
    if loc is None:
        _note(daemon, bf, f"code location '{bf.location}' is not loaded (not in the workspace, or its "
                          "code server is not up yet); retrying")
        return []
    size = daemon.settings.backfill_batch_size
    created: list[str] = []
    while daemon.working and bf.submitted < bf.num_partitions:
        start = bf.submitted
        keys = bf.partition_keys[start:start + size]
        try:
            result = loc.client.partition_runs_result(bf.job_name, keys)
        except (CodeServerUnavailableError, CodeLocationLoadError) as exc:
            _note(daemon, bf, f"code location '{bf.location}' is unavailable, retrying: {exc}")
            return created
        except CodeServerError as exc:
            _fail(daemon, bf, f"code location '{bf.location}' refused the partitions of job "
                              f"'{bf.job_name}': {exc}")
            return created
        if result.error is not None:
            text = result.error.message + (f"\n{result.error.traceback}" if result.error.traceback else "")
            if result.error.kind == "load_error":
                _note(daemon, bf, f"code location '{bf.location}' failed to load, retrying: {text}")
            else:
                _fail(daemon, bf, f"the run config of job '{bf.job_name}' for partitions {keys[0]}..{keys[-1]} "
                                  f"failed: {text}")
            return created
        try:
            runs, events = batch_runs(daemon, bf, loc, keys, list(result.results))
        except Exception as exc:  # noqa: BLE001 - a bad answer (missing key, reserved tag) fails the backfill
            _fail(daemon, bf, f"{type(exc).__name__}: {exc}")
            return created
        lease = daemon.lease.lease
        if lease is None:
            return created
        if not storage.submit_backfill_runs(bf.backfill_id, start, runs, events, fence=lease):
            current = storage.get_backfill(bf.backfill_id)
            if current is None or current.status != BackfillStatus.REQUESTED or current.submitted == start:
                return created  # canceled, deleted, or the lease is gone: nothing more here
            bf = current  # another daemon moved the cursor: go on from where it is
            continue
        bf.submitted = start + len(runs)
        if bf.error:  # the passing problem noted before is over
            now = BackfillStatus.COMPLETED if bf.submitted >= bf.num_partitions else BackfillStatus.REQUESTED
            storage.update_backfill(bf.backfill_id, now, expected=[now], error="")
            bf.error = None
        created += [r.run_id for r in runs]
        _after_commit(daemon, runs)
    if created:
        log.info("backfill %s: %d run(s) queued, %d/%d partitions", bf.backfill_id, len(created),
                 bf.submitted, bf.num_partitions)
    return created


def batch_runs(daemon: Daemon, bf: BackfillRecord, loc: CodeLocation, keys: list[str],
               items: list[PartitionRunData]) -> tuple[list[RunRecord], list[Event]]:
    """The QUEUED runs (and their RUN_ENQUEUED events) of ``keys``, from the code server's answer:
    its run config, the job's and the partition's tags, the backfill's tags, the backfill and
    partition tags and the location's (as a launch from the location sets them)."""
    from ..operations.launch import location_code_pointer, location_tags
    from ..tags import BACKFILL_TAG, PARTITION_TAG, check_user_tags

    by_key = {item.partition_key: item for item in items}
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ValueError(f"code location '{bf.location}' gave no run for partition(s) {', '.join(missing[:5])} "
                         f"of job '{bf.job_name}'")
    pointer = location_code_pointer(loc)
    if not pointer.to_dict():
        pointer = bf.code_pointer
    where = location_tags(loc)
    now = time.time()
    runs: list[RunRecord] = []
    events: list[Event] = []
    message = QUEUED_MESSAGE.format(id=bf.backfill_id)
    for key in keys:
        item = by_key[key]
        tags = {k: v for k, v in item.tags.items() if k != PARTITION_TAG}
        check_user_tags(tags, f"job '{bf.job_name}' partition {key!r}")
        run = RunRecord(run_id=uuid.uuid4().hex, job_name=bf.job_name, status=RunStatus.QUEUED,
                        run_config=dict(item.run_config), code_pointer=pointer,
                        tags={**tags, **bf.tags, **where, BACKFILL_TAG: bf.backfill_id, PARTITION_TAG: key},
                        created_at=now)
        runs.append(run)
        events.append(Event(run_id=run.run_id, event_type=EventType.RUN_ENQUEUED, message=message,
                            data={"backfill": bf.backfill_id}, timestamp=now))
    return runs, events


def _after_commit(daemon: Daemon, runs: list[RunRecord]) -> None:
    """What follows a committed batch: status hooks for the new QUEUED runs, and, with a coordinator
    that does not queue runs, claiming and launching them here (no queue loop would)."""
    from ..plugins import has_status_hooks, notify_status_changed

    if has_status_hooks():
        for run in runs:
            notify_status_changed(run, None, RunStatus.QUEUED, None)
    if not getattr(daemon.instance.run_coordinator, "queues_runs", False):
        launch_queued(daemon, [r.run_id for r in runs])


def launch_queued(daemon: Daemon, run_ids: list[str] | None = None) -> int:
    """With a coordinator that does not queue runs (nobody else dequeues them): claim the backfills'
    QUEUED runs (``run_ids``, or every QUEUED run carrying ``runyard/backfill``) and launch them.
    The claim is a compare-and-set fenced by the lease, so a run is launched once. Returns how many
    were claimed."""
    from ..storage.records import RunFilter
    from ..tags import BACKFILL_TAG
    from .queue import _launch

    lease = daemon.lease.lease
    if lease is None:
        return 0
    if run_ids is None:  # a pass's worth; the next pass takes the rest
        run_ids = [r.run_id for r in daemon.storage.get_runs(
            RunFilter(statuses=[RunStatus.QUEUED], tag_keys=[BACKFILL_TAG]), limit=500)]
    if not run_ids:
        return 0
    claimed = daemon.storage.claim_queued_runs(daemon.daemon_id, len(run_ids), run_ids=run_ids, fence=lease)
    claimed_at = time.monotonic()
    for run in claimed:
        _launch(daemon, run, claimed_at)
    return len(claimed)


def _note(daemon: Daemon, bf: BackfillRecord, message: str) -> None:
    """A passing problem: recorded on the backfill (shown with it), retried on the next pass."""
    if bf.error != message:
        daemon.storage.update_backfill(bf.backfill_id, BackfillStatus.REQUESTED,
                                       expected=[BackfillStatus.REQUESTED], error=message)
        bf.error = message
    log.warning("backfill %s: %s", bf.backfill_id, message)


def _fail(daemon: Daemon, bf: BackfillRecord, message: str) -> None:
    if daemon.storage.update_backfill(bf.backfill_id, BackfillStatus.FAILED, expected=[BackfillStatus.REQUESTED],
                                      error=message):
        log.warning("backfill %s failed: %s", bf.backfill_id, message)
