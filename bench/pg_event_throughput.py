#!/usr/bin/env python
"""pg_event_throughput: runyard on PostgreSQL (runyard-storage-postgres) — event writes, queue claims,
and the connections a set of processes holds.

Benchmarks (``--benchmarks``):

  events       K events (default 20,000) into one run's log, events/s, the same three APIs as
               ``event_throughput.py``: ``store_event`` (one call, one transaction per event — the
               shape of Dagster's per-call ``store_event``), ``sink`` (what a run worker does:
               ``EventSink.emit`` per event, batched writes), ``store_events`` (ready batches).
               Dagster's twin: ``event_throughput.py --storages postgres --apis store_event``
               (PostgresEventLogStorage, NullPool: one new connection per write).
  claims       R queued runs (default 100) claimed by C competing claimer processes (default 4), each
               looping ``claim_queued_runs(name, limit=--claim-batch)`` until the queue is empty. The
               processes are started and connected first; the clock runs from the "go" signal until
               the last claim returns. Checks that every run was claimed exactly once.
  connections  A web UI (``runyard webui``), a daemon (``runyard daemon``) and W run workers (default 4)
               on one database. W HTTP clients launch a run each through the web UI's GraphQL API
               (queued coordinator) and follow its events by long poll while B more (``--browsers``,
               default 8) reload the run list in a loop; the daemon dequeues the runs and starts the
               workers, each running a job that logs for a few seconds. ``pg_stat_activity`` is
               sampled every 10 ms; the peak number of sessions on the bench database is compared with
               the sum of the configured per-process maximum (``pool_size + max_overflow + 1`` LISTEN
               connection) of the 2 + W processes.

Each run uses a fresh database ``runyard_bench_<pid>`` on ``--pg-url`` (default
``$RUNYARD_BENCH_PG_URL``, else ``postgresql://postgres@127.0.0.1:5432/postgres``: a role that may
CREATE DATABASE), dropped at the end. One ``RESULT {json}`` line per figure set on stdout.

  python bench/pg_event_throughput.py [--benchmarks events,claims,connections] [-k 20000]
      [--apis store_event,sink,store_events] [--repeats 3] [--max-seconds 60] [--batch 500]
      [--runs 100] [--claimers 4] [--claim-batch 10] [--workers 4] [--browsers 8] [--webui-threads 8]
      [--pool-size 2] [--max-overflow 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import threading
import time

from event_throughput import make_events, write_events
from rybench import emit, log, make_home, stats

BENCHMARKS = ("events", "claims", "connections")
APIS = ("store_event", "sink", "store_events")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

CHATTY = '''
import time

from runyard import job, op


@op
def chatty(context) -> None:
    for i in range({n}):
        context.log.info(f"chatter {{i}}")
        if i % 20 == 0:
            time.sleep(0.05)


@job
def chatty_job():
    chatty()
'''


def storage_yaml(url: str, **extra) -> str:
    lines = ["storage:", "  postgres:", f"    url: '{url}'"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ #
# events
# ------------------------------------------------------------------------------------------------ #
def bench_events(url: str, args) -> None:
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunStatus

    home = make_home("pg_events", storage_yaml(url))
    instance = Instance.open(home)
    storage = instance.storage
    log(f"events: storage={storage.describe()}")
    try:
        for api in [a for a in args.apis.split(",") if a]:
            rates, walls, counts = [], [], []
            for r in range(args.repeats):
                run = instance.create_run(job_name="bench_job", status=RunStatus.STARTED)
                events = make_events(run.run_id, args.k) if api != "sink" else None
                t0 = time.perf_counter()
                n = write_events(api, storage, run.run_id, events, args.k, args.batch, t0 + args.max_seconds)
                wall = time.perf_counter() - t0
                stored = len(storage.get_events(run.run_id))
                if stored != n:
                    raise SystemExit(f"{api}: wrote {n} events but storage holds {stored}")
                rates.append(n / wall)
                walls.append(wall)
                counts.append(n)
                log(f"postgres {api:13s} repeat {r + 1}: {n} events in {wall:.3f}s = {n / wall:,.0f} ev/s")
                storage.delete_run(run.run_id)
            emit("event_throughput", orchestrator="runyard", storage="postgres", api=api,
                 batch=(args.batch if api != "store_event" else None), k_target=args.k,
                 max_seconds=args.max_seconds, events_written=stats(counts, 0),
                 events_per_s=stats(rates, 1), wall_s=stats(walls, 4))
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ #
# claims
# ------------------------------------------------------------------------------------------------ #
def _claimer(url: str, name: str, batch: int, ready, go, out) -> None:
    from runyard_storage_postgres.config import PostgresStorageConfig
    from runyard_storage_postgres.storage import PostgresRunStorage

    storage = PostgresRunStorage(PostgresStorageConfig(url=url, pool_size=1, max_overflow=0))
    storage.get_run("warm-up")  # connect before the clock starts
    ready.put(name)
    go.wait(60)
    claimed, latencies, empty = [], [], 0
    while empty < 2:
        t = time.perf_counter()
        got = storage.claim_queued_runs(name, limit=batch)
        latencies.append(time.perf_counter() - t)
        if got:
            claimed.extend(r.run_id for r in got)
            empty = 0
        else:
            empty += 1
    done_at = time.time()
    storage.dispose()
    out.put((name, claimed, latencies, done_at))


def bench_claims(url: str, args) -> None:
    from runyard.storage.records import RunRecord, RunStatus
    from runyard_storage_postgres.config import PostgresStorageConfig
    from runyard_storage_postgres.storage import PostgresRunStorage

    storage = PostgresRunStorage(PostgresStorageConfig(url=url))
    storage.check_ready()
    ctx = multiprocessing.get_context("spawn")
    totals, per_claim = [], []
    try:
        for r in range(args.repeats):
            for i in range(args.runs):
                storage.add_run(RunRecord(run_id=f"claim-{r}-{i:04d}", job_name="bench_job",
                                          status=RunStatus.QUEUED, tags={"runyard/priority": str(i % 3)},
                                          created_at=1000.0 + i))
            ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=_claimer, args=(url, f"claimer-{c}", args.claim_batch, ready, go, out))
                     for c in range(args.claimers)]
            for p in procs:
                p.start()
            for _ in procs:
                ready.get(timeout=60)
            t0 = time.time()
            go.set()
            results = [out.get(timeout=120) for _ in procs]
            for p in procs:
                p.join(30)
            total = max(done for *_, done in results) - t0
            claimed = [rid for _, ids, _, _ in results for rid in ids]
            expected = {f"claim-{r}-{i:04d}" for i in range(args.runs)}
            if sorted(claimed) != sorted(expected):
                raise SystemExit(f"claims: {len(claimed)} claims for {len(expected)} runs "
                                 f"({len(set(claimed))} distinct): not exactly once")
            share = {name: len(ids) for name, ids, _, _ in results}
            lat = [x for _, _, lats, _ in results for x in lats]
            totals.append(total)
            per_claim.extend(lat)
            log(f"claims repeat {r + 1}: {args.runs} runs claimed exactly once by {args.claimers} processes "
                f"in {total:.4f}s (per claimer: {share}; median claim call {sorted(lat)[len(lat) // 2] * 1e3:.2f} ms)")
        emit("queue_claims", orchestrator="runyard", storage="postgres", runs=args.runs,
             claimers=args.claimers, claim_batch=args.claim_batch, total_s=stats(totals, 4),
             runs_per_s=stats([args.runs / t for t in totals], 1),
             claim_call_ms=stats([x * 1e3 for x in per_claim], 3))
    finally:
        storage.dispose()


# ------------------------------------------------------------------------------------------------ #
# connections
# ------------------------------------------------------------------------------------------------ #
def _start_service(argv: list[str], home: str, app_name: str, ready: str, cwd: str):
    """A runyard service subprocess whose storage connections carry ``app_name``; returns (proc, the
    first stdout line holding ``ready``)."""
    import subprocess
    import sys

    env = {**os.environ, "RUNYARD_HOME": home, "RUNYARD_BENCH_APP": app_name, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "runyard", *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if ready in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, line
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"connections: runyard {' '.join(argv)} did not start: {proc.stderr.read()}")


def bench_connections(url: str, args) -> None:
    """The deployment of issue 4's figure: a web UI, a daemon and W run workers on one database.

    The web UI (``runyard webui``, ``--webui-threads`` request threads) is driven over HTTP as
    browsers would: W clients launch a run each (the queued coordinator stores it), then follow its
    events by long poll, while ``--browsers`` more clients reload the run list as fast as they can.
    The daemon (``runyard daemon``) dequeues the runs and starts W run workers through the process
    launcher. Every process has the same pool settings; the configured ceiling is processes x
    (pool_size + max_overflow + 1 LISTEN connection)."""
    import json
    import signal
    import urllib.request

    import psycopg2

    app_env = "RUNYARD_BENCH_APP"
    yaml_text = storage_yaml(url, pool_size=args.pool_size, max_overflow=args.max_overflow,
                             application_name=f"{{env: {app_env}, default: ry-other}}")
    yaml_text += ("run_coordinator:\n  queued:\n    max_concurrent_runs: 10\n"
                  "run_launcher:\n  process:\n    env: {RUNYARD_BENCH_APP: ry-run-worker}\n"
                  "daemon:\n  schedule_interval_seconds: 0.2\n")
    home = make_home("pg_conns", yaml_text)
    defs = os.path.join(home, "chatty.py")
    with open(defs, "w") as f:
        f.write(CHATTY.format(n=args.chatter))
    dbname = url.rsplit("/", 1)[1].split("?")[0]
    per_process = args.pool_size + args.max_overflow + 1

    samples: list[dict[str, int]] = []
    stop = threading.Event()

    def sample() -> None:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s "
                            "AND pid <> pg_backend_pid() GROUP BY 1", (dbname,))
                samples.append(dict(cur.fetchall()))
                time.sleep(0.01)
        conn.close()

    from runyard.instance.instance import Instance

    Instance.open(home).storage.dispose()  # create the schema before the services race to
    procs = []
    statuses: list[str] = []
    errors: list[str] = []
    requests = 0
    try:
        webui, line = _start_service(["webui", "-f", defs, "--port", "0", "--threads", str(args.webui_threads)],
                                     home, "ry-webui", "serving on", home)
        procs.append(webui)
        base = line.split("serving on ", 1)[1].split()[0]
        daemon, _ = _start_service(["daemon"], home, "ry-daemon", "runyard daemon:", home)
        procs.append(daemon)

        def gql(query: str, variables: dict | None = None) -> dict:
            nonlocal requests
            body = json.dumps({"query": query, "variables": variables}).encode()
            req = urllib.request.Request(base + "/graphql", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                body = json.load(resp)
            requests += 1
            if body.get("errors"):
                raise RuntimeError(body["errors"])
            return body["data"]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        done = threading.Event()

        def follower() -> None:  # a browser on a run page: launch, then long-poll the live log
            try:
                run = gql("""mutation { launchRun(location: "chatty", jobName: "chatty_job") {
                             ok message run { runId } } }""")["launchRun"]
                if not run["ok"]:
                    raise RuntimeError(run["message"])
                run_id, cursor = run["run"]["runId"], None
                while True:
                    page = gql("""query($id: ID!, $a: Int) { runEvents(runId: $id, afterId: $a, waitSeconds: 10) {
                                  cursor runStatus finished events { id } } }""", {"id": run_id, "a": cursor})
                    page = page["runEvents"]
                    cursor = page["cursor"]
                    if page["finished"] and not page["events"]:
                        statuses.append(page["runStatus"])
                        return
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{type(exc).__name__}: {exc}")

        def browser() -> None:  # a browser on the run list, refreshing as fast as it can
            while not done.is_set():
                try:
                    gql("{ runs(limit: 50) { count runs { runId status steps { status } } } }")
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return

        t0 = time.perf_counter()
        followers = [threading.Thread(target=follower) for _ in range(args.workers)]
        browsers = [threading.Thread(target=browser) for _ in range(args.browsers)]
        for t in followers + browsers:
            t.start()
        for t in followers:
            t.join(300)
        done.set()
        for t in browsers:
            t.join(30)
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except Exception:  # noqa: BLE001
                p.kill()
        shutil.rmtree(home, ignore_errors=True)
    if errors or len(statuses) != args.workers or any(s != "SUCCESS" for s in statuses):
        raise SystemExit(f"connections: runs ended {statuses}; errors: {errors[:3]}")
    totals = [sum(s.values()) for s in samples]
    peak = max(totals) if totals else 0
    peak_by_app: dict[str, int] = {}
    for s in samples:
        for app, n in s.items():
            peak_by_app[app] = max(peak_by_app.get(app, 0), n)
    processes = 2 + args.workers
    configured = processes * per_process
    log(f"connections: web UI ({args.webui_threads} threads, {args.workers} run pages long-polling + "
        f"{args.browsers} run lists refreshing: {requests} GraphQL requests) + daemon + {args.workers} run "
        f"workers: peak {peak} sessions in pg_stat_activity (by application: {peak_by_app}); configured "
        f"maximum {processes} processes x (pool_size {args.pool_size} + max_overflow {args.max_overflow} "
        f"+ 1 listener) = {configured}; {wall:.2f}s; {len(samples)} samples")
    emit("pg_connections", orchestrator="runyard", storage="postgres", workers=args.workers,
         processes=processes, pool_size=args.pool_size, max_overflow=args.max_overflow,
         webui_threads=args.webui_threads, graphql_requests=requests, configured_max=configured,
         peak_connections=peak, peak_by_application=peak_by_app, within_bounds=peak <= configured,
         samples=len(samples), wall_s=round(wall, 3))
    if peak > configured:
        raise SystemExit(f"connections: peak {peak} above the configured maximum {configured}")


# ------------------------------------------------------------------------------------------------ #
def main() -> None:
    ap = argparse.ArgumentParser(description="runyard on PostgreSQL: events/s, queue claims, connection peak")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--pg-url", default=os.environ.get("RUNYARD_BENCH_PG_URL") or DEFAULT_PG_URL,
                    help="a role that may CREATE DATABASE")
    ap.add_argument("--apis", default=",".join(APIS))
    ap.add_argument("-k", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--claimers", type=int, default=4)
    ap.add_argument("--claim-batch", type=int, default=10)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--browsers", type=int, default=8, help="run-list clients hammering the web UI (connections)")
    ap.add_argument("--webui-threads", type=int, default=8)
    ap.add_argument("--chatter", type=int, default=2000, help="log events per run (connections)")
    ap.add_argument("--pool-size", type=int, default=2)
    ap.add_argument("--max-overflow", type=int, default=1)
    args = ap.parse_args()
    chosen = [b for b in args.benchmarks.split(",") if b]
    for b in chosen:
        if b not in BENCHMARKS:
            ap.error(f"unknown benchmark {b!r} (choose from {', '.join(BENCHMARKS)})")

    from runyard_storage_postgres.testing import create_database, drop_database, require_server

    admin = require_server(args.pg_url)
    url = create_database(admin, prefix="runyard_bench")
    log(f"database {url.rsplit('/', 1)[1]} on {admin.rsplit('@', 1)[-1]}")
    try:
        if "events" in chosen:
            bench_events(url, args)
        if "claims" in chosen:
            bench_claims(url, args)
        if "connections" in chosen:
            # a database of its own: the claims bench leaves 100 claimed runs that would count
            # against the queue's max_concurrent_runs
            conns_url = create_database(admin, prefix="runyard_bench_conns")
            try:
                bench_connections(conns_url, args)
            finally:
                drop_database(conns_url, admin)
    finally:
        drop_database(url, admin)


if __name__ == "__main__":
    main()
