"""Daemon replicas against one Postgres: one holds the lease and works, the others stand by; kill -9
the holder and a standby takes over within the lease time, with no tick doubled, no sensor run key
used twice and no queued run launched twice.

Needs: the PostgreSQL server of conftest.py; daemons, code servers and run workers are real processes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

from conftest import DaemonReplicas

from runyard.storage.records import FINISHED_STATUSES, RunFilter, RunStatus
from runyard.testing import processes_with_env, wait_until

DEFS = """
from runyard import Definitions, RunRequest, job, op, schedule, sensor


@op
def quick() -> None:
    pass


@job
def quick_job():
    quick()


@sensor(job=quick_job, minimum_interval_seconds=0.3, default_status="RUNNING")
def ticker(context):
    n = int(context.cursor or 0) + 1
    context.update_cursor(str(n))
    return RunRequest(run_key=f"n{n}")


@schedule("*/5 * * * *", job=quick_job)
def every5(context):
    return {}


defs = Definitions(jobs=[quick_job], sensors=[ticker], schedules=[every5])
"""


def test_kill_9_the_leader_and_a_standby_takes_over(fresh_db, tmp_path):
    replicas = DaemonReplicas(
        tmp_path, fresh_db,
        "run_coordinator: {queued: {max_concurrent_runs: -1, dequeue_interval_seconds: 0.5}}\n"
        "run_launcher: {process: {warm: false}}\n"
        "run_monitoring: {start_timeout_seconds: 10, poll_interval_seconds: 1}\n"
        "daemon: {lease_seconds: 3, heartbeat_interval_seconds: 0.5, sensor_interval_seconds: 0.2}\n", DEFS)
    home, defs, inst, storage, holder_pid = (replicas.home, replicas.defs, replicas.instance, replicas.storage,
                                             replicas.holder_pid)
    daemons = [replicas.spawn() for _ in range(3)]
    try:
        first = wait_until(holder_pid, 60, what="a leader")
        assert first in [d.pid for d in daemons]
        wait_until(lambda: len(storage.get_ticks("ticker", limit=100)) >= 3, 60, what="sensor ticks")
        # queued runs, submitted before and while the leader dies
        queued = []
        for _ in range(6):
            run = inst.create_run(job_name="quick_job", code_pointer=_pointer(defs))
            queued.append(inst.submit_run(run).run_id)
        leader = next(d for d in daemons if d.pid == first)
        os.killpg(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        leader.wait(timeout=10)
        for _ in range(6):
            run = inst.create_run(job_name="quick_job", code_pointer=_pointer(defs))
            queued.append(inst.submit_run(run).run_id)
        # a schedule tick falls due while nobody leads: the new leader runs it, once
        # The cursor sits just before the latest */5 fire time, so exactly that tick is due (one more
        # falls due if the test runs across the next five-minute mark; each must be ticked once).
        due = time.time() // 300 * 300
        storage.set_instigator_state("every5", "schedule", "RUNNING", {"cursor_time": due - 1})
        second = wait_until(lambda: (p := holder_pid()) and p != first and p, 30, what="a standby to take over")
        assert time.monotonic() - killed_at <= 3 + 1 + 2  # lease time + a standby retry + slack
        assert second in [d.pid for d in daemons if d.pid != first]
        ticks_before = len(storage.get_ticks("ticker", limit=1000))
        wait_until(lambda: len(storage.get_ticks("ticker", limit=1000)) >= ticks_before + 3, 30, what="ticks to resume")
        wait_until(lambda: storage.get_ticks("every5"), 30, what="the due schedule tick")
        for run_id in queued:
            wait_until(lambda rid=run_id: storage.get_run(rid).status in FINISHED_STATUSES, 60, what=f"run {run_id}")
    finally:
        replicas.stop_all()
    # The sensor kept requesting runs until the end: their workers finish on their own, and must
    # have before the database is dropped (a worker left behind would retry against it).
    wait_until(lambda: not processes_with_env("RUNYARD_HOME", str(home)), 60,
               what="the run workers and code servers of the test's home to exit")
    # nothing doubled: one tick per time, one run per sensor run key, one launch per queued run
    ticks = storage.get_ticks("ticker", limit=10_000)
    assert len({t.tick_time for t in ticks}) == len(ticks)
    sensor_runs = storage.get_runs(RunFilter(tags={"runyard/sensor": "ticker"}))
    keys = Counter(r.tags["runyard/run_key"] for r in sensor_runs)
    assert keys and max(keys.values()) == 1
    sched_ticks = storage.get_ticks("every5")
    assert due in {t.tick_time for t in sched_ticks}
    assert len({t.tick_time for t in sched_ticks}) == len(sched_ticks)
    assert all(t.status == "SUCCESS" and len(t.run_ids) == 1 for t in sched_ticks)
    assert len(storage.get_runs(RunFilter(tags={"runyard/schedule": "every5"}))) == len(sched_ticks)
    for run_id in queued + [r.run_id for r in sensor_runs]:
        starts = storage.get_events(run_id, event_types=["RUN_STARTING"])
        assert len(starts) <= 1, json.dumps([e.data for e in starts])
    # A run the killed leader claimed but had not launched yet is failed by the new leader's start
    # timeout, never relaunched; one whose worker died with the leader is failed by the health check.
    for rid in queued:
        run = storage.get_run(rid)
        if run.status != RunStatus.SUCCESS:
            (failure,) = storage.get_events(rid, event_types=["RUN_FAILURE"])
            assert run.status == RunStatus.FAILURE and ("did not start within" in failure.message
                                                        or "died" in failure.message), failure.message
    assert sum(storage.get_run(rid).status == RunStatus.SUCCESS for rid in queued) >= len(queued) // 2
    assert storage.get_lease("runyard-daemon") is None  # the last daemon released it on SIGTERM


def _pointer(defs):
    from runyard.storage.records import CodePointer

    return CodePointer(python_file=str(defs), working_directory=str(defs.parent))
