#!/usr/bin/env python
"""backfill: how fast a backfill of P partitions becomes P queued runs (issue 16; docs/backfills.md).

runyard: a fresh home (SQLite, or a new PostgreSQL database with ``--storage postgres``) whose queue
holds every run (``max_concurrent_runs: 0``: this measures enqueueing, not launching); a real
``runyard daemon -f <defs>`` (its code server, its backfill loop with the default settings) is ready
before the clock starts. This process opens the same definitions as a workspace location, stores a
backfill of every partition of a job with P static partitions (:func:`runyard.operations.backfills.
launch_backfill`), and polls storage every 10 ms until the backfill is COMPLETED and P runs are
QUEUED. ``enqueue_s`` is from "backfill stored" to "every run QUEUED" (the daemon's wait for its next
pass included); each run and partition are then checked to be there exactly once.

Dagster (``--dagster``, when the venv of bench/setup_dagster.sh exists): bench/dagster_backfill.py,
run by that venv's python, stores a job backfill of the same P partitions (``PartitionBackfill``, as
GraphQL's launchPartitionBackfill does) and calls the backfill daemon's iteration back to back (its
daemon waits ``backfill_daemon_interval`` (30 s) between iterations: not counted here) until every
run is QUEUED.

  python bench/backfill.py [--partitions 1000] [--repeats 3] [--storage sqlite|postgres|both]
                           [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--dagster]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from daemonproc import DaemonProc
from rybench import BENCH_DIR, emit, log, make_home, stats

JOB = "big"
POLL_S = 0.01


def defs_source(partitions: int) -> str:
    return f'''
from runyard import Definitions, job, op, static_partitioned_config


@op
def noop() -> None:
    pass


@static_partitioned_config(partition_keys=[f"p{{i:06d}}" for i in range({partitions})])
def big_config(key):
    return {{}}


@job(config=big_config)
def {JOB}():
    noop()


defs = Definitions(jobs=[{JOB}])
'''


def one_repeat(storage: str, partitions: int, pg_url: str, timeout: float) -> dict:
    from runyard.instance.instance import Instance
    from runyard.operations import backfills as ops
    from runyard.operations.workspace import open_workspace
    from runyard.storage.records import BackfillStatus, RunFilter, RunStatus
    from runyard.tags import BACKFILL_TAG, PARTITION_TAG

    db_url = None
    if storage == "postgres":
        from runyard_storage_postgres.testing import create_database

        db_url = create_database(pg_url, prefix="runyard_bench_backfill")
        storage_yaml = f"storage: {{postgres: {{url: '{db_url}'}}}}\n"
    else:
        storage_yaml = ""
    home = make_home(f"backfill-{storage}", storage_yaml + "run_coordinator: {queued: {max_concurrent_runs: 0}}\n")
    defs = os.path.join(home, "backfill_defs.py")
    with open(defs, "w") as f:
        f.write(defs_source(partitions))
    instance = Instance.open(home)
    _ = instance.storage  # the schema exists before the daemon opens it
    daemon = DaemonProc(home, [defs], os.path.join(home, "daemon.log"))
    workspace = None
    try:
        log(f"{storage}: daemon ready in {daemon.wait_ready():.2f}s")
        workspace = open_workspace([defs]).start()
        loc = workspace.locations()[0]
        job = loc.snapshot.jobs_by_name[JOB]
        keys = ops.select_partition_keys(job, all_partitions=True)
        storage_obj = instance.storage
        bf = ops.launch_backfill(instance, loc, job, keys)
        t0 = time.perf_counter()
        deadline = t0 + timeout
        while True:
            current = storage_obj.get_backfill(bf.backfill_id)
            if current.status == BackfillStatus.COMPLETED:
                break
            if current.status != BackfillStatus.REQUESTED or time.perf_counter() > deadline:
                raise RuntimeError(f"backfill {current.status} after {time.perf_counter() - t0:.1f}s: {current.error}")
            time.sleep(POLL_S)
        enqueue_s = time.perf_counter() - t0
        runs = storage_obj.get_runs(RunFilter(tags={BACKFILL_TAG: bf.backfill_id}))
        per_key = {r.tags[PARTITION_TAG] for r in runs}
        assert len(runs) == partitions == len(per_key), (len(runs), len(per_key))
        assert all(r.status == RunStatus.QUEUED for r in runs)
        return {"enqueue_s": enqueue_s, "runs_per_s": partitions / enqueue_s}
    finally:
        if workspace is not None:
            workspace.shutdown()
        daemon.stop()
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
        if db_url is not None:
            from runyard_storage_postgres.testing import drop_database

            drop_database(db_url, pg_url)


def dagster_side(partitions: int, repeats: int, storage: str, pg_url: str) -> dict | None:
    """Dagster's figures; on PostgreSQL in a database of its own on ``pg_url`` (the shared
    bench-dagster ``dagster_env`` reads it from ``$BENCH_PG_*``), dropped afterwards."""
    from compare import find_dagster_python

    python, note = find_dagster_python(None)
    if python is None:
        log(f"Dagster side skipped: {note}")
        return None
    script = os.path.join(BENCH_DIR, "dagster_backfill.py")
    env = dict(os.environ)
    db_url = None
    if storage == "postgres":
        from sqlalchemy.engine import make_url

        from runyard_storage_postgres.testing import create_database

        db_url = create_database(pg_url, prefix="dagster_bench_backfill")
        url = make_url(db_url)
        env.update(BENCH_PG_USER=url.username or "", BENCH_PG_PASSWORD=url.password or "unused",  # trust auth: any
                   BENCH_PG_HOST=url.host or "127.0.0.1", BENCH_PG_PORT=str(url.port or 5432),
                   BENCH_PG_DB=url.database or "")
    try:
        proc = subprocess.run([python, script, "--partitions", str(partitions), "--repeats", str(repeats),
                               "--storage", storage], capture_output=True, text=True, timeout=3600, env=env)
    finally:
        if db_url is not None:
            from runyard_storage_postgres.testing import drop_database

            drop_database(db_url, pg_url)
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        log(f"Dagster side failed (exit {proc.returncode})")
        return None
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("DAGSTER ")), None)
    return json.loads(line[len("DAGSTER "):]) if line else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("RUNYARD_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--dagster", action="store_true", help="also measure Dagster's backfill daemon")
    args = parser.parse_args()
    storages = ["sqlite", "postgres"] if args.storage == "both" else [args.storage]
    for storage in storages:
        results = [one_repeat(storage, args.partitions, args.pg_url, args.timeout) for _ in range(args.repeats)]
        figures = {"orchestrator": "runyard", "storage": storage, "partitions": args.partitions,
                   "enqueue_s": stats(r["enqueue_s"] for r in results),
                   "runs_per_s": stats(r["runs_per_s"] for r in results)}
        print(f"runyard {storage}: {args.partitions} partitions enqueued in "
              f"{figures['enqueue_s']['median']:.3f}s (median of {args.repeats})", flush=True)
        emit("backfill_enqueue", **figures)
        if args.dagster:
            dagster = dagster_side(args.partitions, args.repeats, storage, args.pg_url)
            if dagster is not None:
                print(f"dagster {storage}: {args.partitions} partitions enqueued in "
                      f"{dagster['enqueue_s']['median']:.3f}s (median of {args.repeats}, iterations back to back)",
                      flush=True)
                emit("backfill_enqueue", orchestrator="dagster", storage=storage, partitions=args.partitions,
                     **{k: v for k, v in dagster.items() if k in ("enqueue_s", "runs_per_s", "iterations")})


if __name__ == "__main__":
    main()
