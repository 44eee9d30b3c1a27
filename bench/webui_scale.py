#!/usr/bin/env python
"""webui_scale: the web UI over many runs — runyard's twin of Dagster's graphql_runs_query.py, and
the runs list at a million runs (issue 14).

``--mode twin`` (default): what ``../shared/bench-dagster/dagster/graphql_runs_query.py`` measures,
on runyard: a fresh SQLite home holding ``--runs`` (10,000) finished runs and one run of 600 events;
per repeat ``runyard webui -f bench/workload.py`` is started, and we time spawn -> first 200 on
``/healthz`` and spawn -> first successful ``runs(limit: 50)``; then ``--requests`` ``runs(limit:
50)`` queries (the fields a runs table shows, as Dagster's script asks) and ``--requests``
``runEvents(limit: 500)`` pages, one after another (p50/p95); then the RSS of the web UI process
and of its code server. With the Dagster virtualenv present (see compare.py) Dagster's script runs
right after, in the same invocation, then runyard's repeats once more (a machine's speed can drift
over the minutes Dagster's script takes: runyard's figures are the median of the repeats on both
sides of it), and the ratios are printed. Goals: startup to GraphQL ready
<= 1/5 of Dagster's, runs query p50 <= 1/3, a 500-event page p50 <= 1/3, idle RSS <= 1/2.

``--mode scale``: ``--scale-runs`` (1,000,000) runs bulk-inserted straight through SQL (COPY on
PostgreSQL) into a scratch home (``--storage sqlite``) or a scratch database (``--storage
postgres``, created on ``$RUNYARD_TEST_PG_URL`` or postgresql://postgres@127.0.0.1:5432/postgres
and dropped afterwards). Runs: 20 jobs, statuses 80 % SUCCESS / 15 % FAILURE / 5 % CANCELED
(independent of the job), tag ``team`` with 7 values (~143,000 runs each: not selective), tag ``rare=yes`` on 100 runs
(selective), 1 run in 50 from one of 5 schedules, 1 in 50 launched by a user. Then the ``/runs``
page (counts per status included) and the GraphQL ``runs`` query (no count) are timed per filter —
none, job, status, two statuses, selective tag, common tag, launched-by, status + common tag — and
``/healthz``; p50/p95 of ``--requests`` each; and per filter the chips' ``statusCounts`` query (which
the page loads after the list), ``--requests``/5 times. With ``--run-events`` (100,000), one run of
that many events is added and its run page (``/runs/<id>``) and a ``runEvents(limit: 500)`` page are
timed too (the run page's own goal: p95 < 300 ms). Goals: runs page p95 < 300 ms, /healthz p95 < 100 ms.

Usage: python bench/webui_scale.py [--mode twin|scale] [--runs 10000] [--requests 50]
       [--repeats 3] [--storage sqlite|postgres] [--scale-runs 1000000] [--skip-dagster]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from rybench import BENCH_DIR, emit, log, stats
from webuibench import WebuiProcess, children, dagster_result, gql, http, ms, rss_kib, scratch_home, seed_runs, timed

WORKLOAD = os.path.join(BENCH_DIR, "workload.py")

RUNS_QUERY = """query BenchRuns($limit: Int) { runs(limit: $limit) { cursor runs {
  runId status jobName location parentRunId rootRunId stepKeysToExecute canTerminate
  createdAt startTime endTime tags { key value } } } }"""
EVENTS_QUERY = """query BenchLogs($runId: ID!, $limit: Int) { runEvents(runId: $runId, limit: $limit) {
  cursor events { runId message timestamp level stepKey eventType } } }"""
FILTERED_QUERY = """query($statuses: [String!], $jobName: String, $tags: [TagInput!], $launchedBy: String) {
  runs(statuses: $statuses, jobName: $jobName, tags: $tags, launchedBy: $launchedBy, limit: 50) {
    cursor runs { runId status jobName createdAt startTime endTime tags { key value } } } }"""

COUNTS_QUERY = """query($statuses: [String!], $jobName: String, $tags: [TagInput!], $launchedBy: String) {
  runs(statuses: $statuses, jobName: $jobName, tags: $tags, launchedBy: $launchedBy, limit: 1) {
    statusCounts { status count } } }"""


# ---- seeding ------------------------------------------------------------------------------------
def seed_events(storage, n_events: int) -> str:
    """One run with n_events log events (the twin's 500-event page and the scale mode's big run)."""
    from runyard.storage.records import Event, RunRecord, RunStatus

    run_id = uuid.uuid4().hex
    now = time.time()
    storage.add_run(RunRecord(run_id=run_id, job_name="fanout_job", status=RunStatus.SUCCESS, created_at=now,
                              start_time=now, end_time=now + 5))
    for start in range(0, n_events, 10_000):
        storage.store_events([Event(run_id=run_id, event_type="STEP_START", step_key=f"leaf_{i % 200}",
                                    message=f"step leaf_{i % 200} started ({i})", timestamp=now + i / 1000)
                              for i in range(start, min(n_events, start + 10_000))])
    return run_id


# ---- twin of Dagster's graphql_runs_query.py ------------------------------------------------------
def twin(args, rows: list[dict] | None = None, label: str = "") -> dict:
    """Measure ``args.repeats`` startups; ``rows`` holds earlier repeats to report with these (the
    repeats on both sides of Dagster's run: this machine's speed drifts over minutes, and Dagster's
    script takes several)."""
    from runyard.instance.instance import Instance

    rows = [] if rows is None else rows
    with scratch_home("webui-twin", "sqlite") as (home, _):
        inst = Instance.open(home=home)
        inst.storage.check_ready()
        t = time.perf_counter()
        log_run = seed_events(inst.storage, 600)
        inst.storage.dispose()
        seed_runs(home, None, args.runs)
        log(f"seed: {args.runs} runs + a 600-event run in {time.perf_counter() - t:.1f}s")
        for rep in range(1, args.repeats + 1):
            srv = WebuiProcess(home, WORKLOAD, f"webui-{rep}.log")
            events = {"runId": log_run, "limit": args.log_page}

            def runs_query(base=srv.base) -> dict:
                return gql(base, RUNS_QUERY, {"limit": 50})

            def events_page(base=srv.base) -> dict:
                return gql(base, EVENTS_QUERY, events)  # noqa: B023 - called in this iteration only

            try:
                startup = srv.wait_healthy()
                ready = srv.wait_for(lambda: len(runs_query()["runs"]["runs"]) == 50, "runs answered")  # noqa: B023
                runs_lat = timed(runs_query, args.requests)
                n_ev = len(events_page()["runEvents"]["events"])
                log_lat = timed(events_page, args.requests)
                kids = children(srv.proc.pid)
                main_kib = rss_kib(srv.proc.pid)
                total_kib = main_kib + sum(rss_kib(k) for k in kids)
            finally:
                srv.stop()
            log(f"repeat {label}{rep}: startup {startup:.2f}s, graphql ready {ready:.2f}s, runs p50 "
                f"{1000 * stats(runs_lat)['median']:.1f}ms, runEvents({n_ev} ev) p50 "
                f"{1000 * stats(log_lat)['median']:.1f}ms, RSS main {main_kib / 1024:.0f} MiB total "
                f"{total_kib / 1024:.0f} MiB")
            rows.append({"startup_s": startup, "ready_s": ready, "runs_lat": runs_lat, "log_lat": log_lat,
                         "events_in_page": n_ev, "main_kib": main_kib, "total_kib": total_kib})
    all_runs = [v for r in rows for v in r["runs_lat"]]
    all_logs = [v for r in rows for v in r["log_lat"]]
    return emit("graphql_runs_query", orchestrator="runyard", storage="sqlite", seeded_runs=args.runs,
                requests_per_repeat=args.requests, log_page_limit=args.log_page,
                events_in_page=rows[0]["events_in_page"], runs_query_ms_all=ms(all_runs),
                log_page_ms_all=ms(all_logs),
                startup_to_server_info_s=stats((r["startup_s"] for r in rows), 3),
                startup_to_graphql_s=stats((r["ready_s"] for r in rows), 3),
                rss_main_mib=stats((r["main_kib"] / 1024 for r in rows), 1),
                rss_total_mib=stats((r["total_kib"] / 1024 for r in rows), 1))


def dagster_twin(args) -> dict | None:
    """Dagster's graphql_runs_query.py with the Dagster virtualenv's python, right after ours."""
    return dagster_result("graphql_runs_query.py", ["--runs", str(args.runs), "--requests", str(args.requests),
                                                    "--repeats", str(args.repeats), "--log-page", str(args.log_page)])


def compare_twin(ours: dict, theirs: dict) -> None:
    figures = [("startup to GraphQL ready (s)", "startup_to_graphql_s", 1 / 5),
               ("runs(limit 50) p50 (ms)", "runs_query_ms_all", 1 / 3),
               ("500-event page p50 (ms)", "log_page_ms_all", 1 / 3),
               ("RSS, web server + code server (MiB)", "rss_total_mib", 1 / 2),
               ("RSS, web server alone (MiB)", "rss_main_mib", 1 / 2)]
    lines = ["| figure | runyard | dagster | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for name, key, goal in figures:
        a, b = ours[key]["median"], theirs[key]["median"]
        ratio = a / b if b else float("nan")
        lines.append(f"| {name} | {a:g} | {b:g} | {ratio:.3f} (1/{1 / ratio:.1f}) | <= 1/{1 / goal:g} | "
                     f"{'yes' if ratio <= goal else 'NO'} |")
    print("\n".join(lines), flush=True)
    emit("graphql_runs_query_ratio", **{key: round(ours[key]["median"] / theirs[key]["median"], 3)
                                        for _, key, _ in figures if theirs[key]["median"]})


# ---- the runs list at a million runs -------------------------------------------------------------
FILTERS = [
    ("none", "", {}),
    ("job", "job=job_3", {"jobName": "job_3"}),
    ("status", "status=FAILURE", {"statuses": ["FAILURE"]}),
    ("two statuses", "status=FAILURE&status=CANCELED", {"statuses": ["FAILURE", "CANCELED"]}),
    ("tag, selective (100 runs)", "tag=rare%3Dyes", {"tags": [{"key": "rare", "value": "yes"}]}),
    ("tag, common (1/7 of runs)", "tag=team%3Dteam-3", {"tags": [{"key": "team", "value": "team-3"}]}),
    ("launched by a schedule (1/250)", "launched_by=schedule:schedule_1", {"launchedBy": "schedule:schedule_1"}),
    ("status + common tag", "status=FAILURE&tag=team%3Dteam-3",
     {"statuses": ["FAILURE"], "tags": [{"key": "team", "value": "team-3"}]}),
]


def scale(args) -> list[dict]:
    with scratch_home("webui-scale", args.storage) as (home, db_url):
        return _scale(args, home, db_url)


def _scale(args, home: str, db_url: str | None) -> list[dict]:
    from runyard.instance.instance import Instance

    records = []
    inst = Instance.open(home=home)
    inst.storage.check_ready()
    t = time.perf_counter()
    big_run = seed_events(inst.storage, args.run_events) if args.run_events else None
    inst.storage.dispose()
    if big_run:
        log(f"seed: a run of {args.run_events:,} events in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    seed_runs(home, db_url, args.scale_runs)
    log(f"seed: {args.scale_runs:,} runs on {args.storage} in {time.perf_counter() - t:.1f}s")
    srv = WebuiProcess(home)
    base = srv.base
    try:
        srv.wait_healthy()
        for name, url_query, variables in FILTERS:
            url = base + "/runs" + (f"?{url_query}" if url_query else "")
            code, _ = http(url)
            if code != 200:
                raise RuntimeError(f"{url} answered {code}:\n{srv.tail()}")
            page = timed(lambda: http(url), args.requests)  # noqa: B023 - called right here
            query = timed(lambda: gql(base, FILTERED_QUERY, variables), args.requests)  # noqa: B023
            shown = len(gql(base, FILTERED_QUERY, variables)["runs"]["runs"])
            # the chips' counts, loaded by the page after the list (a query over every matching run)
            counts = timed(lambda: gql(base, COUNTS_QUERY, variables), max(5, args.requests // 5))  # noqa: B023
            log(f"{args.storage} {name:32s} page p50 {1000 * stats(page)['median']:7.1f} p95 "
                f"{1000 * stats(page)['p95']:7.1f} ms | GraphQL p50 {1000 * stats(query)['median']:7.1f} "
                f"p95 {1000 * stats(query)['p95']:7.1f} ms ({shown} runs) | statusCounts p50 "
                f"{1000 * stats(counts)['median']:7.1f} ms")
            records.append(emit("webui_scale_runs", storage=args.storage, runs=args.scale_runs, filter=name,
                                url="/runs" + (f"?{url_query}" if url_query else ""), runs_shown=shown,
                                page_ms=ms(page), graphql_ms=ms(query), status_counts_ms=ms(counts)))
        counted = timed(lambda: gql(base, "{ runs(limit: 50) { count runs { runId } } }"), args.requests)
        chips = timed(lambda: gql(base, "{ runs(limit: 1) { statusCounts { status count } } }"), args.requests)
        health = timed(lambda: http(base + "/healthz"), max(args.requests, 50))
        log(f"{args.storage} runs with count p95 {1000 * stats(counted)['p95']:.1f} ms, statusCounts p95 "
            f"{1000 * stats(chips)['p95']:.1f} ms, /healthz p50 {1000 * stats(health)['median']:.2f} "
            f"p95 {1000 * stats(health)['p95']:.2f} ms")
        records.append(emit("webui_scale_health", storage=args.storage, runs=args.scale_runs,
                            healthz_ms=ms(health), runs_with_count_ms=ms(counted),
                            status_counts_ms=ms(chips)))
        if big_run:
            run_page = timed(lambda: http(f"{base}/runs/{big_run}"), max(5, args.requests // 5))
            size = len(http(f"{base}/runs/{big_run}")[1])
            events = timed(lambda: gql(base, EVENTS_QUERY, {"runId": big_run, "limit": 500}), args.requests)
            log(f"{args.storage} run page of a {args.run_events:,}-event run p50 "
                f"{1000 * stats(run_page)['median']:.1f} p95 {1000 * stats(run_page)['p95']:.1f} ms "
                f"({size / 1024:.0f} KiB); runEvents(limit 500) p50 {1000 * stats(events)['median']:.1f} "
                f"p95 {1000 * stats(events)['p95']:.1f} ms; web UI RSS {rss_kib(srv.proc.pid) / 1024:.0f} MiB")
            records.append(emit("webui_scale_run_page", storage=args.storage, runs=args.scale_runs,
                                run_events=args.run_events, run_page_ms=ms(run_page), run_page_bytes=size,
                                events_page_ms=ms(events), rss_mib=round(rss_kib(srv.proc.pid) / 1024, 1)))
    finally:
        srv.stop()
    return records

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["twin", "scale"], default="twin")
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--log-page", type=int, default=500)
    ap.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--scale-runs", type=int, default=1_000_000)
    ap.add_argument("--run-events", type=int, default=100_000,
                    help="scale mode: one more run with this many events; its run page is timed (0: none)")
    ap.add_argument("--skip-dagster", action="store_true")
    args = ap.parse_args()
    if args.mode == "twin":
        rows: list[dict] = []
        ours = twin(args, rows, "before Dagster " if not args.skip_dagster else "")
        theirs = None if args.skip_dagster else dagster_twin(args)
        if theirs:
            ours = twin(args, rows, "after Dagster ")  # runyard's figures: both sides' repeats
            compare_twin(ours, theirs)
    else:
        scale(args)


if __name__ == "__main__":
    main()
