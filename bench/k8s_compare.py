#!/usr/bin/env python
"""k8s: runyard's Kubernetes launcher and executor next to Dagster's K8sRunLauncher (issue 12), both
against the same fake cluster (tests/plugins/launcher_k8s/fakecluster.py), same PostgreSQL server,
same run.

  python bench/k8s_compare.py                  # every figure: 500 runs, 200 steps, 5 evictions
  python bench/k8s_compare.py --quick          # 100 runs, 50 steps, 2 evictions
  python bench/k8s_compare.py --only launch --runs 300 --skip-dagster
  python bench/k8s_compare.py --only failure   # needs the Docker engine (DOCKER_HOST) and runyard:dev

No real API server runs on these machines (DESIGN.md §6): the cluster is kmock's emulator over HTTP
with the fake cluster's node agent. ``mode="instant"`` marks every Job's pod Succeeded at once and runs
nothing, so it measures the launcher and its daemon, not Kubernetes; ``mode="docker"`` runs each pod
as a container. Each figure gets a fresh cluster and a fresh database per side (``--pg-url``,
``$RUNYARD_BENCH_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``), dropped after it.

Figures (runyard, then Dagster, one at a time, never in parallel):

* ``launch``: R (500) runs of ``trivial_job`` submitted to the queued coordinator (QUEUED,
  ``max_concurrent_runs: -1``) before any daemon runs; then a real daemon (``runyard daemon`` /
  ``dagster-daemon run``) is started, and a watch on the cluster's Jobs (this process, raw HTTP, the
  side's run-worker label) notes when each Job appears. ``launches_per_s`` = R / (last Job - first
  Job); also the time from the daemon's spawn and from its readiness to the last Job. runyard is
  measured twice: ``daemon.launch_concurrency`` 8 (the default) and 1 (one launch at a time).
  Dagster: ``QueuedRunCoordinator`` with ``dequeue_interval_seconds: 1``, measured twice too:
  ``dequeue_use_threads`` with ``dequeue_num_workers`` 8 (``--dagster-workers``), and its default (one
  thread, no pool).
  Goal ≥ 50 launches/s.
* ``steps``: the ``k8s`` executor creating S (200) step Jobs for ``fanout_job`` (S no-op ops + 1
  fan-in), the run worker in this process, ``max_concurrent`` S + 1 so no step waits for another's
  end. In instant mode a step pod ends at once with an empty log, so the executor finds no outcome
  line and fails the step (the fan-in is then skipped): the figure is only the creation of the S step
  Jobs (watched as they appear, label ``runyard.io/kind=step``), ``step_jobs_per_s`` = S / (last step
  Job - execute_run called). No Dagster twin: Dagster's ``k8s_job_executor`` would need its step
  pods to run.
* ``failure``: docker mode; a run of ``waiting_job`` (``bench/workload_k8s.py``, one op sleeping
  120 s) launched by the k8s launcher while ``runyard daemon`` runs (its pod watch); once the op runs,
  its pod is evicted (``create_namespaced_pod_eviction``); ``detect_s`` = the run's stored end
  (FAILURE) - the eviction call. Repeated 5 times (2 with --quick). Goal < 10 s. Dagster not
  measured: its run monitoring (off by default in OSS) polls every ``poll_interval_seconds``, 120 s by
  default (``run_monitoring_poll_interval_seconds`` in ``dagster/_core/instance/methods/settings_methods.py``
  of Dagster 1.13.27; docs: "Run monitoring").

Logs, raw ``RESULT`` records and the table go to ``bench/results/k8s-<UTC time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from rybench import BENCH_DIR, REPO_DIR, SHARED_BENCH, WORKLOAD_FILE, emit, log, make_home, stats, tmp_root

FIGURES = ("launch", "steps", "failure")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
FAKECLUSTER_DIR = os.path.join(REPO_DIR, "tests", "plugins", "launcher_k8s")
WAIT_WORKLOAD = os.path.join(BENCH_DIR, "workload_k8s.py")
DAGSTER_SIDE = os.path.join(BENCH_DIR, "dagster_k8s", "dagster_side.py")
POLL_S = 0.02


# ================================================================================================ #
# counting Jobs as they appear (stdlib only: Dagster's side imports it too)
# ================================================================================================ #
class JobWatch:
    """A watch on the Jobs of ``namespace`` matching ``selector``, over raw HTTP (no client models, so
    it costs the measured processes little CPU): the wall time each Job name was first seen."""

    def __init__(self, api_url: str, selector: str, namespace: str = "default"):
        query = urllib.parse.urlencode({"watch": "true", "labelSelector": selector, "timeoutSeconds": 3600})
        self.url = f"{api_url}/apis/batch/v1/namespaces/{namespace}/jobs?{query}"
        self.seen: dict[str, float] = {}
        self.error: str | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-watch", daemon=True)
        self._thread.start()
        self._started.wait(10)

    def _run(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=3600) as response:
                self._started.set()
                for line in response:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ADDED":
                        self.seen.setdefault(event["object"]["metadata"]["name"], time.time())
        except Exception as exc:  # noqa: BLE001 - the cluster closed, or a real error reported by wait()
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._started.set()

    def wait(self, count: int, timeout: float, alive=None) -> bool:
        """Until ``count`` Jobs were seen (True) or ``timeout`` (False); ``alive()`` False stops early."""
        deadline = time.monotonic() + timeout
        last_note = time.monotonic()
        while len(self.seen) < count:
            if time.monotonic() > deadline or (alive is not None and not alive()):
                return False
            if not self._thread.is_alive():
                raise SystemExit(f"the Job watch ended: {self.error}")
            if time.monotonic() - last_note > 10:
                log(f"  {len(self.seen)}/{count} Jobs so far")
                last_note = time.monotonic()
            time.sleep(POLL_S)
        return True

    def times(self) -> list[float]:
        return sorted(self.seen.values())


# ================================================================================================ #
# runyard's side
# ================================================================================================ #
def _fakecluster():
    if FAKECLUSTER_DIR not in sys.path:
        sys.path.insert(0, FAKECLUSTER_DIR)
    from fakecluster import FakeCluster

    return FakeCluster


def _database(args, prefix: str):
    from runyard_storage_postgres.testing import create_database

    return create_database(args.admin, prefix=prefix)


def _drop(url: str, args) -> None:
    from runyard_storage_postgres.testing import drop_database

    drop_database(url, args.admin)


def runyard_launch(args, concurrency: int) -> dict:
    from daemonproc import DaemonProc

    from runyard.execution.api import prepare_run
    from runyard.instance.instance import Instance
    from runyard.storage.records import EventType, RunFilter, RunStatus
    from runyard.workspace.loader import code_pointer_for, load_definitions
    from runyard_launcher_k8s import manifests

    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job("trivial_job")
    cluster = _fakecluster()(mode="instant")
    url = _database(args, "runyard_bench_k8s")
    home = make_home("k8s-launch", f"storage:\n  postgres:\n    url: {url}\n"
                     "run_coordinator:\n  queued:\n    max_concurrent_runs: -1\n    dequeue_interval_seconds: 1\n"
                     f"run_launcher:\n  k8s:\n    kubeconfig: {cluster.kubeconfig}\n    image: {args.image}\n"
                     f"daemon:\n  launch_concurrency: {concurrency}\n")
    instance = Instance.open(home)
    daemon = None
    try:
        storage = instance.storage
        t0 = time.perf_counter()
        run_ids = []
        for _ in range(args.runs):
            run = prepare_run(instance, job, code_pointer=pointer)
            instance.submit_run(run)
            run_ids.append(run.run_id)
        enqueue_s = time.perf_counter() - t0
        queued = storage.count_runs(RunFilter(run_ids=run_ids, statuses=[RunStatus.QUEUED]))
        log(f"runyard: {args.runs} runs submitted in {enqueue_s:.2f}s, {queued} QUEUED")
        selector = manifests.selector({manifests.INSTANCE_LABEL: instance.instance_id(), manifests.KIND_LABEL: "run"})
        watch = JobWatch(cluster.url, selector)
        cluster_cpu_s = _tree_cpu(cluster.process.pid)
        spawn = time.time()
        daemon = DaemonProc(home, [WORKLOAD_FILE], os.path.join(home, "daemon.log"))
        profiler = _profile(args, daemon.pid, f"daemon-c{concurrency}")
        ready_s = daemon.wait_ready()
        log(f"runyard daemon (launch_concurrency {concurrency}) ready {ready_s:.2f}s after spawn")
        if not watch.wait(args.runs, args.timeout, alive=lambda: daemon.proc.poll() is None):
            raise SystemExit(f"only {len(watch.seen)} of {args.runs} Jobs after {args.timeout}s; see {daemon.log_path}")
        times = watch.times()
        daemon_cpu_s = _tree_cpu(daemon.pid)
        cluster_cpu_s = round(_tree_cpu(cluster.process.pid) - cluster_cpu_s, 3)
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
        claim_ts = []
        for rid in run_ids:
            claim_ts += [e.timestamp for e in storage.get_events(rid, event_types=[EventType.RUN_STARTING])]
        first_claim = min(claim_ts) if claim_ts else None
    finally:
        if daemon is not None:
            daemon.stop()
        instance.dispose()
        _drop(url, args)
        left = cluster.close()
        shutil.rmtree(home, ignore_errors=True)
    span = times[-1] - times[0]
    row = {"runs": args.runs, "launch_concurrency": concurrency, "enqueue_s": round(enqueue_s, 3),
           "daemon_ready_s": round(ready_s, 3),
           "spawn_to_all_jobs_s": round(times[-1] - spawn, 3),
           "ready_to_all_jobs_s": round(times[-1] - spawn - ready_s, 3),
           "first_claim_to_all_jobs_s": round(times[-1] - first_claim, 3) if first_claim else None,
           "first_to_last_job_s": round(span, 3),
           "launches_per_s": round(args.runs / span, 1) if span > 0 else None,
           "launches_per_s_from_first_claim": round(args.runs / (times[-1] - first_claim), 1) if first_claim else None,
           "daemon_cpu_s": daemon_cpu_s, "cluster_cpu_s": cluster_cpu_s, "containers_left": len(left)}
    log(f"runyard launch (concurrency {concurrency}): " + " ".join(f"{k}={v}" for k, v in row.items()))
    emit("k8s_launch", orchestrator="runyard", daemon="runyard daemon", **row)
    return row


def runyard_steps(args) -> dict:
    from runyard.execution.api import prepare_run
    from runyard.execution.run_worker import execute_run
    from runyard.instance.instance import Instance
    from runyard.storage.records import EventType
    from runyard.workspace.loader import code_pointer_for, load_definitions
    from runyard_launcher_k8s import kube, manifests

    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job("fanout_job")
    ops = len(job.nodes)
    if ops != args.steps + 1:
        raise SystemExit(f"fanout_job has {ops} ops, not {args.steps} + 1 "
                         f"(BENCH_FANOUT_N={os.environ.get('BENCH_FANOUT_N')})")
    cluster = _fakecluster()(mode="instant")
    url = _database(args, "runyard_bench_k8s_steps")
    home = make_home("k8s-steps", f"storage:\n  postgres:\n    url: {url}\n")
    instance = Instance.open(home)
    run_config = {"execution": {"k8s": {"kubeconfig": cluster.kubeconfig, "image": args.image,
                                        "max_concurrent": min(args.steps + 1, 1024)}}}
    done: list = []
    try:
        run = prepare_run(instance, job, code_pointer=pointer, run_config=run_config)
        selector = manifests.selector({manifests.INSTANCE_LABEL: instance.instance_id(),
                                       manifests.KIND_LABEL: "step"})
        watch = JobWatch(cluster.url, selector)
        worker = threading.Thread(target=lambda: done.append(execute_run(instance, run.run_id, job=job)),
                                  daemon=True)
        t0 = time.time()
        worker.start()
        if not watch.wait(args.steps, args.timeout, alive=worker.is_alive):
            raise SystemExit(f"only {len(watch.seen)} of {args.steps} step Jobs after {args.timeout}s "
                             f"(run worker {'running' if worker.is_alive() else 'returned'})")
        times = watch.times()
        worker.join(args.timeout)
        final = done[0] if done else instance.get_run(run.run_id)
        failed = [e for e in instance.storage.get_events(run.run_id, event_types=[EventType.STEP_FAILURE])]
        log(f"run {run.run_id} ended {final.status} ({len(failed)} step failures: instant pods print no "
            "outcome line, as expected)")
    finally:
        instance.dispose()
        kube.forget_clients()
        _drop(url, args)
        left = cluster.close()
        shutil.rmtree(home, ignore_errors=True)
    created = times[args.steps - 1] - t0
    row = {"steps": args.steps, "max_concurrent": min(args.steps + 1, 1024),
           "first_step_job_s": round(times[0] - t0, 3), "all_step_jobs_s": round(created, 3),
           "step_jobs_per_s": round(args.steps / created, 1),
           "step_jobs_per_s_first_to_last": round((args.steps - 1) / (times[args.steps - 1] - times[0]), 1)
           if args.steps > 1 and times[args.steps - 1] > times[0] else None,
           "run_status": str(final.status), "run_wall_s": round(final.end_time - t0, 3) if final.end_time else None,
           "containers_left": len(left)}
    log("runyard steps: " + " ".join(f"{k}={v}" for k, v in row.items()))
    emit("k8s_steps", orchestrator="runyard", executor="k8s", **row)
    return row


def runyard_failure(args) -> dict:
    from daemonproc import DaemonProc
    from kubernetes import client as k8s

    from runyard.execution.api import prepare_run
    from runyard.instance.instance import Instance
    from runyard.storage.records import EventType, RunStatus
    from runyard.workspace.loader import code_pointer_for, load_definitions
    from runyard_launcher_k8s import manifests

    pointer = code_pointer_for(python_file=WAIT_WORKLOAD)
    job = load_definitions(pointer).get_job("waiting_job")
    cluster = _fakecluster()(mode="docker")
    url = _database(args, "runyard_bench_k8s_fail")
    home = make_home("k8s-failure", f"storage:\n  postgres:\n    url: {url}\n"
                     f"run_launcher:\n  k8s:\n    kubeconfig: {cluster.kubeconfig}\n    image: {args.image}\n"
                     "    image_pull_policy: IfNotPresent\n    grace_period_seconds: 3\n"
                     f"    volumes: [{{name: bench, hostPath: {{path: {BENCH_DIR}}}}}]\n"
                     f"    volume_mounts: [{{name: bench, mountPath: {BENCH_DIR}, readOnly: true}}]\n")
    instance = Instance.open(home)
    api = cluster.api_client()
    core = k8s.CoreV1Api(api)
    daemon = None
    rows = []
    try:
        storage = instance.storage
        daemon = DaemonProc(home, [WAIT_WORKLOAD], os.path.join(home, "daemon.log"))
        log(f"runyard daemon ready in {daemon.wait_ready():.2f}s")
        for i in range(args.failures):
            run = prepare_run(instance, job, code_pointer=pointer)
            instance.submit_run(run)
            deadline = time.monotonic() + 120
            while not storage.get_events(run.run_id, event_types=[EventType.STEP_START]):
                current = instance.get_run(run.run_id)
                if current.status.is_finished or time.monotonic() > deadline:
                    raise SystemExit(f"run {run.run_id} never ran its op ({current.status}); see {daemon.log_path}")
                time.sleep(POLL_S)
            pods = core.list_namespaced_pod("default", label_selector=manifests.selector(
                {manifests.RUN_LABEL: manifests.label_value(run.run_id)})).items
            name = pods[0].metadata.name
            evicted = time.time()
            core.create_namespaced_pod_eviction(name, "default", k8s.V1Eviction(
                metadata=k8s.V1ObjectMeta(name=name, namespace="default")))
            deadline = time.monotonic() + 300
            while not (current := instance.get_run(run.run_id)).status.is_finished:
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {run.run_id} not finished 300 s after its pod's eviction")
                time.sleep(POLL_S)
            seen = time.time()
            failure = storage.get_events(run.run_id, event_types=[EventType.RUN_FAILURE])
            reason = (failure[-1].data or {}).get("reason") if failure else None
            row = {"detect_s": current.end_time - evicted, "observed_s": seen - evicted}
            log(f"runyard failure {i + 1}: {current.status} reason={reason} "
                + " ".join(f"{k}={v:.3f}" for k, v in row.items()))
            if current.status != RunStatus.FAILURE:
                raise SystemExit(f"run {run.run_id} ended {current.status}, not FAILURE")
            rows.append({**row, "reason": reason})
    finally:
        if daemon is not None:
            daemon.stop()
        api.close()
        instance.dispose()
        _drop(url, args)
        left = cluster.close()
        shutil.rmtree(home, ignore_errors=True)
    detect = [r["detect_s"] for r in rows]
    result = {"repeats": len(rows), "reasons": sorted({str(r["reason"]) for r in rows}),
              "detect_s": stats(detect, 3), "detect_p50_s": round(statistics.median(detect), 3),
              "detect_max_s": round(max(detect), 3), "containers_left_at_close": len(left)}
    emit("k8s_failure", orchestrator="runyard", **result, samples=[round(d, 3) for d in detect])
    return result


def _profile(args, pid: int, name: str):
    """``--profile-daemon DIR``: py-spy sampling ``pid`` while holding the GIL (collapsed stacks in DIR/NAME.txt)
    until the caller sends it SIGINT."""
    if not args.profile_daemon:
        return None
    os.makedirs(args.profile_daemon, exist_ok=True)
    out = os.path.join(args.profile_daemon, name + ".txt")
    return subprocess.Popen([args.py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                             "--threads", "--gil", "--output", out], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _tree_cpu(pid: int) -> float:
    from docker_compare import tree_cpu

    return tree_cpu(pid)


# ================================================================================================ #
# Dagster's side: bench/dagster_k8s/dagster_side.py with the Dagster venv's python
# ================================================================================================ #
def dagster_launch(args, dagster_py: str, out_dir: str, workers: int) -> dict:
    cluster = _fakecluster()(mode="instant")
    url = _database(args, "dagster_bench_k8s")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(SHARED_BENCH, "dagster"),
                                                        os.path.join(SHARED_BENCH, "common")]),
           "BENCH_TMP": tmp_root()}
    argv = [dagster_py, DAGSTER_SIDE, "launch", "--pg-url", url, "--kubeconfig", cluster.kubeconfig,
            "--api-url", cluster.url, "--runs", str(args.runs), "--workers", str(workers),
            "--timeout", str(args.timeout)]
    log("== dagster launch: " + " ".join(argv[1:]))
    cluster_cpu_s = _tree_cpu(cluster.process.pid)
    try:
        with open(os.path.join(out_dir, f"dagster-launch-{workers}.err"), "w") as err:
            proc = subprocess.run(argv, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        cluster_cpu_s = round(_tree_cpu(cluster.process.pid) - cluster_cpu_s, 3)  # idle while it submits
    finally:
        _drop(url, args)
        left = cluster.close()
    with open(os.path.join(out_dir, f"dagster-launch-{workers}.out"), "w") as f:
        f.write(proc.stdout)
    records = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not records:
        with open(os.path.join(out_dir, f"dagster-launch-{workers}.err")) as f:
            tail = f.read().splitlines()[-25:]
        print("\n".join("   | " + line for line in tail), flush=True)
        return {"error": f"exit {proc.returncode}: " + (tail[-1] if tail else "no output")}
    rec = records[-1]
    rec["containers_left"] = len(left)
    rec["cluster_cpu_s"] = cluster_cpu_s
    return rec


# ================================================================================================ #
# the comparison
# ================================================================================================ #
def fmt(v, unit: str = " s") -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return f"{v:.3f}{unit}" if v < 10 else f"{v:.1f}{unit}"


def ratio_txt(ry, dg, higher_better: bool = False) -> str:
    if not isinstance(ry, (int, float)) or not isinstance(dg, (int, float)) or not ry or not dg:
        return "—"
    r = ry / dg
    return f"{r:.1f}x" if higher_better else (f"{r:.3f} (1/{1 / r:.1f})" if r < 1 else f"{r:.2f}")


def table(results: dict, args) -> str:
    out = ["| figure | runyard | dagster | ratio (runyard/dagster) | goal | met? |", "|---|---|---|---|---|---|"]
    r8, r1, dg = results.get("launch8"), results.get("launch1"), results.get("dagster_launch")
    derr = (dg or {}).get("error")
    if r8 or dg:
        dg_rate = None if derr else (dg or {}).get("launches_per_s")
        rate = (r8 or {}).get("launches_per_s")
        met = "—" if rate is None else ("yes" if rate >= 50 else "NO")
        out.append(f"| {args.runs} queued runs, daemon started -> every Job created: launches/s (first Job to last; "
                   f"runyard launch_concurrency 8, Dagster {args.dagster_workers} dequeue threads) | "
                   f"{fmt(rate, '/s')} | {fmt(derr and 'failed' or dg_rate, '/s')} | "
                   f"{ratio_txt(rate, dg_rate, True)} | ≥ 50/s | {met} |")
        for key, name in (("spawn_to_all_jobs_s", "  daemon spawned -> last Job"),
                          ("ready_to_all_jobs_s", "  daemon ready -> last Job"),
                          ("first_claim_to_all_jobs_s", "  first claim (RUN_STARTING) -> last Job"),
                          ("daemon_ready_s", "  daemon spawned -> ready"),
                          ("daemon_cpu_s", "  CPU of the daemon's process tree until the last Job, CPU-s"),
                          ("cluster_cpu_s", "  CPU of the fake cluster (API server + node agent) meanwhile, CPU-s"),
                          ("enqueue_s", f"  submitting the {args.runs} runs (QUEUED), before the daemon")):
            ry, d = (r8 or {}).get(key), None if derr else (dg or {}).get(key)
            if ry is not None or d is not None:
                out.append(f"| {name} | {fmt(ry)} | {fmt(d)} | {ratio_txt(ry, d)} | — | — |")
    d1 = results.get("dagster_launch1")
    d1 = None if (d1 or {}).get("error") else d1
    if r1 or d1:
        ry, d = (r1 or {}).get("launches_per_s"), (d1 or {}).get("launches_per_s")
        out.append(f"| one launch at a time (runyard `launch_concurrency: 1`; Dagster's default, no dequeue threads): "
                   f"launches/s | {fmt(ry, '/s')} | {fmt(d, '/s')} | {ratio_txt(ry, d, True)} | — | — |")
        ry, d = (r1 or {}).get("ready_to_all_jobs_s"), (d1 or {}).get("ready_to_all_jobs_s")
        out.append(f"|   daemon ready -> last Job, one at a time | {fmt(ry)} | {fmt(d)} | {ratio_txt(ry, d)} | — | — |")
    st = results.get("steps")
    if st:
        out.append(f"| k8s executor, {st['steps']}-step fan-out: step Jobs created per s (execute_run -> last step "
                   f"Job, max_concurrent {st['max_concurrent']}) | {fmt(st['step_jobs_per_s'], '/s')} | not run | "
                   "— | — | — |")
        out.append(f"|   execute_run -> first step Job / -> all {st['steps']} | {fmt(st['first_step_job_s'])} / "
                   f"{fmt(st['all_step_jobs_s'])} | — | — | — | — |")
    fl = results.get("failure")
    if fl:
        met = "yes" if fl["detect_max_s"] < 10 else "NO"
        out.append(f"| pod evicted -> run FAILURE stored ({fl['repeats']}x, reason {', '.join(fl['reasons'])}), "
                   f"p50 / max | {fmt(fl['detect_p50_s'])} / {fmt(fl['detect_max_s'])} | run monitoring polls every "
                   "120 s by default (not measured) | — | < 10 s | " + met + " |")
    for name, note in results.get("notes", {}).items():
        out.append(f"| {name}: {note} | — | — | — | — | — |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="runyard vs Dagster on (fake) Kubernetes (issue 12)")
    ap.add_argument("--quick", action="store_true", help="100 runs, 50 steps, 2 evictions")
    ap.add_argument("--only", default=",".join(FIGURES), help=f"comma list of {', '.join(FIGURES)}")
    ap.add_argument("--runs", type=int, help="queued runs of the launch figure (500; 100 with --quick)")
    ap.add_argument("--steps", type=int, help="fan-out of the steps figure (200; 50 with --quick)")
    ap.add_argument("--failures", type=int, help="evictions of the failure figure (5; 2 with --quick)")
    ap.add_argument("--skip-dagster", action="store_true")
    ap.add_argument("--dagster-python", help="python of a virtualenv with dagster and dagster-k8s")
    ap.add_argument("--dagster-workers", type=int, default=8,
                    help="Dagster's dequeue_num_workers (dequeue_use_threads); 0: its default, one thread")
    ap.add_argument("--image", default="runyard:dev", help="the run image (docker mode runs it)")
    ap.add_argument("--pg-url", default=os.environ.get("RUNYARD_BENCH_PG_URL", DEFAULT_PG),
                    help="a role that may CREATE DATABASE")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", help="where logs and results go (default bench/results/k8s-<UTC time>)")
    ap.add_argument("--profile-daemon", metavar="DIR", help="sample runyard's daemon with py-spy during the launch "
                    "figure (collapsed stacks, DIR/daemon-c<concurrency>.txt)")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="the py-spy binary")
    args = ap.parse_args()
    only = [f for f in args.only.split(",") if f]
    for f in only:
        if f not in FIGURES:
            ap.error(f"unknown figure {f!r} (choose from {', '.join(FIGURES)})")
    args.runs = args.runs or (100 if args.quick else 500)
    args.steps = args.steps or (50 if args.quick else 200)
    args.failures = args.failures or (2 if args.quick else 5)
    os.environ["BENCH_FANOUT_N"] = str(args.steps)  # before workload.py is first loaded (it is cached)

    from compare import find_dagster_python

    from runyard_storage_postgres.testing import require_server

    args.admin = require_server(args.pg_url)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.abspath(args.out or os.path.join(BENCH_DIR, "results", f"k8s-{stamp}"))
    os.makedirs(out_dir, exist_ok=True)
    os.environ["BENCH_RESULTS"] = os.path.join(out_dir, "results.jsonl")
    dagster_py, note = (None, "skipped (--skip-dagster)") if args.skip_dagster else find_dagster_python(
        args.dagster_python)
    if dagster_py is None:
        log(f"NOTE: Dagster not measured: {note}. `bash bench/setup_dagster.sh` makes its virtualenv.")
    results: dict = {"notes": {}}
    load_before = os.getloadavg()
    if "launch" in only:
        results["launch8"] = runyard_launch(args, 8)
        results["launch1"] = runyard_launch(args, 1)
        if dagster_py:
            for key, workers in (("dagster_launch", args.dagster_workers), ("dagster_launch1", 0)):
                results[key] = dagster_launch(args, dagster_py, out_dir, workers)
                if "error" in results[key]:
                    results["notes"][f"Dagster launch (dequeue_num_workers {workers})"] = results[key]["error"]
                else:
                    log(f"dagster launch ({workers} workers): "
                        + " ".join(f"{k}={v}" for k, v in results[key].items()))
    if "steps" in only:
        results["steps"] = runyard_steps(args)
    if "failure" in only:
        if not os.environ.get("DOCKER_HOST"):
            proc = subprocess.run([os.path.join(REPO_DIR, "scripts", "docker-engine"), "start"], capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0:
                raise SystemExit(f"no Docker engine: scripts/docker-engine start failed:\n{proc.stderr}")
            os.environ["DOCKER_HOST"] = proc.stdout.strip().splitlines()[-1].split("=", 1)[1]
        results["failure"] = runyard_failure(args)
    load = ", ".join(f"{x:.2f}" for x in (*load_before, *os.getloadavg()))
    header = (f"runyard vs Dagster on the fake Kubernetes cluster ({'quick' if args.quick else 'full'} run): "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} cores; load average before/after {load}; "
              f"{note if dagster_py else 'Dagster not measured'}")
    report = "\n\n".join([header, table(results, args),
                          "launch and steps: instant mode (pods end Succeeded at once; nothing runs); failure: docker "
                          "mode. Not a test: nothing fails on a figure."])
    print("\n" + report, flush=True)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
