#!/usr/bin/env python
"""Dagster's side of bench/docker_compare.py: the same three figures on the same engine, image base and
PostgreSQL server, run with the Dagster virtualenv's python (bench/setup_dagster.sh).

  $DAGSTER_PY bench/dagster_docker/dagster_side.py latency --pg-url URL --image TAG --label K=V
  $DAGSTER_PY bench/dagster_docker/dagster_side.py queue   --pg-url URL --image TAG --label K=V --runs 50
  $DAGSTER_PY bench/dagster_docker/dagster_side.py fanout  --pg-url URL --image TAG --label K=V

bench/docker_compare.py creates the database (``--pg-url``, Dagster's own) and the image
(``build_image.sh``), and removes the containers afterwards; this script only measures. Every
container Dagster makes carries ``--label`` (through ``container_kwargs``, which Dagster's docker
executor also applies to step containers), so the caller can count and remove them.

The instance (a fresh DAGSTER_HOME under the bench's temporary folder): PostgreSQL storage,
``DockerRunLauncher`` (image, ``network: host``, this folder mounted read-only at the same path so the
run container loads ``workload.py`` from where the code server did), telemetry off.

* ``latency``: ``DefaultRunCoordinator``. The clock starts before the run is created from the remote
  job (the code server computes its execution plan, as ``dagster job launch`` does) and handed to
  ``instance.submit_run``, which launches the container. Figures: ``running_s`` (the container's
  ``State.StartedAt`` minus that start), ``storage_s`` (the run's stored end time minus it),
  ``observed_s`` (when storage, polled every 10 ms, said SUCCESS).
* ``queue``: ``QueuedRunCoordinator`` (``max_concurrent_runs``, ``dequeue_interval_seconds: 1``, the
  smallest its integer setting allows short of a busy loop, and ``dequeue_use_threads`` with as many
  workers as runs may run, its documented throughput setting) and a real ``dagster-daemon run``,
  started and ready (its queue daemon has a heartbeat) before the clock starts. R runs are enqueued
  from this process; figures count from the first enqueue: ``enqueue_s``, ``all_launched_s``,
  ``all_finished_s``.
* ``fanout``: ``fanout_job`` (N no-op ops + 1 fan-in, every step in its own container through
  ``docker_executor`` with ``max_concurrent``) launched like ``latency``. Figures: ``run_wall_s``
  (stored end - start of the run), ``per_step_s`` = run_wall_s / steps, ``storage_s`` (submit ->
  SUCCESS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/: rybench (stdlib only; benchlib when present)

from docker_compare import tree_cpu  # noqa: E402  (stdlib only at import)
from rybench import emit, log, stats, tmp_root  # noqa: E402

WORKLOAD = os.path.join(HERE, "workload.py")
LOCATION = "bench"
POLL_S = 0.01


# ---- the instance ------------------------------------------------------------------------------------
def dagster_url(pg_url: str) -> str:
    """SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres ships psycopg2."""
    scheme, rest = pg_url.split("://", 1)
    return ("postgresql+psycopg2://" + rest) if "+" not in scheme else pg_url


def engine_socket() -> str:
    """The engine's unix socket (DOCKER_HOST): in the fan-out, the run container creates the step
    containers, so it gets the socket mounted at the same path (runyard's side does the same)."""
    address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not address.startswith("unix://"):
        raise SystemExit(f"the fan-out figure needs the engine on a unix socket (DOCKER_HOST={address})")
    return address[len("unix://"):]


def launcher_yaml(image: str, label: str, env: list[str], engine: bool = False) -> str:
    key, value = label.split("=", 1)
    volumes = [f"{HERE}:{HERE}:ro"] + ([f"{engine_socket()}:{engine_socket()}"] if engine else [])
    return (
        "run_launcher:\n  module: dagster_docker\n  class: DockerRunLauncher\n  config:\n"
        f"    image: {image}\n    network: host\n"
        + (f"    env_vars: {json.dumps(env)}\n" if env else "")
        + "    container_kwargs:\n"
        f"      volumes: {json.dumps(volumes)}\n"
        f"      labels: {{'{key}': '{value}'}}\n"
    )


def make_home(args, queued: bool, env: list[str] | None = None, engine: bool = False) -> str:
    home = tempfile.mkdtemp(prefix="dagster-docker-", dir=tmp_root())
    coordinator = ("run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
                   f"  config:\n    max_concurrent_runs: {args.max_concurrent_runs}\n"
                   "    dequeue_interval_seconds: 1\n    dequeue_use_threads: true\n"
                   f"    dequeue_num_workers: {args.max_concurrent_runs}\n") if queued else (
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    with open(os.path.join(home, "dagster.yaml"), "w") as f:
        f.write("telemetry:\n  enabled: false\n"
                f"storage:\n  postgres:\n    postgres_url: {dagster_url(args.pg_url)}\n"
                + coordinator + launcher_yaml(args.image, args.label, env or [], engine))
    with open(os.path.join(home, "workspace.yaml"), "w") as f:
        f.write(f"load_from:\n  - python_file:\n      relative_path: {WORKLOAD}\n"
                f"      working_directory: {HERE}\n      location_name: {LOCATION}\n")
    return home


@contextmanager
def instance_and_workspace(home: str):
    """DagsterInstance on ``home`` and a workspace whose code location is a managed gRPC code server
    (what the webserver and the daemon use)."""
    os.environ["DAGSTER_HOME"] = home
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import PythonFileTarget

    instance = DagsterInstance.get()
    target = PythonFileTarget(python_file=WORKLOAD, attribute=None, working_directory=HERE,
                              location_name=LOCATION)
    try:
        with WorkspaceProcessContext(instance, target) as ctx:
            yield instance, ctx
    finally:
        instance.dispose()


def create_run(instance, ctx, job_name: str, run_config: dict | None = None):
    """A run of ``job_name`` made from the remote job, the way ``dagster job launch`` makes it
    (the bench-dagster helper, when it is next to the repository)."""
    import dagster_env  # ../shared/bench-dagster/dagster, on PYTHONPATH (bench/docker_compare.py sets it)

    return dagster_env.create_remote_run(instance, ctx.create_request_context(), job_name,
                                         run_config=run_config or {})


def failure_text(instance, run_id: str) -> str:
    """The error events of a failed run, for the message that stops the bench."""
    lines = []
    for entry in instance.all_logs(run_id):
        if entry.level >= 40 or (entry.dagster_event and entry.dagster_event.is_failure):
            lines.append(entry.message or "")
            info = entry.dagster_event and getattr(entry.dagster_event.event_specific_data, "error", None)
            if info is not None:
                lines.append(info.to_string())
    return "\n".join(lines)[-4000:]


def samples(rows: list[dict]) -> dict[str, list[float]]:
    """Every measured value by figure, so rounds can be pooled before the median."""
    return {k: [round(r[k], 4) for r in rows if r[k] is not None] for k in rows[0]}


def wait_finished(instance, run_id: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = instance.get_run_record_by_id(run_id)
        if rec is not None and rec.dagster_run.is_finished:
            return rec
        time.sleep(POLL_S)
    raise TimeoutError(f"Dagster run {run_id} not finished after {timeout}s")


# ---- the engine --------------------------------------------------------------------------------------
def docker_client():
    import docker

    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                               version="1.41", timeout=60)


def engine_time(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    from datetime import UTC, datetime

    main, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp() + float("0." + (frac or "0"))


def container_started_at(client, run) -> float | None:
    ident = run.tags.get("docker/container_id")
    if not ident:
        return None
    return engine_time(client.containers.get(ident).attrs["State"]["StartedAt"])


# ---- the figures -------------------------------------------------------------------------------------
def latency(args) -> None:
    client = docker_client()
    home = make_home(args, queued=False)
    rows = []
    try:
        with instance_and_workspace(home) as (instance, ctx):
            for i in range(args.warmup + args.repeats):
                t0w, t0 = time.time(), time.perf_counter()
                run = create_run(instance, ctx, "trivial_job")
                instance.submit_run(run.run_id, ctx.create_request_context())
                submit_s = time.perf_counter() - t0
                rec = wait_finished(instance, run.run_id, args.timeout)
                observed_s = time.perf_counter() - t0
                started = container_started_at(client, rec.dagster_run)
                row = {"submit_s": submit_s, "running_s": started - t0w if started else None,
                       "storage_s": rec.end_time - t0w, "observed_s": observed_s}
                tag = "warmup" if i < args.warmup else f"run {i - args.warmup + 1}"
                log(f"dagster latency {tag}: {rec.dagster_run.status.value} "
                    + " ".join(f"{k}={v:.3f}" for k, v in row.items() if v is not None))
                if rec.dagster_run.status.value != "SUCCESS":
                    raise SystemExit(f"run {run.run_id} ended {rec.dagster_run.status.value}:\n"
                                     + failure_text(instance, run.run_id))
                if i >= args.warmup:
                    rows.append(row)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    emit("docker_latency", orchestrator="dagster", job="trivial_job", launcher="DockerRunLauncher",
         samples=samples(rows), **{k: stats(r[k] for r in rows if r[k] is not None) for k in rows[0]})


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


def queue(args) -> None:
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    home = make_home(args, queued=True)
    daemon = None
    try:
        with instance_and_workspace(home) as (instance, ctx):
            t_spawn = time.perf_counter()
            daemon = start_daemon(home)
            while "QUEUED_RUN_COORDINATOR" not in instance.get_daemon_heartbeats():
                if daemon.poll() is not None:
                    raise SystemExit(f"dagster-daemon exited (rc={daemon.returncode}); see {home}/daemon.log")
                if time.perf_counter() - t_spawn > 120:
                    raise SystemExit("dagster-daemon's queue daemon sent no heartbeat in 120 s")
                time.sleep(0.1)
            ready_s = time.perf_counter() - t_spawn
            log(f"dagster-daemon ready in {ready_s:.2f}s (pid {daemon.pid})")
            daemon_cpu_s = tree_cpu(daemon.pid)
            t0 = time.perf_counter()
            run_ids = []
            for _ in range(args.runs):
                run = create_run(instance, ctx, "trivial_job")
                instance.submit_run(run.run_id, ctx.create_request_context())
                run_ids.append(run.run_id)
            enqueue_s = time.perf_counter() - t0
            log(f"enqueued {args.runs} runs in {enqueue_s:.2f}s")
            all_launched = all_finished = None
            last_note = 0.0
            while time.perf_counter() - t0 < args.timeout:
                now = time.perf_counter() - t0
                recs = instance.get_run_records(RunsFilter(run_ids=run_ids))
                queued = sum(r.dagster_run.status == DagsterRunStatus.QUEUED for r in recs)
                finished = sum(r.dagster_run.is_finished for r in recs)
                if all_launched is None and queued == 0:
                    all_launched = now
                if finished == args.runs:
                    all_finished = now
                    break
                if now - last_note > 10:
                    log(f"  {now:.0f}s: {queued} queued, {finished} finished")
                    last_note = now
                time.sleep(0.05)
            if all_finished is None:
                raise SystemExit(f"not all {args.runs} runs finished in {args.timeout}s; see {home}/daemon.log")
            bad = [r for r in recs if r.dagster_run.status != DagsterRunStatus.SUCCESS]
            if bad:
                raise SystemExit(f"{len(bad)} Dagster runs did not succeed")
            log(f"all launched at {all_launched:.2f}s, all finished at {all_finished:.2f}s")
            daemon_cpu_s = tree_cpu(daemon.pid) - daemon_cpu_s  # dagster-daemon, its code server, children
            log(f"dagster-daemon's process tree used {daemon_cpu_s:.2f} CPU-s while the runs went through")
    finally:
        if daemon is not None:
            stop_group(daemon)
        shutil.rmtree(home, ignore_errors=True)
    R = args.runs
    emit("docker_queue", orchestrator="dagster", runs=R, max_concurrent_runs=args.max_concurrent_runs,
         dequeue_interval_s=1, daemon="dagster-daemon run", daemon_ready_s=round(ready_s, 3),
         daemon_cpu_s=daemon_cpu_s,
         enqueue_s=stats([enqueue_s], 3), all_launched_s=stats([all_launched], 3),
         all_finished_s=stats([all_finished], 3), finished_per_s=stats([R / all_finished], 3))


def fanout(args) -> None:
    env = [f"BENCH_FANOUT_N={args.fanout_n}"]
    os.environ["BENCH_FANOUT_N"] = str(args.fanout_n)  # the code server defines the job with it too
    home = make_home(args, queued=False, env=[*env, f"DOCKER_HOST=unix://{engine_socket()}"], engine=True)
    key, value = args.label.split("=", 1)
    run_config = {"execution": {"config": {
        "image": args.image, "network": "host", "env_vars": env, "max_concurrent": args.max_concurrent,
        "container_kwargs": {"volumes": [f"{HERE}:{HERE}:ro"], "labels": {key: value}}}}}
    steps = args.fanout_n + 1
    rows = []
    try:
        with instance_and_workspace(home) as (instance, ctx):
            for i in range(args.warmup + args.repeats):
                t0w, t0 = time.time(), time.perf_counter()
                run = create_run(instance, ctx, "fanout_job", run_config)
                instance.submit_run(run.run_id, ctx.create_request_context())
                rec = wait_finished(instance, run.run_id, args.timeout)
                row = {"storage_s": rec.end_time - t0w, "observed_s": time.perf_counter() - t0,
                       "run_wall_s": rec.end_time - rec.start_time,
                       "per_step_s": (rec.end_time - rec.start_time) / steps}
                tag = "warmup" if i < args.warmup else f"run {i - args.warmup + 1}"
                log(f"dagster fanout {tag}: {rec.dagster_run.status.value} "
                    + " ".join(f"{k}={v:.3f}" for k, v in row.items()))
                if rec.dagster_run.status.value != "SUCCESS":
                    raise SystemExit(f"run {run.run_id} ended {rec.dagster_run.status.value}:\n"
                                     + failure_text(instance, run.run_id))
                if i >= args.warmup:
                    rows.append(row)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    emit("docker_fanout", orchestrator="dagster", executor="docker_executor", steps=steps,
         max_concurrent=args.max_concurrent, samples=samples(rows), **{k: stats(r[k] for r in rows) for k in rows[0]})


def main() -> None:
    ap = argparse.ArgumentParser(description="Dagster's side of bench/docker_compare.py")
    ap.add_argument("figure", choices=("latency", "queue", "fanout"))
    ap.add_argument("--pg-url", required=True, help="a database of Dagster's own (bench/docker_compare.py makes it)")
    ap.add_argument("--image", required=True, help="Dagster's image (bench/dagster_docker/build_image.sh)")
    ap.add_argument("--label", required=True, help="KEY=VALUE put on every container")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--max-concurrent-runs", type=int, default=8)
    ap.add_argument("--fanout-n", type=int, default=20)
    ap.add_argument("--max-concurrent", type=int, default=4, help="docker_executor's max_concurrent")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    {"latency": latency, "queue": queue, "fanout": fanout}[args.figure](args)


if __name__ == "__main__":
    main()
