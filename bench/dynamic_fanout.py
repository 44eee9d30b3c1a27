#!/usr/bin/env python
"""dynamic_fanout: per-step overhead of a dynamic fan-out against a static one of the same size.

bench/workload_dynamic.py's two jobs run the same ``body`` op N times (N = ``--n``, default 1000):
``mapped_job`` maps one DynamicOut of N mapping keys (``emit().map(body).collect()``: the plan grows
by N steps when ``emit`` finishes) and ``static_job`` wires N aliases of ``body`` into one fan-in.
Both have N + 2 steps. Each repeat is ``runyard.execute_job`` in this process on SQLite storage,
per executor (``in_process``, ``multiprocess``).

Figures: ``wall_s`` and ``per_step_ms`` = wall / (N + 2) of each job, and ``ratio`` = mapped / static
per-step time (the goal: mapped within 2x of static). With ``--dagster`` (and the venv of
bench/setup_dagster.sh), bench/dagster_dynamic_fanout.py times Dagster's same two jobs.

  python bench/dynamic_fanout.py [--n 1000] [--repeats 3] [--warmup 1]
                                 [--executors in_process,multiprocess] [--dagster]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from rybench import BENCH_DIR, emit, log, make_home, stats

WORKLOAD = os.path.join(BENCH_DIR, "workload_dynamic.py")


def run_once(instance, job, executor: str, max_concurrent: int):
    from runyard.execution.api import execute_job
    from runyard.workspace.loader import code_pointer_for

    config = {"max_concurrent": max_concurrent} if executor == "multiprocess" else {}
    return execute_job(job, instance=instance, run_config={"execution": {executor: config}},
                       code_pointer=code_pointer_for(python_file=WORKLOAD))


def dagster_side(n: int, repeats: int, executors: list[str], max_concurrent: int) -> list[dict]:
    from compare import find_dagster_python

    python, note = find_dagster_python(None)
    if python is None:
        log(f"Dagster side skipped: {note}")
        return []
    script = os.path.join(BENCH_DIR, "dagster_dynamic_fanout.py")
    proc = subprocess.run([python, script, "--n", str(n), "--repeats", str(repeats), "--executors",
                           ",".join(executors), "--max-concurrent", str(max_concurrent)],
                          capture_output=True, text=True, timeout=7200)
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        log(f"Dagster side failed (exit {proc.returncode})")
        return []
    return [json.loads(ln[len("DAGSTER "):]) for ln in proc.stdout.splitlines() if ln.startswith("DAGSTER ")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--executors", default="in_process,multiprocess")
    ap.add_argument("--max-concurrent", type=int, default=2, help="multiprocess: max_concurrent")
    ap.add_argument("--dagster", action="store_true", help="also time Dagster's same two jobs")
    args = ap.parse_args()
    executors = [e for e in args.executors.split(",") if e]
    os.environ["BENCH_DYNAMIC_N"] = str(args.n)  # the workload reads it at import
    steps = args.n + 2

    from runyard.instance.instance import Instance

    sys.path.insert(0, BENCH_DIR)
    import workload_dynamic

    home = make_home("dynamic_fanout")
    instance = Instance.open(home)
    log(f"RUNYARD_HOME={home} N={args.n} steps={steps} per job")
    try:
        _ = instance.storage  # the schema exists before the clock starts
        for executor in executors:
            per_step: dict[str, list[float]] = {}
            for name in ("static_job", "mapped_job"):
                job = getattr(workload_dynamic, name)
                walls = []
                for i in range(args.warmup + args.repeats):
                    t0 = time.perf_counter()
                    run = run_once(instance, job, executor, args.max_concurrent)
                    wall = time.perf_counter() - t0
                    if str(run.status) != "SUCCESS":
                        raise SystemExit(f"{name} run {run.run_id} ended {run.status}")
                    if i >= args.warmup:
                        walls.append(wall)
                per_step[name] = [1000 * w / steps for w in walls]
                figures = stats(per_step[name], 3)
                print(f"runyard {executor} {name}: {figures['median']:.3f} ms/step "
                      f"(wall {stats(walls, 3)['median']:.3f}s, N={args.n})", flush=True)
                emit("dynamic_fanout", orchestrator="runyard", executor=executor, job=name, n=args.n,
                     steps=steps, wall_s=stats(walls, 4), per_step_ms=figures)
            ratio = stats(per_step["mapped_job"], 3)["median"] / stats(per_step["static_job"], 3)["median"]
            print(f"runyard {executor}: mapped / static per-step time = {ratio:.2f}x (goal: <= 2x)", flush=True)
            emit("dynamic_fanout_ratio", orchestrator="runyard", executor=executor, n=args.n, ratio=round(ratio, 3))
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
    if args.dagster:
        for figures in dagster_side(args.n, args.repeats, executors, args.max_concurrent):
            print(f"dagster {figures['executor']} {figures['job']}: {figures['per_step_ms']['median']:.3f} ms/step",
                  flush=True)
            emit("dynamic_fanout", orchestrator="dagster", **figures)


if __name__ == "__main__":
    main()
