#!/usr/bin/env python
"""Dagster's side of bench/dynamic_fanout.py; run by the python of bench/setup_dagster.sh's venv.

The same two jobs as bench/workload_dynamic.py, in Dagster: one op yielding N DynamicOutputs mapped
over ``body`` and collected, and N static aliases of ``body`` fanned into one op (N + 2 steps each),
each run with ``execute_job(reconstructable(...))`` on the shared bench-dagster SQLite home. Prints
one ``DAGSTER {json}`` line per executor and job with ``per_step_ms`` statistics.

  $DAGSTER_PY bench/dagster_dynamic_fanout.py [--n 1000] [--repeats 3] [--executors in_process,multiprocess]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                       "bench-dagster", "dagster"))
sys.path.insert(0, SHARED)

N = int(os.environ.get("BENCH_DYNAMIC_N", "1000"))

from dagster import DynamicOut, DynamicOutput, In, job, op  # noqa: E402


@op(out=DynamicOut(int))
def emit():
    for i in range(N):
        yield DynamicOutput(i, mapping_key=f"k{i}")


@op
def seed() -> int:
    return 1


@op
def body(x: int) -> int:
    return x + 1


@op(ins={"values": In(list)})
def total(values) -> int:
    return len(values)


@job
def mapped_job():
    total(emit().map(body).collect())


@job
def static_job():
    s = seed()
    total([body.alias(f"body_{i}")(s) for i in range(N)])


def main() -> None:
    ap = argparse.ArgumentParser(description="Dagster's dynamic fan-out vs static fan-out")
    ap.add_argument("--n", type=int, default=N)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--executors", default="in_process,multiprocess")
    ap.add_argument("--max-concurrent", type=int, default=2)
    args = ap.parse_args()
    if args.n != N:  # the jobs are built at import: re-run with the size in the environment
        env = {**os.environ, "BENCH_DYNAMIC_N": str(args.n)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    import dagster_env as de
    from dagster import execute_job, reconstructable

    home = de.make_home("sqlite")
    instance = de.use_home(home)
    steps = args.n + 2
    try:
        for executor in args.executors.split(","):
            config = (de.IN_PROCESS_EXECUTOR if executor == "in_process"
                      else de.multiprocess_executor(args.max_concurrent))
            for job_def in (static_job, mapped_job):
                walls = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    result = execute_job(reconstructable(job_def), instance, run_config=config)
                    walls.append(time.perf_counter() - t0)
                    if not result.success:
                        raise SystemExit(f"{job_def.name} failed")
                per_step = sorted(1000 * w / steps for w in walls)
                print("DAGSTER " + json.dumps({
                    "executor": executor, "job": job_def.name, "n": args.n, "steps": steps,
                    "per_step_ms": {"n": len(per_step), "min": round(per_step[0], 3),
                                    "median": round(statistics.median(per_step), 3), "max": round(per_step[-1], 3)}}),
                      flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
