#!/usr/bin/env python
"""fanout: N independent no-op steps plus one fan-in step, executed in this process.

``fanout_job`` of bench/workload.py (N = ``--n``, default ``$BENCH_FANOUT_N`` or 200): N ``leaf``
ops returning ``None`` and one ``final`` op that takes all N outputs as one fan-in list input. Each
repeat is ``runyard.execution.api.execute_job(fanout_job, instance=...)`` - what
``runyard job execute`` does - with the ``in_process`` executor on SQLite storage.

Figures: ``wall_s`` (call to return; the run is SUCCESS in storage by then), ``run_s`` (stored end
minus start), ``per_step_ms`` = wall / (N + 1), ``events`` written for the run, and
``definition_s`` (importing the workload and building the job graph, once).

  python bench/fanout.py [--n 200] [--repeats 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from rybench import BENCH_DIR, emit, log, make_home, stats


# ------------------------------------------------------------------------------------------------ #
# The runyard-specific part: run the fan-out job once to completion, return the finished run.
# ------------------------------------------------------------------------------------------------ #
def submit_fanout(instance, job, executor: str, max_concurrent: int):
    from runyard.execution.api import execute_job
    from runyard.workspace.loader import code_pointer_for

    run_config = {"execution": {executor: ({"max_concurrent": max_concurrent}
                                           if executor == "multiprocess" else {})}}
    # the multiprocess executor's step processes need to know where the job came from
    return execute_job(job, instance=instance, run_config=run_config,
                       code_pointer=code_pointer_for(python_file=os.path.join(BENCH_DIR, "workload.py")))


def main() -> None:
    ap = argparse.ArgumentParser(description="N+1 step fan-in job executed in process")
    ap.add_argument("--n", type=int, default=int(os.environ.get("BENCH_FANOUT_N", "200")))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--executors", default="in_process",
                    help="comma list: in_process (core), multiprocess (runyard-executor-multiprocess)")
    ap.add_argument("--max-concurrent", type=int, default=2, help="multiprocess: max_concurrent")
    args = ap.parse_args()
    executors = [e for e in args.executors.split(",") if e]
    for e in executors:
        if e not in ("in_process", "multiprocess"):
            ap.error(f"unknown executor {e!r}")
    os.environ["BENCH_FANOUT_N"] = str(args.n)  # the workload reads it at import
    steps = args.n + 1

    from runyard.instance.instance import Instance

    t = time.perf_counter()
    sys.path.insert(0, BENCH_DIR)
    import workload

    job = workload.fanout_job
    definition_s = time.perf_counter() - t
    assert len(job.nodes) == steps, (len(job.nodes), steps)

    home = make_home("fanout")
    instance = Instance.open(home)
    log(f"RUNYARD_HOME={home} N={args.n} steps={steps} (job defined in {definition_s:.3f}s)")
    try:
        _ = instance.storage  # create the schema before the clock starts
        for executor in executors:
            walls, runs, events = [], [], []
            for i in range(args.warmup + args.repeats):
                t0 = time.perf_counter()
                run = submit_fanout(instance, job, executor, args.max_concurrent)
                wall = time.perf_counter() - t0
                n_events = len(instance.storage.get_events(run.run_id))
                run_s = (run.end_time or 0) - (run.start_time or 0)
                tag = "warmup" if i < args.warmup else f"run {i - args.warmup + 1}"
                log(f"{executor} {tag}: status={run.status} wall={wall:.4f}s run={run_s:.4f}s "
                    f"per_step={1000 * wall / steps:.3f}ms events={n_events}")
                if str(run.status) != "SUCCESS":
                    raise SystemExit(f"fanout run {run.run_id} ended {run.status}")
                if i >= args.warmup:
                    walls.append(wall)
                    runs.append(run_s)
                    events.append(n_events)
            extra = {"max_concurrent": args.max_concurrent} if executor == "multiprocess" else {}
            emit("fanout", orchestrator="runyard", executor=executor, n=args.n, steps=steps,
                 storage="sqlite", wall_s=stats(walls, 4), run_s=stats(runs, 4),
                 per_step_ms=stats((1000 * w / steps for w in walls), 3), events=stats(events, 0),
                 definition_s=round(definition_s, 4), **extra)
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
