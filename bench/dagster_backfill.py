#!/usr/bin/env python
"""Dagster's side of bench/backfill.py; run by the python of bench/setup_dagster.sh's venv.

A fresh DAGSTER_HOME (the shared bench-dagster ``dagster_env``: SQLite, or its Postgres database with
``--storage postgres``) with the QueuedRunCoordinator and nothing dequeuing, a managed gRPC code server
for a file with one job of P static partitions. A job backfill of every partition is stored as
GraphQL's launchPartitionBackfill stores one (``PartitionBackfill`` with the job's remote partition set
origin); the clock starts; the backfill daemon's iteration (``execute_backfill_iteration``) is then
called back to back — Dagster's daemon waits ``backfill_daemon_interval`` between iterations, not
counted here — until every partition has a QUEUED run. Prints ``DAGSTER {json}`` with the figures.

  $DAGSTER_PY bench/dagster_backfill.py [--partitions 1000] [--repeats 3] [--storage sqlite|postgres]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import time

SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                       "bench-dagster", "dagster"))
sys.path.insert(0, SHARED)

import dagster_env as de  # noqa: E402

JOB = "big"


def defs_source(partitions: int) -> str:
    return f'''
from dagster import Definitions, StaticPartitionsDefinition, job, op


@op
def noop():
    pass


@job(partitions_def=StaticPartitionsDefinition([f"p{{i:06d}}" for i in range({partitions})]))
def {JOB}():
    noop()


defs = Definitions(jobs=[{JOB}])
'''


def one_repeat(storage: str, partitions: int, timeout: float) -> dict:
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
    from dagster._core.storage.tags import BACKFILL_ID_TAG
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    home = de.make_home(storage=storage, queued=True, max_concurrent_runs=0, prefix="dagbench-backfill-")
    path = os.path.join(home, "backfill_defs.py")
    with open(path, "w") as f:
        f.write(defs_source(partitions))
    instance = de.use_home(home)
    logger = logging.getLogger("dagster_backfill_bench")
    try:
        target = PythonFileTarget(python_file=path, attribute=None, working_directory=home, location_name="bench")
        with WorkspaceProcessContext(instance, target) as ctx:
            request = ctx.create_request_context()
            location = request.get_code_location("bench")
            repo = next(iter(location.get_repositories().values()))
            partition_set = next(ps for ps in repo.get_partition_sets() if ps.job_name == JOB)
            backfill_id = f"bench{int(time.time() * 1000) % 10**9}"
            instance.add_backfill(PartitionBackfill(
                backfill_id=backfill_id, partition_set_origin=partition_set.get_remote_origin(),
                status=BulkActionStatus.REQUESTED, partition_names=[f"p{i:06d}" for i in range(partitions)],
                from_failure=False, reexecution_steps=None, tags={}, backfill_timestamp=time.time()))
            t0 = time.perf_counter()
            iterations = 0
            while True:
                for _ in execute_backfill_iteration(ctx, logger):
                    pass
                iterations += 1
                queued = instance.get_runs_count(RunsFilter(tags={BACKFILL_ID_TAG: backfill_id},
                                                            statuses=[DagsterRunStatus.QUEUED]))
                if queued >= partitions:
                    break
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"{queued}/{partitions} queued after {timeout}s")
            enqueue_s = time.perf_counter() - t0
        return {"enqueue_s": enqueue_s, "runs_per_s": partitions / enqueue_s, "iterations": iterations}
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    results = [one_repeat(args.storage, args.partitions, args.timeout) for _ in range(args.repeats)]

    def summary(values):
        values = sorted(values)
        return {"n": len(values), "min": round(values[0], 4), "median": round(statistics.median(values), 4),
                "max": round(values[-1], 4)}

    print("DAGSTER " + json.dumps({"enqueue_s": summary(r["enqueue_s"] for r in results),
                                   "runs_per_s": summary(r["runs_per_s"] for r in results),
                                   "iterations": summary(r["iterations"] for r in results)}), flush=True)


if __name__ == "__main__":
    main()
