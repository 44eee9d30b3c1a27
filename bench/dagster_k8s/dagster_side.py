#!/usr/bin/env python
"""Dagster's side of bench/k8s_compare.py's launch figure: ``K8sRunLauncher`` (dagster-k8s 0.29.27)
against the fake cluster the caller started, run with the Dagster virtualenv's python
(bench/setup_dagster.sh).

  $DAGSTER_PY bench/dagster_k8s/dagster_side.py launch --pg-url URL --kubeconfig FILE --api-url URL --runs 500

The caller creates the database and the cluster (instant mode: every Job's pod ends Succeeded at once,
nothing runs) and removes both afterwards. This script writes the instance (``dagster.yaml`` next to
it, filled in), creates the ConfigMap ``dagster-instance`` the launcher's pods would read it from,
submits R runs of ``trivial_job`` (``bench/dagster_docker/workload.py``, the code location of the
Docker bench) to the ``QueuedRunCoordinator`` (QUEUED), then starts ``dagster-daemon run`` and watches
the cluster's Jobs labelled ``app.kubernetes.io/component=run_worker`` (k8s_compare.JobWatch) until R
exist. Figures as runyard's: ``launches_per_s`` = R / (last Job - first Job), and the time from the
daemon's spawn and from its queue daemon's first heartbeat to the last Job.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, BENCH)  # rybench, k8s_compare (stdlib only at import)

from k8s_compare import JobWatch  # noqa: E402
from rybench import emit, log, tmp_root  # noqa: E402

WORKLOAD_DIR = os.path.join(BENCH, "dagster_docker")
WORKLOAD = os.path.join(WORKLOAD_DIR, "workload.py")
LOCATION = "bench"
CONFIG_MAP = "dagster-instance"
RUN_WORKER_SELECTOR = "app.kubernetes.io/component=run_worker"


def dagster_url(pg_url: str) -> str:
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships psycopg2."""
    scheme, rest = pg_url.split("://", 1)
    return ("postgresql+psycopg2://" + rest) if "+" not in scheme else pg_url


def make_home(args) -> str:
    home = tempfile.mkdtemp(prefix="dagster-k8s-", dir=tmp_root())
    with open(os.path.join(HERE, "dagster.yaml")) as f:
        template = string.Template(f.read())
    threads = (f"    dequeue_use_threads: true\n    dequeue_num_workers: {args.workers}" if args.workers > 0 else "")
    text = template.substitute(pg_url=dagster_url(args.pg_url), kubeconfig=args.kubeconfig, image=args.image,
                               config_map=CONFIG_MAP, dequeue_threads=threads)
    with open(os.path.join(home, "dagster.yaml"), "w") as f:
        f.write(text)
    with open(os.path.join(home, "workspace.yaml"), "w") as f:
        f.write(f"load_from:\n  - python_file:\n      relative_path: {WORKLOAD}\n"
                f"      working_directory: {WORKLOAD_DIR}\n      location_name: {LOCATION}\n")
    return home


def create_config_map(args, home: str) -> None:
    """The ConfigMap ``instance_config_map`` names (the pods would mount the instance from it)."""
    import kubernetes

    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    try:
        with open(os.path.join(home, "dagster.yaml")) as f:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_MAP},
                    "data": {"dagster.yaml": f.read()}}
        kubernetes.client.CoreV1Api(api).create_namespaced_config_map("default", body)
    finally:
        api.close()


def start_daemon(home: str) -> subprocess.Popen:
    exe = os.path.join(os.path.dirname(sys.executable), "dagster-daemon")
    log_f = open(os.path.join(home, "daemon.log"), "wb")
    return subprocess.Popen([exe, "run", "-w", os.path.join(home, "workspace.yaml")],
                            env={**os.environ, "DAGSTER_HOME": home}, cwd=home, stdout=log_f,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # anything left in the group (its code server)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def daemon_errors(home: str) -> str:
    """The launch errors the daemon logged (why Jobs did not appear), for the caller's report."""
    try:
        with open(os.path.join(home, "daemon.log"), errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    hits = [i for i, line in enumerate(lines) if "Error" in line or "Exception" in line]
    return "\n".join(lines[hits[0]:hits[0] + 40]) if hits else "\n".join(lines[-20:])


def launch(args) -> None:
    import dagster_env  # ../shared/bench-dagster/dagster (k8s_compare.py sets PYTHONPATH)
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import PythonFileTarget
    from docker_compare import tree_cpu

    daemon = home = None
    try:
        home = make_home(args)
        os.environ["DAGSTER_HOME"] = home
        create_config_map(args, home)
        instance = DagsterInstance.get()
        target = PythonFileTarget(python_file=WORKLOAD, attribute=None, working_directory=WORKLOAD_DIR,
                                  location_name=LOCATION)
        with WorkspaceProcessContext(instance, target) as ctx:
            t0 = time.perf_counter()
            run_ids = []
            for _ in range(args.runs):
                run = dagster_env.create_remote_run(instance, ctx.create_request_context(), "trivial_job")
                instance.submit_run(run.run_id, ctx.create_request_context())
                run_ids.append(run.run_id)
            enqueue_s = time.perf_counter() - t0
        queued = len(instance.get_run_ids(RunsFilter(run_ids=run_ids, statuses=[DagsterRunStatus.QUEUED])))
        log(f"dagster: {args.runs} runs submitted in {enqueue_s:.2f}s, {queued} QUEUED")
        watch = JobWatch(args.api_url, RUN_WORKER_SELECTOR)
        spawn = time.time()
        daemon = start_daemon(home)
        while "QUEUED_RUN_COORDINATOR" not in instance.get_daemon_heartbeats():
            if daemon.poll() is not None:
                raise SystemExit(f"dagster-daemon exited (rc={daemon.returncode}):\n{daemon_errors(home)}")
            if time.time() - spawn > 120:
                raise SystemExit("dagster-daemon's queue daemon sent no heartbeat in 120 s")
            time.sleep(0.1)
        ready_s = time.time() - spawn
        log(f"dagster-daemon ready (queue daemon heartbeat) {ready_s:.2f}s after spawn")
        if not watch.wait(args.runs, args.timeout, alive=lambda: daemon.poll() is None):
            failed = len(instance.get_run_ids(RunsFilter(run_ids=run_ids, statuses=[DagsterRunStatus.FAILURE])))
            raise SystemExit(f"only {len(watch.seen)} of {args.runs} Jobs after {args.timeout}s ({failed} runs "
                             f"FAILURE); the daemon's log:\n{daemon_errors(home)}")
        times = watch.times()
        daemon_cpu_s = tree_cpu(daemon.pid)
        instance.dispose()
    finally:
        if daemon is not None:
            stop_group(daemon)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    span = times[-1] - times[0]
    emit("k8s_launch", orchestrator="dagster", daemon="dagster-daemon run", runs=args.runs,
         dequeue_num_workers=args.workers, enqueue_s=round(enqueue_s, 3), daemon_ready_s=round(ready_s, 3),
         spawn_to_all_jobs_s=round(times[-1] - spawn, 3), ready_to_all_jobs_s=round(times[-1] - spawn - ready_s, 3),
         first_to_last_job_s=round(span, 3), launches_per_s=round(args.runs / span, 2) if span > 0 else None,
         daemon_cpu_s=daemon_cpu_s)


def main() -> None:
    ap = argparse.ArgumentParser(description="Dagster's side of bench/k8s_compare.py")
    ap.add_argument("figure", choices=("launch",))
    ap.add_argument("--pg-url", required=True, help="a database of Dagster's own (k8s_compare.py makes it)")
    ap.add_argument("--kubeconfig", required=True, help="the fake cluster's kubeconfig")
    ap.add_argument("--api-url", required=True, help="the fake cluster's API server (the Job watch)")
    ap.add_argument("--image", default="dagster-bench:unused", help="job_image (instant mode runs nothing)")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--workers", type=int, default=8, help="dequeue_num_workers; 0: one thread (Dagster's default)")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    launch(args)


if __name__ == "__main__":
    main()
