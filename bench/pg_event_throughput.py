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
  connections  W run workers (default 4) launched at once through the ``process`` launcher by this
               process (acting as the CLI, following the runs' events with ``wait_for_events``), each
               running a job that logs for a few seconds. ``pg_stat_activity`` is sampled every 10 ms;
               the peak number of sessions on the bench database is compared with the sum of the
               configured per-process maximum (``pool_size + max_overflow + 1`` LISTEN connection) of
               the processes involved. (A web UI and a daemon do not exist yet, so they are not part
               of this figure.)

Each run uses a fresh database ``runyard_bench_<pid>`` on ``--pg-url`` (default
``$RUNYARD_BENCH_PG_URL``, else ``postgresql://postgres@127.0.0.1:5432/postgres``: a role that may
CREATE DATABASE), dropped at the end. One ``RESULT {json}`` line per figure set on stdout.

  python bench/pg_event_throughput.py [--benchmarks events,claims,connections] [-k 20000]
      [--apis store_event,sink,store_events] [--repeats 3] [--max-seconds 60] [--batch 500]
      [--runs 100] [--claimers 4] [--claim-batch 10] [--workers 4] [--pool-size 2] [--max-overflow 1]
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
def bench_connections(url: str, args) -> None:
    import psycopg2

    from runyard.instance.instance import Instance
    from runyard.workspace.loader import code_pointer_for, load_definitions

    app_env = "RUNYARD_BENCH_APP"
    yaml_text = storage_yaml(url, pool_size=args.pool_size, max_overflow=args.max_overflow,
                             application_name=f"{{env: {app_env}, default: ry-run-worker}}")
    home = make_home("pg_conns", yaml_text + "run_launcher:\n  process:\n    warm: false\n")
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

    os.environ[app_env] = "ry-cli"  # this process's own connections (resolved when storage is built)
    instance = Instance.open(home)
    storage = instance.storage
    del os.environ[app_env]  # the run workers inherit the environment: they get the default name
    pointer = code_pointer_for(python_file=defs)
    job = load_definitions(pointer).get_job("chatty_job")
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        from runyard.execution.api import prepare_run

        runs = [prepare_run(instance, job, code_pointer=pointer) for _ in range(args.workers)]
        t0 = time.perf_counter()
        for run in runs:
            instance.submit_run(run)

        def follow(run_id: str) -> None:  # like a UI following a run's live log
            cursor = None
            while True:
                for e in storage.get_events(run_id, after_id=cursor):
                    cursor = e.id
                current = storage.get_run(run_id)
                if current.status.is_finished:
                    return
                storage.wait_for_events(run_id, cursor, timeout=1.0)

        followers = [threading.Thread(target=follow, args=(r.run_id,)) for r in runs]
        for t in followers:
            t.start()
        for t in followers:
            t.join(300)
        wall = time.perf_counter() - t0
        statuses = [str(storage.get_run(r.run_id).status) for r in runs]
        events = sum(len(storage.get_events(r.run_id)) for r in runs)
    finally:
        stop.set()
        sampler.join(5)
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
    if any(s != "SUCCESS" for s in statuses):
        raise SystemExit(f"connections: runs ended {statuses}")
    totals = [sum(s.values()) for s in samples]
    peak = max(totals) if totals else 0
    peak_by_app: dict[str, int] = {}
    for s in samples:
        for app, n in s.items():
            peak_by_app[app] = max(peak_by_app.get(app, 0), n)
    processes = 1 + args.workers
    configured = processes * per_process
    log(f"connections: {args.workers} run workers + this process (the CLI, following {args.workers} runs' "
        f"events): peak {peak} sessions in pg_stat_activity (by application: {peak_by_app}); configured "
        f"maximum {processes} processes x (pool_size {args.pool_size} + max_overflow {args.max_overflow} "
        f"+ 1 listener) = {configured}; {events} events in {wall:.2f}s; {len(samples)} samples")
    emit("pg_connections", orchestrator="runyard", storage="postgres", workers=args.workers,
         processes=processes, pool_size=args.pool_size, max_overflow=args.max_overflow,
         configured_max=configured, peak_connections=peak, peak_by_application=peak_by_app,
         within_bounds=peak <= configured, samples=len(samples), wall_s=round(wall, 3), events=events,
         note="web UI and daemon not included: they do not exist yet")
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
            bench_connections(url, args)
    finally:
        drop_database(url, admin)


if __name__ == "__main__":
    main()
