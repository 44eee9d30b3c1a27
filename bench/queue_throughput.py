#!/usr/bin/env python
"""queue_throughput: drain R queued trivial runs through the daemon's run queue (issue 5).

A fresh SQLite home with ``run_coordinator: {queued: {max_concurrent_runs: 4,
dequeue_interval_seconds: 0.5}}``; ``python -m runyard daemon -f bench/workload.py`` runs as a
subprocess in its own process group (RUNYARD_HOME set; it starts its code server and the process
launcher's zygote) and is ready before the clock starts. Then this process enqueues R runs of
``trivial_job`` (``prepare_run`` + ``instance.submit_run`` -> QUEUED) while the daemon is already
claiming them, and polls storage every 20 ms.

Figures (seconds from the first enqueue, so the enqueueing is included): ``enqueue_s`` /
``enqueue_per_s``, ``all_launched_s`` (no run left QUEUED), ``all_finished_s`` (all SUCCESS) and
``finished_per_s`` = R / all_finished_s; also ``finished_after_enqueue_s`` (from the last enqueue,
which is how Dagster's twin counts: it enqueues first, then starts ticking its daemon).
At the end the daemon's process group is stopped (code server, zygote, run workers) and every run
is checked to be finished.

  python bench/queue_throughput.py [--runs 100] [--repeats 1] [--max-concurrent 4] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

from daemonproc import DaemonProc
from rybench import WORKLOAD_FILE, emit, log, make_home, stats

JOB = "trivial_job"
POLL_S = 0.02


def instance_yaml(max_concurrent: int, interval: float) -> str:
    return ("run_coordinator:\n  queued:\n"
            f"    max_concurrent_runs: {max_concurrent}\n    dequeue_interval_seconds: {interval}\n")


def one_repeat(home: str, runs: int, timeout: float) -> dict:
    from runyard.execution.api import prepare_run
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunFilter, RunStatus
    from runyard.workspace.loader import code_pointer_for, load_definitions

    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job(JOB)
    instance = Instance.open(home)
    _ = instance.storage  # create and migrate the SQLite file before the daemon opens it
    daemon = DaemonProc(home, [WORKLOAD_FILE], os.path.join(home, "daemon.log"))
    try:
        ready_s = daemon.wait_ready()
        log(f"daemon ready in {ready_s:.2f}s (pid {daemon.pid})")
        storage = instance.storage
        t0 = time.perf_counter()
        run_ids = []
        for _ in range(runs):
            run = prepare_run(instance, job, code_pointer=pointer)
            instance.submit_run(run)
            run_ids.append(run.run_id)
        enqueue_s = time.perf_counter() - t0
        flt = RunFilter(run_ids=run_ids)
        queued_f = RunFilter(run_ids=run_ids, statuses=[RunStatus.QUEUED])
        done_f = RunFilter(run_ids=run_ids, statuses=[RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED])
        all_launched = all_finished = None
        while time.perf_counter() - t0 < timeout:
            now = time.perf_counter() - t0
            if all_launched is None and storage.count_runs(queued_f) == 0:
                all_launched = now
            if storage.count_runs(done_f) == runs:
                all_finished = now
                break
            time.sleep(POLL_S)
        if all_finished is None:
            raise TimeoutError(f"not all runs finished in {timeout}s; see {daemon.log_path}")
        recs = storage.get_runs(flt)
        bad = [r for r in recs if r.status != RunStatus.SUCCESS]
        if bad:
            raise RuntimeError(f"{len(bad)} runs did not succeed (e.g. {bad[0].run_id}: {bad[0].status})")
        exec_s = [r.end_time - r.start_time for r in recs if r.end_time and r.start_time]
    finally:
        daemon.stop()
        instance.dispose()
    unfinished = storage_unfinished(home)
    if unfinished:
        raise RuntimeError(f"{unfinished} runs not finished after the daemon stopped")
    return {"enqueue_s": enqueue_s, "all_launched_s": all_launched, "all_finished_s": all_finished,
            "finished_after_enqueue_s": all_finished - enqueue_s, "daemon_ready_s": ready_s,
            "run_exec_median_s": statistics.median(exec_s) if exec_s else None}


def storage_unfinished(home: str) -> int:
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunFilter, RunStatus

    inst = Instance.open(home)
    try:
        return inst.storage.count_runs(RunFilter(statuses=[RunStatus.QUEUED, RunStatus.STARTING,
                                                           RunStatus.STARTED]))
    finally:
        inst.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description="queued run throughput through the daemon")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--max-concurrent", type=int, default=4)
    ap.add_argument("--interval", type=float, default=0.5, help="dequeue_interval_seconds")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--keep-home", action="store_true")
    args = ap.parse_args()

    rows = []
    for r in range(args.repeats):
        home = make_home("queue_throughput", instance_yaml(args.max_concurrent, args.interval))
        try:
            row = one_repeat(home, args.runs, args.timeout)
        finally:
            if not args.keep_home:
                shutil.rmtree(home, ignore_errors=True)
        log(f"repeat {r + 1}: enqueue {args.runs} in {row['enqueue_s']:.2f}s, all launched at "
            f"{row['all_launched_s']:.2f}s, all finished at {row['all_finished_s']:.2f}s "
            f"(median run exec {row['run_exec_median_s']:.3f}s)")
        rows.append(row)

    R = args.runs
    emit("queue_throughput", orchestrator="runyard", runs=R, max_concurrent_runs=args.max_concurrent,
         daemon_interval_s=args.interval, storage="sqlite", daemon="subprocess",
         enqueue_s=stats((x["enqueue_s"] for x in rows), 3),
         enqueue_per_s=stats((R / x["enqueue_s"] for x in rows), 2),
         all_launched_s=stats((x["all_launched_s"] for x in rows), 3),
         launched_per_s=stats((R / x["all_launched_s"] for x in rows), 3),
         all_finished_s=stats((x["all_finished_s"] for x in rows), 3),
         finished_per_s=stats((R / x["all_finished_s"] for x in rows), 3),
         finished_after_enqueue_s=stats((x["finished_after_enqueue_s"] for x in rows), 3),
         daemon_ready_s=stats((x["daemon_ready_s"] for x in rows), 3),
         run_exec_median_s=stats((x["run_exec_median_s"] for x in rows if x["run_exec_median_s"]), 4))


if __name__ == "__main__":
    main()
