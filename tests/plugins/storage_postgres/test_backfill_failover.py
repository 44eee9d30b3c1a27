"""A backfill survives a daemon failover: two daemon processes on one PostgreSQL, a 1,000-partition
backfill launched from the CLI, the leader killed (SIGKILL, its whole process group) mid-backfill;
the standby takes the lease and finishes it — every partition gets exactly one run, each queued once.

The partitioned config sleeps a little per partition so the backfill takes seconds (the kill lands
mid-way); the queue is held (``max_concurrent_runs: 0``) so the runs stay QUEUED and nothing else runs.

Needs: the PostgreSQL server of conftest.py; daemons, code servers and the CLI are real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

from conftest import DaemonReplicas

from runyard.storage.records import BackfillStatus, RunFilter, RunStatus
from runyard.tags import BACKFILL_TAG, PARTITION_TAG
from runyard.testing import wait_until

DEFS = """
import time

from runyard import Definitions, job, op, static_partitioned_config


@op
def noop() -> None:
    pass


@static_partitioned_config(partition_keys=[f"k{i:04d}" for i in range(1000)])
def slow_config(key):
    time.sleep(0.008)
    return {}


@job(config=slow_config)
def big():
    noop()


defs = Definitions(jobs=[big])
"""


def test_a_backfill_goes_on_after_the_leader_is_killed_and_no_partition_runs_twice(fresh_db, tmp_path):
    replicas = DaemonReplicas(
        tmp_path, fresh_db,
        "run_coordinator: {queued: {max_concurrent_runs: 0}}\n"
        "daemon: {lease_seconds: 3, heartbeat_interval_seconds: 0.5, backfill_interval_seconds: 0.2,\n"
        "         backfill_batch_size: 40}\n", DEFS)
    defs, env, inst, storage, holder_pid = (replicas.defs, replicas.env, replicas.instance, replicas.storage,
                                            replicas.holder_pid)
    daemons = [replicas.spawn() for _ in range(2)]
    try:
        first = wait_until(holder_pid, 60, what="a leader")
        launched = subprocess.run([sys.executable, "-m", "runyard", "backfill", "launch", "big", "--all",
                                   "-f", str(defs), "--json"], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=120)
        assert launched.returncode == 0, launched.stderr
        backfill_id = json.loads(launched.stdout)["backfill_id"]
        wait_until(lambda: storage.get_backfill(backfill_id).submitted >= 200, 60, what="the backfill to start")
        leader = next(d for d in daemons if d.pid == first)
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)
        at_kill = storage.get_backfill(backfill_id).submitted
        assert at_kill < 1000, "the backfill finished before the kill: make the config slower"
        second = wait_until(lambda: (p := holder_pid()) and p != first and p, 30, what="the standby to take over")
        assert second in [d.pid for d in daemons]
        wait_until(lambda: storage.get_backfill(backfill_id).status == BackfillStatus.COMPLETED, 90,
                   what="the new leader to finish the backfill")
    finally:
        replicas.stop_all()
    done = storage.get_backfill(backfill_id)
    assert done.submitted == 1000 and done.error is None
    runs = storage.get_runs(RunFilter(tags={BACKFILL_TAG: backfill_id}))
    per_key = Counter(r.tags[PARTITION_TAG] for r in runs)
    assert len(per_key) == 1000 and set(per_key.values()) == {1}, per_key.most_common(3)
    assert {r.status for r in runs} == {RunStatus.QUEUED}
    enqueued = Counter(e.run_id for r in runs[:1000:50] for e in storage.get_events(r.run_id))
    assert set(enqueued.values()) == {1}
    inst.dispose()
