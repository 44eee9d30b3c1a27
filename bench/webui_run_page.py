#!/usr/bin/env python
"""webui_run_page: the run page of a 100,000-event run among a million runs (issue 14's scale goal:
run page p95 < 300 ms on SQLite and PostgreSQL).

A scratch home (``--storage sqlite``) or scratch database (``--storage postgres``) gets ``--runs``
(1,000,000) finished runs bulk-inserted through SQL (the same rows as ``webui_scale.py --mode
scale``), then one run of ``fanout_job`` (bench/workload.py) with ``--events`` (100,000) events —
step starts, successes, a retried step and log lines over its 200 steps — and two re-executions of
it. ``runyard webui -f bench/workload.py`` is started on it and these are timed, ``--requests`` each
(p50/p95): the ``/runs/<id>`` page (newest 500 events, every plan step from the job's snapshot,
children, launched-by; its first view, which folds all the run's step events, is reported apart,
after another run's page warmed the process up), the GraphQL query the page re-reads its steps
with, a "load older" page
(``runEvents(beforeId:, limit: 500)`` from the middle of the log) and the page of a run's first
events (``runEvents(limit: 500)``). The HTML size is reported too.

Usage: python bench/webui_run_page.py [--storage sqlite|postgres] [--runs 1000000] [--events 100000]
       [--requests 50]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from rybench import BENCH_DIR, emit, log, stats
from webuibench import WebuiProcess, gql, http, ms, scratch_home, seed_runs, timed

STEPS_QUERY = """query($id: ID!) { run(runId: $id) { status startTime endTime failure { reason message }
  planSteps { stepKey status duration error attempts { startTime endTime outcome } } children { runId status } } }"""
OLDER_QUERY = """query($id: ID!, $before: Int) { runEvents(runId: $id, beforeId: $before, limit: 500) {
  hasOlder events { id eventType timestamp stepKey level message data } } }"""
FIRST_QUERY = """query($id: ID!) { runEvents(runId: $id, limit: 500) {
  cursor events { id eventType timestamp stepKey level message data } } }"""


def seed_long_run(storage, n_events: int, n_steps: int = 200) -> tuple[str, int]:
    """A finished run of fanout_job with ``n_events`` events over its steps, and the id of its
    middle event; plus two re-executions of it."""
    from runyard.storage.records import Event, RunRecord, RunStatus
    from runyard.tags import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG

    run_id = uuid.uuid4().hex
    now = time.time()
    storage.add_run(RunRecord(run_id=run_id, job_name="fanout_job", status=RunStatus.SUCCESS, created_at=now,
                              start_time=now, end_time=now + n_events / 1000))
    per_step = max(4, n_events // n_steps)
    batch: list[Event] = []
    i = 0
    for s in range(n_steps):
        key = f"leaf_{s}" if s < n_steps - 1 else "final"
        kinds = ["STEP_START"] + ["LOG"] * (per_step - 2) + ["STEP_SUCCESS"]
        if s == 3:  # a retried step: fails once, restarts
            kinds[1:3] = ["STEP_UP_FOR_RETRY", "STEP_RESTARTED"]
        for kind in kinds:
            batch.append(Event(run_id=run_id, event_type=kind, step_key=key, message=f"{kind.lower()} {key} {i}",
                               level="INFO" if i % 5 else "DEBUG", timestamp=now + i / 1000))
            i += 1
        if len(batch) >= 10_000:
            storage.store_events(batch)
            batch = []
    storage.store_events(batch)
    for _ in range(2):
        storage.add_run(RunRecord(run_id=uuid.uuid4().hex, job_name="fanout_job", status=RunStatus.SUCCESS,
                                  tags={PARENT_RUN_ID_TAG: run_id, ROOT_RUN_ID_TAG: run_id},
                                  parent_run_id=run_id, root_run_id=run_id, created_at=time.time()))
    ids = [e.id for e in storage.get_events(run_id, event_types=["STEP_START"])]
    return run_id, ids[len(ids) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()

    with scratch_home("webui-run-page", args.storage) as (home, db_url):
        measure(args, home, db_url)


def measure(args, home: str, db_url: str | None) -> None:
    from runyard.instance.instance import Instance

    inst = Instance.open(home=home)
    inst.storage.check_ready()
    inst.storage.dispose()
    t = time.perf_counter()
    seed_runs(home, db_url, args.runs)
    inst = Instance.open(home=home)
    run_id, middle = seed_long_run(inst.storage, args.events)
    inst.dispose()
    log(f"seed: {args.runs:,} runs and a {args.events:,}-event run on {args.storage} in "
        f"{time.perf_counter() - t:.1f}s")
    srv = WebuiProcess(home, os.path.join(BENCH_DIR, "workload.py"))
    base = srv.base
    try:
        srv.wait_healthy()
        srv.wait_for(lambda: gql(base, "{ locations { status } }")["locations"][0]["status"] == "ok",
                     "the code location loaded")
        other = gql(base, "{ runs(limit: 1) { runs { runId } } }")["runs"]["runs"][0]["runId"]
        http(f"{base}/runs/{other}")  # templates compiled, snapshot fetched: the next view is the run's own cost
        t = time.perf_counter()
        code, body = http(f"{base}/runs/{run_id}")  # the first view reads every step event of the run
        first_view = time.perf_counter() - t
        if code != 200:
            raise RuntimeError(f"/runs/{run_id} answered {code}:\n{srv.tail()}")
        rows, steps = body.count(b"data-event-id="), body.count(b'<tr data-step="')
        figures = {
            "page": timed(lambda: http(f"{base}/runs/{run_id}"), args.requests),
            "steps_query": timed(lambda: gql(base, STEPS_QUERY, {"id": run_id}), args.requests),
            "older_page": timed(lambda: gql(base, OLDER_QUERY, {"id": run_id, "before": middle}), args.requests),
            "first_page": timed(lambda: gql(base, FIRST_QUERY, {"id": run_id}), args.requests),
        }
        for name, values in figures.items():
            log(f"{args.storage} {name:12s} p50 {1000 * stats(values)['median']:7.1f} ms  "
                f"p95 {1000 * stats(values)['p95']:7.1f} ms")
        log(f"page: {len(body) / 1024:.0f} KiB, {rows} events, {steps} steps listed; first view "
            f"{1000 * first_view:.1f} ms")
        emit("webui_run_page", storage=args.storage, runs=args.runs, events=args.events,
             html_kib=len(body) // 1024, events_rendered=rows, steps_listed=steps,
             first_view_ms=round(1000 * first_view, 1), **{f"{k}_ms": ms(v) for k, v in figures.items()})
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
