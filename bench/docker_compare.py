#!/usr/bin/env python
"""docker: runyard's docker launcher and executor next to Dagster's DockerRunLauncher and
docker_executor (issue 11), same engine, same image base, same PostgreSQL server, same run.

  python bench/docker_compare.py                 # every figure, about 10-15 minutes on 2 cores
  python bench/docker_compare.py --quick         # fewer repeats, 20 queued runs instead of 50
  python bench/docker_compare.py --only latency,queue --skip-dagster
  python bench/docker_compare.py --only latency --rounds 3   # the sides alternate 3 times, samples pooled

Figures (runyard, then Dagster, one at a time, never in parallel):

* ``latency``: a trivial 1-op run submitted with the default coordinator (runyard: ``prepare_run`` +
  ``instance.submit_run``; Dagster: the run made from the remote job + ``instance.submit_run``), the
  launcher starting one container for it. Clock from just before the run is made: ``running_s``
  (the container's ``State.StartedAt``) and ``storage_s`` (the run's stored end time, SUCCESS).
  Goal: storage_s ≤ 1/5 of Dagster's.
* ``queue``: R (50; 20 with --quick) trivial runs enqueued while a real daemon (``runyard daemon`` /
  ``dagster-daemon run``) dequeues them with ``max_concurrent_runs: 8`` through the docker launcher;
  clock from the first enqueue until every run is SUCCESS; also the CPU the daemon's process tree
  used meanwhile (the rest is the containers'). runyard: ``dequeue_interval_seconds: 1``
  (the queue loop is also woken when a run is enqueued or finishes) and ``run_monitoring:
  poll_interval_seconds: 2`` (the reconciler removes the containers of finished runs); Dagster:
  ``dequeue_interval_seconds: 1`` with ``dequeue_use_threads``. Goal ≤ 1/10.
* ``fanout``: N = 20 no-op ops + 1 fan-in op, every step in its own container (runyard: the
  ``docker`` executor, run config ``execution: {docker: {...}}``; Dagster: ``docker_executor``),
  ``max_concurrent: 4`` on both, launched in a container by the docker launcher. ``per_step_s`` = the
  run's stored wall time (start -> end) / 21. Goal ≤ 1/5 of Dagster's, and below 0.5 s a step.
  Measured only when runyard's docker executor is installed.
* containers left: after each figure, the containers carrying the figure's label are counted,
  then removed. runyard's launcher removes a finished run's container in its reconcile pass (the
  daemon's run monitoring; in the latency and fan-out figures, which have no daemon, this script runs
  one pass the way the daemon would); its executor removes step containers itself. Dagster's
  DockerRunLauncher leaves run containers (it has no clean-up of its own): they are counted, then
  removed by this script.

Each side gets a database of its own on ``--pg-url`` (``$RUNYARD_BENCH_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, a role that may CREATE DATABASE), dropped after
its figure. Containers use the host network and reach PostgreSQL on 127.0.0.1. Images: runyard:dev
(``scripts/build-images``) and Dagster's (``bench/dagster_docker/build_image.sh``: the same base image,
dagster + dagster-docker + dagster-postgres installed from wheels made on the host), both rebuilt only
when their inputs changed. Dagster's side is ``bench/dagster_docker/dagster_side.py``, run with the
Dagster virtualenv's python (found as in compare.py; ``bash bench/setup_dagster.sh`` makes it).

Logs, raw ``RESULT`` records and the table go to ``bench/results/docker-<UTC time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from rybench import BENCH_DIR, REPO_DIR, SHARED_BENCH, WORKLOAD_FILE, emit, log, make_home, stats, tmp_root

FIGURES = ("latency", "queue", "fanout")
BENCH_LABEL = "runyard-bench"  # KEY=VALUE on every container of this bench (org.runyard.* are runyard's own)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
EXECUTOR_MODULE = os.path.join(REPO_DIR, "plugins", "launcher_docker", "runyard_launcher_docker", "executor.py")
DAGSTER_SIDE = os.path.join(BENCH_DIR, "dagster_docker", "dagster_side.py")
POLL_S = 0.01


# ================================================================================================ #
# runyard's side (python bench/docker_compare.py --runyard FIGURE ...): one figure, RESULT lines on stdout
# ================================================================================================ #
def engine_socket() -> str:
    """The engine's unix socket (DOCKER_HOST): the fan-out's run containers create step containers,
    so they get the socket mounted at the same path, on both sides."""
    address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not address.startswith("unix://"):
        raise SystemExit(f"the fan-out figure needs the engine on a unix socket (DOCKER_HOST={address})")
    return address[len("unix://"):]


def runyard_yaml(args, *, queued: bool, env: list[str] | None = None, engine: bool = False) -> str:
    key, value = args.label.split("=", 1)
    volumes = [f"{BENCH_DIR}:{BENCH_DIR}:ro"] + ([f"{engine_socket()}:{engine_socket()}"] if engine else [])
    text = (f"storage:\n  postgres:\n    url: {args.pg_url}\n"
            "run_launcher:\n  docker:\n"
            f"    image: {args.image}\n    network: host\n"
            f"    volumes: {json.dumps(volumes)}\n"
            f"    labels: {{'{key}': '{value}'}}\n"
            "    grace_period_seconds: 3\n")
    if env:
        text += "    env_vars: [" + ", ".join(f"'{e}'" for e in env) + "]\n"
    if queued:
        text += (f"run_coordinator:\n  queued:\n    max_concurrent_runs: {args.max_concurrent_runs}\n"
                 "    dequeue_interval_seconds: 1\n"
                 "run_monitoring:\n  poll_interval_seconds: 2\n")
    return text


def container_started_at(run) -> float | None:
    import docker

    ident = run.launcher_info.get("container_id")
    if not ident:
        return None
    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                                 version="1.41", timeout=60)
    try:
        return engine_time(client.containers.get(ident).attrs["State"]["StartedAt"])
    except docker.errors.NotFound:
        return None
    finally:
        client.close()


def engine_time(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    main, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp() + float("0." + (frac or "0"))


def wait_finished(instance, run_id: str, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        run = instance.storage.get_run(run_id)
        if run is not None and run.status.is_finished:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} not finished after {timeout}s (status {run and run.status})")
        time.sleep(POLL_S)


def samples(rows: list[dict]) -> dict[str, list[float]]:
    """Every measured value by figure, so rounds (--rounds) can be pooled before the median."""
    return {k: [round(r[k], 4) for r in rows if r[k] is not None] for k in rows[0]}


def failure_text(instance, run_id: str) -> str:
    """The error events of a failed run, for the message that stops the bench."""
    return "\n".join(f"{e.event_type}: {e.message}" for e in instance.storage.get_events(run_id)
                     if e.level == "ERROR" or "FAILURE" in str(e.event_type))[-4000:]


def reconcile(instance, label: str, timeout: float = 15.0) -> tuple[int, int]:
    """Reconcile passes of the launcher, as the daemon's run monitoring makes them (every 0.5 s here),
    until no container of this figure is left: containers of finished runs have their output stored
    and are removed. Returns (containers removed, passes made)."""
    import logging

    from runyard.launchers.base import ReconcileContext

    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] %(name)s: %(message)s")  # its warnings
    client = _docker()
    removed = passes = 0
    deadline = time.monotonic() + timeout
    while client.containers.list(all=True, filters={"label": label}) and time.monotonic() < deadline:
        if passes:
            time.sleep(0.5)
        done = instance.run_launcher.reconcile(ReconcileContext(instance=instance))
        removed += sum("removed" in line for line in done)
        passes += 1
    return removed, passes


def runyard_latency(args) -> None:
    from runyard.execution.api import prepare_run
    from runyard.instance.instance import Instance
    from runyard.workspace.loader import code_pointer_for, load_definitions

    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job("trivial_job")
    home = make_home("docker-latency", runyard_yaml(args, queued=False))
    instance = Instance.open(home)
    rows = []
    try:
        _ = instance.storage  # schema made before the clock starts
        for i in range(args.warmup + args.repeats):
            t0w, t0 = time.time(), time.perf_counter()
            run = prepare_run(instance, job, code_pointer=pointer)
            instance.submit_run(run)
            submit_s = time.perf_counter() - t0
            run = wait_finished(instance, run.run_id, args.timeout)
            observed_s = time.perf_counter() - t0
            started = container_started_at(run)
            row = {"submit_s": submit_s, "running_s": started - t0w if started else None,
                   "storage_s": run.end_time - t0w, "observed_s": observed_s,
                   "worker_start_s": run.start_time - t0w}
            tag = "warmup" if i < args.warmup else f"run {i - args.warmup + 1}"
            log(f"runyard latency {tag}: {run.status} "
                + " ".join(f"{k}={v:.3f}" for k, v in row.items() if v is not None))
            if str(run.status) != "SUCCESS":
                raise SystemExit(f"run {run.run_id} ended {run.status}")
            if i >= args.warmup:
                rows.append(row)
        removed, passes = reconcile(instance, args.label)
        log(f"{passes} reconcile pass(es) removed {removed} run container(s)")
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
    emit("docker_latency", orchestrator="runyard", job="trivial_job", launcher="docker", removed_by_reconcile=removed,
         reconcile_passes=passes, samples=samples(rows),
         **{k: stats(r[k] for r in rows if r[k] is not None) for k in rows[0]})


def runyard_queue(args) -> None:
    from daemonproc import DaemonProc

    from runyard.execution.api import prepare_run
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunFilter, RunStatus
    from runyard.workspace.loader import code_pointer_for, load_definitions

    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job("trivial_job")
    home = make_home("docker-queue", runyard_yaml(args, queued=True))
    instance = Instance.open(home)
    _ = instance.storage
    daemon = DaemonProc(home, [WORKLOAD_FILE], os.path.join(home, "daemon.log"))
    key, value = args.label.split("=", 1)
    try:
        ready_s = daemon.wait_ready()
        log(f"runyard daemon ready in {ready_s:.2f}s (pid {daemon.pid})")
        storage = instance.storage
        daemon_cpu_s = tree_cpu(daemon.pid)
        t0 = time.perf_counter()
        run_ids = []
        for _ in range(args.runs):
            run = prepare_run(instance, job, code_pointer=pointer)
            instance.submit_run(run)
            run_ids.append(run.run_id)
        enqueue_s = time.perf_counter() - t0
        log(f"enqueued {args.runs} runs in {enqueue_s:.3f}s")
        queued_f = RunFilter(run_ids=run_ids, statuses=[RunStatus.QUEUED])
        done_f = RunFilter(run_ids=run_ids, statuses=[RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED])
        all_launched = all_finished = None
        while time.perf_counter() - t0 < args.timeout:
            now = time.perf_counter() - t0
            if all_launched is None and storage.count_runs(queued_f) == 0:
                all_launched = now
            if storage.count_runs(done_f) == args.runs:
                all_finished = now
                break
            time.sleep(0.05)  # as Dagster's side polls
        if all_finished is None:
            raise SystemExit(f"not all runs finished in {args.timeout}s; see {daemon.log_path}")
        recs = storage.get_runs(RunFilter(run_ids=run_ids))
        bad = [r for r in recs if r.status != RunStatus.SUCCESS]
        if bad:
            raise SystemExit(f"{len(bad)} runs did not succeed (e.g. {bad[0].run_id}: {bad[0].status})")
        log(f"all launched at {all_launched:.2f}s, all finished at {all_finished:.2f}s")
        daemon_cpu_s = tree_cpu(daemon.pid) - daemon_cpu_s  # the daemon, its code server and their children
        log(f"the daemon's process tree used {daemon_cpu_s:.2f} CPU-s while the runs went through")
        # run monitoring's reconcile pass removes the finished runs' containers: wait for it
        removed_s = None
        client = _docker()
        while time.perf_counter() - t0 < all_finished + 30:
            if not client.containers.list(all=True, filters={"label": f"{key}={value}"}):
                removed_s = time.perf_counter() - t0
                break
            time.sleep(0.2)
        log("run monitoring removed every container " + (f"at {removed_s:.2f}s" if removed_s else
                                                           "(NOT within 30 s of the last run)"))
        starts = sorted(r.start_time for r in recs if r.start_time)
        exec_s = sorted(r.end_time - r.start_time for r in recs if r.end_time and r.start_time)
        profile = queue_profile(instance, recs)
    finally:
        daemon.stop()
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
    R = args.runs
    emit("docker_queue", orchestrator="runyard", runs=R, max_concurrent_runs=args.max_concurrent_runs,
         dequeue_interval_s=1, daemon="runyard daemon", daemon_ready_s=round(ready_s, 3),
         enqueue_s=stats([enqueue_s], 3), all_launched_s=stats([all_launched], 3),
         all_finished_s=stats([all_finished], 3), finished_per_s=stats([R / all_finished], 3),
         containers_removed_s=removed_s, daemon_cpu_s=daemon_cpu_s, run_exec_s=stats(exec_s, 3),
         worker_start_span_s=round(starts[-1] - starts[0], 3) if starts else None, profile=profile)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += used.get(p, 0.0)
        todo += [c for c, parent in parents.items() if parent == p]
    return round(total, 3)


def queue_profile(instance, recs) -> dict:
    """Where a queued run's time went, from its stored events: queued -> claimed and launched
    (RUN_STARTING; the launcher then creates and starts the container), launched -> worker running
    in its container (RUN_START), worker -> SUCCESS."""
    from runyard.storage.records import EventType

    waits, boots, execs = [], [], []
    for r in recs:
        at = {}
        for e in instance.storage.get_events(r.run_id, event_types=[EventType.RUN_STARTING, EventType.RUN_START,
                                                                     EventType.RUN_SUCCESS]):
            at.setdefault(e.event_type, e.timestamp)
        if len(at) == 3:
            waits.append(at[EventType.RUN_STARTING] - r.created_at)
            boots.append(at[EventType.RUN_START] - at[EventType.RUN_STARTING])
            execs.append(at[EventType.RUN_SUCCESS] - at[EventType.RUN_START])
    return {"queued_to_claimed_s": stats(waits, 3), "claimed_to_worker_running_s": stats(boots, 3),
            "worker_running_to_success_s": stats(execs, 3)}


def runyard_fanout(args) -> None:
    env = [f"BENCH_FANOUT_N={args.fanout_n}"]
    os.environ["BENCH_FANOUT_N"] = str(args.fanout_n)  # before the workload is imported here
    from runyard.execution.api import prepare_run
    from runyard.instance.instance import Instance
    from runyard.workspace.loader import code_pointer_for, load_definitions

    key, value = args.label.split("=", 1)
    pointer = code_pointer_for(python_file=WORKLOAD_FILE)
    job = load_definitions(pointer).get_job("fanout_job")
    run_config = {"execution": {"docker": {
        "image": args.image, "network": "host", "env_vars": env, "max_concurrent": args.max_concurrent,
        "volumes": [f"{BENCH_DIR}:{BENCH_DIR}:ro"], "labels": {key: value}}}}
    home = make_home("docker-fanout", runyard_yaml(args, queued=False, engine=True,
                                                    env=[*env, f"DOCKER_HOST=unix://{engine_socket()}"]))
    instance = Instance.open(home)
    steps = args.fanout_n + 1
    rows = []
    try:
        _ = instance.storage
        for i in range(args.warmup + args.repeats):
            t0w, t0 = time.time(), time.perf_counter()
            run = prepare_run(instance, job, code_pointer=pointer, run_config=run_config)
            instance.submit_run(run)
            run = wait_finished(instance, run.run_id, args.timeout)
            row = {"storage_s": run.end_time - t0w, "observed_s": time.perf_counter() - t0,
                   "run_wall_s": run.end_time - run.start_time,
                   "per_step_s": (run.end_time - run.start_time) / steps}
            tag = "warmup" if i < args.warmup else f"run {i - args.warmup + 1}"
            log(f"runyard fanout {tag}: {run.status} " + " ".join(f"{k}={v:.3f}" for k, v in row.items()))
            if str(run.status) != "SUCCESS":
                raise SystemExit(f"run {run.run_id} ended {run.status}:\n" + failure_text(instance, run.run_id))
            if i >= args.warmup:
                rows.append(row)
        removed, passes = reconcile(instance, args.label)
        log(f"{passes} reconcile pass(es) removed {removed} run container(s)")
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
    emit("docker_fanout", orchestrator="runyard", executor="docker", steps=steps, max_concurrent=args.max_concurrent,
         removed_by_reconcile=removed, reconcile_passes=passes, samples=samples(rows),
         **{k: stats(r[k] for r in rows) for k in rows[0]})


# ================================================================================================ #
# the comparison
# ================================================================================================ #
def _docker():
    import docker

    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                               version="1.41", timeout=60)


def build_images(dagster_py: str | None) -> tuple[str, str | None]:
    """(runyard's image, Dagster's image or None): both built only when their inputs changed."""
    def run(argv: list[str], what: str) -> str:
        log(f"image: {what} ({' '.join(os.path.relpath(a, REPO_DIR) if a.startswith(REPO_DIR) else a for a in argv)})")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-3000:]
            raise SystemExit(f"building {what} failed (exit {proc.returncode}):\n{tail}")
        return proc.stdout.strip().splitlines()[-1]

    runyard_image = run([os.path.join(REPO_DIR, "scripts", "build-images")], "runyard:dev")
    dagster_image = None
    if dagster_py:
        dagster_image = run(["bash", os.path.join(BENCH_DIR, "dagster_docker", "build_image.sh"), dagster_py],
                            "Dagster's image")
    return runyard_image, dagster_image


def executor_available() -> str | None:
    """Why runyard's docker executor cannot be measured, or None when it can."""
    if not os.path.exists(EXECUTOR_MODULE):
        return f"runyard's docker executor is not written yet ({os.path.relpath(EXECUTOR_MODULE, REPO_DIR)} missing)"
    from runyard.plugins import get_registry

    try:
        get_registry("executor").get("docker")
    except Exception as exc:  # noqa: BLE001 - any way of not being there
        return f"runyard's docker executor is not registered: {exc}"
    return None


def containers_with(label: str) -> list:
    return _docker().containers.list(all=True, filters={"label": label})


def remove_containers(label: str) -> int:
    left = containers_with(label)
    for c in left:
        try:
            c.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - gone already, or reported below
            log(f"could not remove container {c.name}: {exc}")
    return len(left)


def side_args(figure: str, quick: bool) -> list[str]:
    if figure == "latency":
        return ["--repeats", "3" if quick else "5", "--warmup", "1"]
    if figure == "queue":
        return ["--runs", "20" if quick else "50", "--max-concurrent-runs", "8"]
    return ["--repeats", "1" if quick else "3", "--warmup", "1", "--fanout-n", "20", "--max-concurrent", "4"]


def run_side(side: str, figure: str, argv: list[str], env: dict, out_dir: str) -> list[dict]:
    name, n = f"{side}-{figure}", 1
    while os.path.exists(os.path.join(out_dir, name + ".err")):  # a later round
        n += 1
        name = f"{side}-{figure}-{n}"
    log(f"== {side} {figure}: {' '.join(a if len(a) < 80 else a[:77] + '...' for a in argv[1:])}")
    start = time.perf_counter()
    with open(os.path.join(out_dir, name + ".err"), "w") as err:
        proc = subprocess.run(argv, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    with open(os.path.join(out_dir, name + ".out"), "w") as f:
        f.write(proc.stdout)
    records = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    for rec in records:
        rec["side"] = side
    log(f"   {'ok' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'} in "
        f"{time.perf_counter() - start:.1f}s, {len(records)} result(s)")
    if proc.returncode != 0:
        with open(os.path.join(out_dir, name + ".err")) as f:
            print("\n".join("   | " + line for line in f.read().splitlines()[-15:]), flush=True)
    return records


def measure(figure: str, side: str, python: str, script_argv: list[str], image: str, admin: str, stamp: str,
            quick: bool, env: dict, out_dir: str) -> tuple[list[dict], int]:
    """One side of one figure on a fresh database; returns its records and the containers it left
    (counted by the figure's label, then removed)."""
    from runyard_storage_postgres.testing import create_database, drop_database

    label = f"{BENCH_LABEL}={stamp}-{side}-{figure}"
    url = create_database(admin, prefix=f"{side}_bench_docker")
    try:
        argv = [python, *script_argv, figure, "--pg-url", url, "--image", image, "--label", label,
                *side_args(figure, quick)]
        records = run_side(side, figure, argv, env, out_dir)
    finally:
        left = remove_containers(label)
        drop_database(url, admin)
    log(f"   {side} {figure}: {left} container(s) left behind, removed now")
    return records, left


def pick(records: list[dict], side: str, benchmark: str) -> list[dict]:
    """The records of one side's figure: one per round."""
    return [r for r in records if r.get("side") == side and r.get("benchmark") == benchmark]


def med(recs: list[dict], key: str) -> float | None:
    """The median over every round: of the pooled samples where the records carry them, else of
    each round's median (or value)."""
    values: list[float] = []
    for rec in recs:
        if key in rec.get("samples", {}):
            values += rec["samples"][key]
        elif isinstance(rec.get(key), dict) and rec[key].get("median") is not None:
            values.append(rec[key]["median"])
        elif isinstance(rec.get(key), (int, float)):
            values.append(rec[key])
    return statistics.median(values) if values else None


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"


def table(records: list[dict], left: dict[tuple[str, str], int], runs: int, notes: dict[str, str]) -> str:
    r, d = "runyard", "dagster"
    lat, dlat = pick(records, r, "docker_latency"), pick(records, d, "docker_latency")
    q, dq = pick(records, r, "docker_queue"), pick(records, d, "docker_queue")
    fan, dfan = pick(records, r, "docker_fanout"), pick(records, d, "docker_fanout")
    steps = (fan or dfan or [{}])[0].get("steps", 21)
    rows = [
        ("trivial run, submit -> container running", med(lat, "running_s"), med(dlat, "running_s"), None),
        ("trivial run, submit -> run SUCCESS stored", med(lat, "storage_s"), med(dlat, "storage_s"), 0.2),
        ("  of which the submit call (container created and started)", med(lat, "submit_s"), med(dlat, "submit_s"),
         None),
        (f"{runs} queued runs, max_concurrent_runs 8, enqueue -> all SUCCESS", med(q, "all_finished_s"),
         med(dq, "all_finished_s"), 0.1),
        ("  queued runs: enqueue -> none left QUEUED", med(q, "all_launched_s"), med(dq, "all_launched_s"), None),
        ("  queued runs: enqueueing alone", med(q, "enqueue_s"), med(dq, "enqueue_s"), None),
        ("  queued runs: CPU of the daemon's process tree (daemon, code server) meanwhile, CPU-s",
         med(q, "daemon_cpu_s"), med(dq, "daemon_cpu_s"), None),
        (f"fan-out {steps - 1} ops + 1 fan-in on the docker executor (max_concurrent 4), run wall",
         med(fan, "run_wall_s"), med(dfan, "run_wall_s"), None),
        ("  per step (run wall / steps)", med(fan, "per_step_s"), med(dfan, "per_step_s"), 0.2),
        ("  fan-out run, submit -> SUCCESS stored", med(fan, "storage_s"), med(dfan, "storage_s"), None),
    ]
    out = ["| figure | runyard | dagster | ratio (runyard/dagster) | goal | met? |", "|---|---|---|---|---|---|"]
    for name, ry, dg, goal in rows:
        if ry is None and dg is None:
            continue
        ratio = ry / dg if ry is not None and dg else None
        rtxt = f"{ratio:.3f} (1/{1 / ratio:.1f})" if ratio else "—"
        gtxt = f"≤ 1/{1 / goal:g}" if goal else "—"
        met = "—" if goal is None or ratio is None else ("yes" if ratio <= goal else "NO")
        if name.strip().startswith("per step") and ry is not None:  # and an absolute goal
            gtxt += " and < 0.5 s"
            met = "yes" if met == "yes" and ry < 0.5 else ("NO" if met != "—" or ry >= 0.5 else met)
        out.append(f"| {name} | {fmt(ry)} | {fmt(dg)} | {rtxt} | {gtxt} | {met} |")
    for figure in FIGURES:
        counts = [left.get((side, figure)) for side in (r, d)]
        if any(c is not None for c in counts):
            cells = ["—" if c is None else str(c) for c in counts]
            out.append(f"| containers left after the {figure} figure (counted, then removed) | {cells[0]} | "
                       f"{cells[1]} | — | 0 | {'yes' if counts[0] == 0 else ('NO' if counts[0] else '—')} |")
    for figure, note in notes.items():
        out.append(f"| {figure}: {note} | — | — | — | — | — |")
    return "\n".join(out)


def compare(args) -> int:
    """Every figure; a private engine this run had to start is stopped again at the end."""
    engine_script = os.path.join(REPO_DIR, "scripts", "docker-engine")
    started_engine = False
    if not os.environ.get("DOCKER_HOST"):
        started_engine = subprocess.run([engine_script, "status"], capture_output=True).returncode != 0
        proc = subprocess.run([engine_script, "start"], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"no Docker engine: scripts/docker-engine start failed:\n{proc.stderr}")
        os.environ["DOCKER_HOST"] = proc.stdout.strip().splitlines()[-1].split("=", 1)[1]
    try:
        return _compare(args)
    finally:
        if started_engine:
            subprocess.run([engine_script, "stop"], capture_output=True, timeout=120)


def _compare(args) -> int:
    from compare import find_dagster_python

    from runyard_storage_postgres.testing import require_server

    admin = require_server(args.pg_url)
    only = [f for f in args.only.split(",") if f]
    dagster_py, note = (None, "skipped (--skip-dagster)") if args.skip_dagster else find_dagster_python(
        args.dagster_python)
    if dagster_py is None:
        log(f"NOTE: Dagster not measured: {note}. `bash bench/setup_dagster.sh` makes its virtualenv.")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.abspath(args.out or os.path.join(BENCH_DIR, "results", f"docker-{stamp}"))
    os.makedirs(out_dir, exist_ok=True)
    runyard_image, dagster_image = build_images(dagster_py)
    log(f"images: {runyard_image}, {dagster_image or '(no Dagster)'}; logs and results: {out_dir}")

    env = {**os.environ, "BENCH_RESULTS": os.path.join(out_dir, "results.jsonl")}
    dagster_env = {**env, "PYTHONPATH": os.pathsep.join([os.path.join(SHARED_BENCH, "dagster"),
                                                         os.path.join(SHARED_BENCH, "common")]),
                   "BENCH_TMP": os.path.join(tmp_root(), f"dagbench-docker-{stamp}")}
    records: list[dict] = []
    left: dict[tuple[str, str], int] = {}
    notes: dict[str, str] = {}
    for figure in FIGURES:
        if figure not in only:
            continue
        if figure == "fanout":
            why = executor_available()
            if why:
                notes[figure] = f"not measured: {why}"
                log(f"fanout: {notes[figure]}")
                continue
        for round_ in range(args.rounds):  # runyard, Dagster, runyard, Dagster...: load shifts hit both
            tag = f"{stamp}-r{round_ + 1}" if args.rounds > 1 else stamp
            recs, n = measure(figure, "runyard", sys.executable, [os.path.abspath(__file__), "--runyard"],
                              runyard_image, admin, tag, args.quick, env, out_dir)
            records += recs
            left[("runyard", figure)] = left.get(("runyard", figure), 0) + n
            if dagster_py:
                recs, n = measure(figure, "dagster", dagster_py, [DAGSTER_SIDE], dagster_image, admin, tag,
                                  args.quick, dagster_env, out_dir)
                records += recs
                left[("dagster", figure)] = left.get(("dagster", figure), 0) + n
    shutil.rmtree(dagster_env["BENCH_TMP"], ignore_errors=True)
    every = containers_with(f"{BENCH_LABEL}")
    mine = [c.name for c in every if c.labels.get(BENCH_LABEL, "").startswith(stamp)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (f"runyard vs Dagster on Docker ({'quick' if args.quick else 'full'} run): "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} cores; load average {load}; "
              f"images {runyard_image} and {dagster_image or '—'}; {note if dagster_py else 'Dagster not measured'}")
    runs = 20 if args.quick else 50
    pooled = f" over {args.rounds} rounds" if args.rounds > 1 else ""
    report = "\n\n".join([header, table(records, left, runs, notes),
                          f"Times are medians{pooled}; ratio = runyard / dagster, lower is better. Containers left: "
                          "counted by the bench's label once a figure ended, then removed by this script "
                          f"(containers of this bench still on the engine now: {len(mine)}). "
                          "Not a test: nothing fails on a figure."])
    print("\n" + report, flush=True)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(report + "\n")
    return 0 if all(pick(records, "runyard", f"docker_{f}") for f in only if f not in notes) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description="runyard vs Dagster on Docker (issue 11)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 20 queued runs")
    ap.add_argument("--only", default=",".join(FIGURES), help=f"comma list of {', '.join(FIGURES)}")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each figure N times, the sides alternating; medians pool every round")
    ap.add_argument("--skip-dagster", action="store_true")
    ap.add_argument("--dagster-python", help="python of a virtualenv with dagster and dagster-docker")
    ap.add_argument("--pg-url", default=os.environ.get("RUNYARD_BENCH_PG_URL", DEFAULT_PG),
                    help="a role that may CREATE DATABASE")
    ap.add_argument("--out", help="where logs and results go (default bench/results/docker-<UTC time>)")
    # runyard's side of one figure (what the comparison runs in a subprocess)
    ap.add_argument("--runyard", choices=FIGURES, help=argparse.SUPPRESS)
    ap.add_argument("--image", default="runyard:dev", help=argparse.SUPPRESS)
    ap.add_argument("--label", default=f"{BENCH_LABEL}=manual", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=50, help=argparse.SUPPRESS)
    ap.add_argument("--max-concurrent-runs", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--fanout-n", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--max-concurrent", type=int, default=4, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=600, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for f in args.only.split(","):
        if f and f not in FIGURES:
            ap.error(f"unknown figure {f!r} (choose from {', '.join(FIGURES)})")
    if args.runyard:
        {"latency": runyard_latency, "queue": runyard_queue, "fanout": runyard_fanout}[args.runyard](args)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
