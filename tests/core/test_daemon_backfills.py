"""Backfills through the daemon's backfill loop (docs/backfills.md): a 1,000-partition backfill is
fully enqueued in one pass, each partition exactly once, fast; a batch that another daemon already
made is not made again; cancel stops it and cancels its queued runs; a user-code error fails it with
the error; an unreachable code location is retried; with the default coordinator the loop launches
the runs itself; retry makes a new backfill of the failed partitions. The loop is called directly
(one leading daemon object); the failover across real daemon processes is in
tests/plugins/storage_postgres/test_backfill_failover.py.

Needs: nothing beyond Python and SQLite; code servers and run workers are real processes.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from runyard.daemon.backfills import batch_runs, submit_backfill
from runyard.operations import backfills as ops
from runyard.operations.errors import OperationError
from runyard.storage.records import BackfillStatus, RunFilter, RunStatus
from runyard.tags import BACKFILL_TAG, LOCATION_TAG, PARTITION_TAG

DEFS = """
from runyard import static_partitioned_config


KEYS = [f"p{i:04d}" for i in range(1000)]


@static_partitioned_config(partition_keys=KEYS, tags_for_partition_key_fn=lambda key: {"shard": key[-1]})
def big_config(key):
    return {"ops": {"show": {"config": {"n": int(key[1:])}}}}


@job(config=big_config)
def big():
    show()


@static_partitioned_config(partition_keys=["a", "b", "boom", "c"])
def fragile_config(key):
    if key == "boom":
        raise RuntimeError("no config for partition boom")
    return {"ops": {"show": {"config": {"n": ord(key)}}}}


@job(config=fragile_config)
def fragile():
    show()


@static_partitioned_config(partition_keys=["1", "2", "3"])
def small_config(key):
    return {"ops": {"show": {"config": {"n": int(key)}}}}


@job(config=small_config)
def small():
    show()


defs = Definitions(jobs=[shown, big, fragile, small])
"""

HELD = {"run_coordinator": {"queued": {"max_concurrent_runs": 0}}}  # queued runs stay queued


def launch(harness, job_name: str, **selection):
    loc = harness.location
    job = loc.snapshot.jobs_by_name[job_name]
    keys = ops.select_partition_keys(job, **selection)
    return ops.launch_backfill(harness.instance, loc, job, keys, tags={"team": "data"},
                               runyard_tags={"runyard/user": "tester"})


def backfill_runs(storage, backfill_id: str):
    return storage.get_runs(RunFilter(tags={BACKFILL_TAG: backfill_id}))


def test_a_thousand_partitions_are_enqueued_once_each_in_one_pass(daemon_harness):
    h = daemon_harness(DEFS, {**HELD, "daemon": {"backfill_batch_size": 250}})
    storage = h.instance.storage
    bf = launch(h, "big", all_partitions=True)
    assert bf.status == BackfillStatus.REQUESTED and bf.num_partitions == 1000
    started = time.monotonic()
    created = h.daemon.run_backfills()
    took = time.monotonic() - started
    assert len(created) == 1000
    assert took < 2.0, f"1,000 partitions took {took:.2f}s to enqueue"
    done = storage.get_backfill(bf.backfill_id)
    assert done.status == BackfillStatus.COMPLETED and done.submitted == 1000 and done.error is None
    runs = backfill_runs(storage, bf.backfill_id)
    per_key = Counter(r.tags[PARTITION_TAG] for r in runs)
    assert sorted(per_key) == [f"p{i:04d}" for i in range(1000)] and set(per_key.values()) == {1}
    run = next(r for r in runs if r.tags[PARTITION_TAG] == "p0042")
    assert run.status == RunStatus.QUEUED and run.run_config == {"ops": {"show": {"config": {"n": 42}}}}
    assert run.tags["team"] == "data" and run.tags["runyard/user"] == "tester" and run.tags["shard"] == "2"
    assert run.tags[LOCATION_TAG] == h.location.name and run.code_pointer.python_file == str(h.defs)
    assert [str(e.event_type) for e in storage.get_events(run.run_id)] == ["RUN_ENQUEUED"]
    progress = ops.backfill_progress(storage, done)
    assert progress.to_dict() == {"total": 1000, "submitted": 1000, "finished": 0, "runs": {"QUEUED": 1000}}
    assert h.daemon.run_backfills() == []  # nothing left to do


def test_a_batch_already_made_by_another_daemon_is_not_made_again(daemon_harness):
    h = daemon_harness(DEFS, {**HELD, "daemon": {"backfill_batch_size": 2}})
    storage = h.instance.storage
    bf = launch(h, "small", start="1", end="3")
    assert bf.partition_keys == ["1", "2", "3"]
    # another (earlier) leader committed the first batch after this daemon read the backfill
    runs, events = batch_runs(h.daemon, bf, h.location, ["1", "2"],
                              h.location.client.partition_runs("small", ["1", "2"]))
    assert storage.submit_backfill_runs(bf.backfill_id, 0, runs, events)
    created = submit_backfill(h.daemon, bf, h.location)  # holds the stale cursor 0
    assert len(created) == 1
    keys = Counter(r.tags[PARTITION_TAG] for r in backfill_runs(storage, bf.backfill_id))
    assert keys == {"1": 1, "2": 1, "3": 1}
    assert storage.get_backfill(bf.backfill_id).status == BackfillStatus.COMPLETED


def test_a_daemon_that_lost_its_lease_creates_nothing(daemon_harness):
    h = daemon_harness(DEFS, HELD)
    storage = h.instance.storage
    bf = launch(h, "small", partitions=["3", "1"])
    lease = h.daemon.lease.lease
    storage.release_lease(lease.name, lease.holder)
    assert storage.acquire_lease(lease.name, "someone-else", 30) is not None
    assert submit_backfill(h.daemon, bf, h.location) == []
    assert backfill_runs(storage, bf.backfill_id) == []
    assert storage.get_backfill(bf.backfill_id).submitted == 0


def test_cancel_stops_the_backfill_and_cancels_its_queued_runs(daemon_harness):
    h = daemon_harness(DEFS, {**HELD, "daemon": {"backfill_batch_size": 400}})
    storage = h.instance.storage
    bf = launch(h, "big", start="p0100", end="p0999")
    # one batch made (as the loop makes it), then canceled before the next
    first = bf.partition_keys[:400]
    made = batch_runs(h.daemon, bf, h.location, first, h.location.client.partition_runs("big", first))
    assert storage.submit_backfill_runs(bf.backfill_id, 0, *made, fence=h.daemon.lease.lease)
    canceled = ops.cancel_backfill(h.instance, bf.backfill_id)
    assert canceled.status == BackfillStatus.CANCELED and canceled.submitted == 400
    assert submit_backfill(h.daemon, storage.get_backfill(bf.backfill_id), h.location) == []
    counts = storage.count_runs_by_status(RunFilter(tags={BACKFILL_TAG: bf.backfill_id}))
    assert counts == {RunStatus.CANCELED: 400}
    assert ops.cancel_backfill(h.instance, bf.backfill_id).status == BackfillStatus.CANCELED  # again: as it is
    # retry: the canceled runs' partitions and the ones never made
    retry = ops.retry_backfill(h.instance, [h.location], bf.backfill_id)
    assert retry.partition_keys == bf.partition_keys and retry.retry_of == bf.backfill_id
    assert retry.tags == {"team": "data", "runyard/user": "tester"}


def test_a_user_code_error_fails_the_backfill_with_the_error(daemon_harness):
    h = daemon_harness(DEFS, {**HELD, "daemon": {"backfill_batch_size": 2}})
    storage = h.instance.storage
    bf = launch(h, "fragile", all_partitions=True)
    created = h.daemon.run_backfills()
    assert len(created) == 2  # a, b; the batch with boom fails
    failed = storage.get_backfill(bf.backfill_id)
    assert failed.status == BackfillStatus.FAILED and failed.submitted == 2
    assert "no config for partition boom" in failed.error and "fragile" in failed.error
    with pytest.raises(OperationError, match="already failed"):
        ops.cancel_backfill(h.instance, bf.backfill_id)
    retry = ops.retry_backfill(h.instance, [h.location], bf.backfill_id)
    assert retry.partition_keys == ["boom", "c"]  # never made; a and b are queued, not failed


def test_an_unavailable_code_location_is_retried_not_failed(daemon_harness):
    h = daemon_harness(DEFS, HELD)
    storage = h.instance.storage
    bf = launch(h, "small", all_partitions=True)
    assert submit_backfill(h.daemon, bf, None) == []
    waiting = storage.get_backfill(bf.backfill_id)
    assert waiting.status == BackfillStatus.REQUESTED and "is not loaded" in waiting.error
    assert len(h.daemon.run_backfills()) == 3
    done = storage.get_backfill(bf.backfill_id)
    assert done.status == BackfillStatus.COMPLETED and done.error is None


def test_with_the_default_coordinator_the_loop_launches_the_runs(daemon_harness):
    h = daemon_harness(DEFS)
    storage = h.instance.storage
    bf = launch(h, "small", partitions=["2", "3"])
    assert len(h.daemon.run_backfills()) == 2
    runs = backfill_runs(storage, bf.backfill_id)
    for run in runs:
        assert h.suite.wait_finished(run.run_id).status == RunStatus.SUCCESS
    assert sorted(h.suite.out_lines("ran")) == ["2", "3"]
    progress = ops.backfill_progress(storage, storage.get_backfill(bf.backfill_id))
    assert progress.finished == 2 and progress.count(RunStatus.SUCCESS) == 2
    with pytest.raises(OperationError, match="no failed or canceled partition"):
        ops.retry_backfill(h.instance, [h.location], bf.backfill_id)
    # a leader that committed a batch and died before launching it: the next pass launches its runs
    left = launch(h, "small", partitions=["1"])
    runs, events = batch_runs(h.daemon, left, h.location, ["1"], h.location.client.partition_runs("small", ["1"]))
    assert storage.submit_backfill_runs(left.backfill_id, 0, runs, events)
    assert h.daemon.run_backfills() == []  # no run to create: the backfill is COMPLETED
    assert h.suite.wait_finished(runs[0].run_id).status == RunStatus.SUCCESS


def test_bad_selections_name_the_job_and_the_key(daemon_harness):
    h = daemon_harness(DEFS, HELD)
    snap = h.location.snapshot.jobs_by_name
    with pytest.raises(OperationError, match="job 'shown' is not partitioned"):
        ops.select_partition_keys(snap["shown"], all_partitions=True)
    with pytest.raises(OperationError, match="job 'small' has no partition '9'"):
        ops.select_partition_keys(snap["small"], partitions=["1", "9"])
    with pytest.raises(OperationError, match="from: job 'small' has no partition 'x'"):
        ops.select_partition_keys(snap["small"], start="x")
    with pytest.raises(OperationError, match="'3' comes after '1'"):
        ops.select_partition_keys(snap["small"], start="3", end="1")
    with pytest.raises(OperationError, match="one way"):
        ops.select_partition_keys(snap["small"], partitions=["1"], all_partitions=True)
    assert ops.select_partition_keys(snap["small"], partitions=["2", "1", "2"]) == ["2", "1"]
    assert ops.select_partition_keys(snap["small"], end="2") == ["1", "2"]
    from runyard.tags import ReservedTagError

    with pytest.raises(ReservedTagError, match="runyard/backfill"):
        ops.launch_backfill(h.instance, h.location, snap["small"], ["1"], tags={BACKFILL_TAG: "forged"})
