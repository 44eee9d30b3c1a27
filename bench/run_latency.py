#!/usr/bin/env python
"""run_latency: submit a 1-op run (``trivial_job`` of bench/workload.py), time until SUCCESS.

Modes:

  inproc         ``runyard.execution.api.execute_job`` in this process (in_process executor): no
                 launcher, no worker process.
  launched-warm  ``prepare_run`` + ``instance.submit_run``: the ``default`` run coordinator hands the
                 run to the ``process`` launcher, whose worker is forked from its pre-imported
                 zygote. ``instance.run_launcher.prepare(instance)`` runs once before the clock
                 starts - what the daemon and web UI do at start-up, like Dagster's code server that
                 is already running when its run is submitted.
  launched-cold  the same with ``run_launcher: {process: {warm: false}}``: every run worker is a
                 fresh ``python -m runyard execute-run RUN_ID``.

Figures per mode (seconds): ``submit_s`` (time inside the submit call), ``storage_s`` (the run's
stored ``end_time`` minus the wall clock just before submitting - the headline figure),
``observed_s`` (until this process saw SUCCESS polling storage every 5 ms), and
``prepare_s`` (warm: starting the zygote once, not per run).

  python bench/run_latency.py [--modes inproc,launched-warm,launched-cold] [--repeats 5] [--warmup 1]
"""

from __future__ import annotations

import argparse
import shutil
import time

from rybench import WORKLOAD_FILE, emit, log, make_home, stats

JOB = "trivial_job"
POLL_S = 0.005
MODES = ("inproc", "launched-warm", "launched-cold", "launched-warm-mp", "launched-cold-mp")
MP_RUN_CONFIG = {"execution": {"multiprocess": {"max_concurrent": 2}}}


def instance_yaml(mode: str) -> str:
    warm = "false" if mode.startswith("launched-cold") else "true"
    return f"run_launcher:\n  process:\n    warm: {warm}\n"


def wait_finished(instance, run_id: str, timeout: float = 120.0):
    deadline = time.perf_counter() + timeout
    while True:
        run = instance.storage.get_run(run_id)
        if run is not None and run.status.is_finished:
            return run
        if time.perf_counter() > deadline:
            raise TimeoutError(f"run {run_id} not finished after {timeout}s (status {run and run.status})")
        time.sleep(POLL_S)


# ------------------------------------------------------------------------------------------------ #
# The runyard-specific part: submit one run of the trivial job, return its run id.
# ------------------------------------------------------------------------------------------------ #
def submit_run(mode: str, instance, job, pointer) -> str:
    from runyard.execution.api import execute_job, prepare_run

    if mode == "inproc":
        return execute_job(job, instance=instance, code_pointer=pointer).run_id
    run_config = MP_RUN_CONFIG if mode.endswith("-mp") else None
    run = prepare_run(instance, job, code_pointer=pointer, run_config=run_config)
    instance.submit_run(run)
    return run.run_id


def measure(mode: str, instance, job, pointer, warmup: int, repeats: int) -> dict:
    rows = []
    for i in range(warmup + repeats):
        t0_wall = time.time()
        t0 = time.perf_counter()
        run_id = submit_run(mode, instance, job, pointer)
        submit_s = time.perf_counter() - t0
        run = wait_finished(instance, run_id)
        observed_s = time.perf_counter() - t0
        storage_s = run.end_time - t0_wall if run.end_time else float("nan")
        tag = "warmup" if i < warmup else f"run {i - warmup + 1}"
        log(f"{mode:14s} {tag:8s} status={run.status} submit={submit_s:.4f}s storage={storage_s:.4f}s "
            f"observed={observed_s:.4f}s worker={run.launcher_info.get('mode', '-')}")
        if str(run.status) != "SUCCESS":
            raise SystemExit(f"{mode}: run {run_id} ended {run.status}; see "
                             f"{run.launcher_info.get('log_path', 'its log')}")
        if i >= warmup:
            rows.append((submit_s, storage_s, observed_s))
    return {"submit_s": stats(r[0] for r in rows), "storage_s": stats(r[1] for r in rows),
            "observed_s": stats(r[2] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description="submit-to-SUCCESS latency of a 1-op run")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--keep-home", action="store_true")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r} (choose from {', '.join(MODES)})")

    from runyard.instance.instance import Instance
    from runyard.workspace.loader import code_pointer_for, load_definitions

    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job(JOB)
    for mode in modes:
        home = make_home("run_latency", instance_yaml(mode))
        instance = Instance.open(home)
        launcher = None
        try:
            _ = instance.storage  # opens and migrates the SQLite file before the clock starts
            prepare_s = None
            if mode.startswith("launched-warm"):
                launcher = instance.run_launcher
                t = time.perf_counter()
                launcher.prepare(instance)
                prepare_s = time.perf_counter() - t
                log(f"launcher prepared (zygote started) in {prepare_s:.3f}s")
            elif mode.startswith("launched-cold"):
                launcher = instance.run_launcher
            log(f"{mode}: RUNYARD_HOME={home}")
            figures = measure(mode, instance, job, pointer, args.warmup, args.repeats)
            emit("run_latency", orchestrator="runyard", mode=mode, job=JOB, storage="sqlite",
                 launcher=("process" if mode != "inproc" else None), prepare_s=prepare_s, **figures)
        finally:
            if launcher is not None:
                launcher.dispose()
            instance.dispose()
            if not args.keep_home:
                shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
