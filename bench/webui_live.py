#!/usr/bin/env python
"""webui_live: how soon a logged event reaches a page that follows the run, and how the web UI
answers with hundreds of live pages open — runyard's twin of Dagster's ``live_latency.py``
(issue 14).

Per storage (``--storage sqlite,postgres``; Postgres on a scratch database created on
``$RUNYARD_TEST_PG_URL`` or postgresql://postgres@127.0.0.1:5432/postgres, dropped afterwards):

1. ``runyard webui -f bench/workload_live.py`` on a fresh home; ``/healthz`` p50/p95 with nothing open.
2. **Live delay.** ``--runs`` (3) runs of ``ticker_job`` (``context.log.info("tick i")`` every
   100 ms for 10 s, in the run worker's process), each launched through GraphQL and followed the
   way the run page follows it: ``/live/runs/<id>/events`` (server-sent events) until ``end``.
   For every ``tick i`` event: delay = wall clock when the message carrying it was read - the
   event's timestamp (taken by the run worker when the op logged it). p50/p95 over every tick.
3. **Open pages.** A ``quiet_job`` run (logs nothing for minutes) and ``--pages`` (200) open event
   streams on it, held by one thread of this process that only drains them. With all of them open:
   ``/healthz``, the ``/runs`` page and a GraphQL ``runs`` query, ``--requests`` each, one after
   another (p50/p95); then one more ``ticker_job`` run followed as in 2 (the delay under that load).

With the Dagster virtualenv present (see compare.py; ``--skip-dagster`` to leave it out),
Dagster's ``../shared/bench-dagster/dagster/live_latency.py --storage S --runs N`` (its UI's
``pipelineRunLogs`` websocket subscription, same ticker workload) runs right after, in the same
invocation, and the figures are printed side by side. Goals: delay p95 at or below Dagster's on
SQLite and on PostgreSQL; ``/healthz`` p95 < 100 ms with 200 open live pages.

Usage: python bench/webui_live.py [--storage sqlite,postgres] [--runs 3] [--pages 200]
       [--requests 200] [--skip-dagster]
"""

from __future__ import annotations

import argparse
import http.client as httpclient
import json
import os
import selectors
import socket
import threading
import time

from rybench import BENCH_DIR, emit, log, stats
from webuibench import WebuiProcess, dagster_result, gql, http, ms, scratch_home, timed

WORKLOAD = os.path.join(BENCH_DIR, "workload_live.py")
LOCATION = "workload_live"
LAUNCH = """mutation($loc: String!, $job: String!) {
  launchRun(location: $loc, jobName: $job) { ok message run { runId } } }"""
RUNS_QUERY = "{ runs(limit: 50) { runs { runId status jobName createdAt tags { key value } } } }"


def launch(base: str, job: str) -> str:
    res = gql(base, LAUNCH, {"loc": LOCATION, "job": job})["launchRun"]
    if not res["ok"]:
        raise RuntimeError(f"launch of {job} failed: {res['message']}")
    return res["run"]["runId"]


# ---- following a run as the run page does ---------------------------------------------------------
def follow(base: str, run_id: str, timeout: float = 180) -> dict:
    """Read ``/live/runs/<id>/events`` until ``end``; the delay of every ``tick`` event."""
    conn = httpclient.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=timeout)
    conn.request("GET", f"/live/runs/{run_id}/events", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"the event stream answered {resp.status}: {resp.read()[:300]!r}")
    delays, messages, events, status = [], 0, 0, None
    kind, data = "message", []
    started = time.monotonic()
    try:
        while True:
            line = resp.readline()
            recv = time.time()
            if not line:
                raise RuntimeError("the event stream closed before `end`")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:])
            elif line.startswith(b"event:"):
                kind = line[6:].strip().decode()
            elif not line and data:
                if kind == "end":
                    break
                payload = json.loads(b"\n".join(data))
                messages += 1
                for e in payload["events"]:
                    events += 1
                    if e["message"].startswith("tick "):
                        delays.append(recv - e["timestamp"])
                status = payload["runStatus"]
                kind, data = "message", []
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"run {run_id} did not finish in {timeout} s")
    finally:
        conn.close()
    return {"delays": delays, "messages": messages, "events": events, "status": status}


class OpenPages:
    """``n`` open event streams on one run, drained by one thread (what the pages' browsers do)."""

    def __init__(self, base: str, run_id: str, n: int):
        port = int(base.rsplit(":", 1)[1])
        self.socks = []
        self.closed = 0
        request = (f"GET /live/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("a live page's stream closed at once")
                head += chunk
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"a live page's stream was refused: {head[:200]!r}")
            s.setblocking(False)
            self.socks.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.2):
                try:
                    if not key.fileobj.recv(65536):
                        sel.unregister(key.fileobj)
                        self.closed += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    sel.unregister(key.fileobj)
                    self.closed += 1
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


# ---- one storage ----------------------------------------------------------------------------------
def runyard_side(storage: str, args) -> dict:
    with scratch_home("webui-live", storage) as (home, _db_url):
        return _measure(storage, home, args)


def _measure(storage: str, home: str, args) -> dict:
    ui = WebuiProcess(home, WORKLOAD)
    pages = None
    try:
        ui.wait_healthy()
        ui.wait_for(lambda: gql(ui.base, RUNS_QUERY), "GraphQL answered")
        base = ui.base
        idle_health = timed(lambda: http(base + "/healthz"), args.requests)
        per_run = []
        for i in range(args.runs):
            run_id = launch(base, "ticker_job")
            res = follow(base, run_id)
            d = res["delays"]
            if res["status"] != "SUCCESS" or not d:
                raise RuntimeError(f"run {run_id} ended {res['status']} with {len(d)} ticks seen:\n{ui.tail()}")
            log(f"runyard {storage} run {i + 1}: {len(d)} ticks, delay p50 {1000 * stats(d)['median']:.1f} ms "
                f"p95 {1000 * stats(d)['p95']:.1f} ms max {1000 * max(d):.1f} ms; {res['messages']} messages")
            per_run.append(res)
        delays = [v for r in per_run for v in r["delays"]]

        quiet = launch(base, "quiet_job")
        deadline = time.monotonic() + 60
        while gql(base, "query($id: ID!) { run(runId: $id) { status } }", {"id": quiet})["run"]["status"] != "STARTED":
            if time.monotonic() > deadline:
                raise RuntimeError("the quiet run did not start")
            time.sleep(0.1)
        t = time.perf_counter()
        pages = OpenPages(base, quiet, args.pages)
        opened_s = time.perf_counter() - t
        open_now = json.loads(http(base + "/live/status")[1])["openStreams"]
        health = timed(lambda: http(base + "/healthz"), args.requests)
        runs_page = timed(lambda: http(base + "/runs"), max(20, args.requests // 10))
        runs_query = timed(lambda: gql(base, RUNS_QUERY), max(20, args.requests // 10))
        loaded = follow(base, launch(base, "ticker_job"))
        still_open = json.loads(http(base + "/live/status")[1])["openStreams"]
        log(f"runyard {storage}: {args.pages} pages opened in {opened_s:.2f}s ({open_now} streams open, "
            f"{still_open} at the end, {pages.closed} closed by the server); /healthz p50 "
            f"{1000 * stats(health)['median']:.1f} p95 {1000 * stats(health)['p95']:.1f} ms (alone: p95 "
            f"{1000 * stats(idle_health)['p95']:.1f} ms); /runs p95 {1000 * stats(runs_page)['p95']:.1f} ms; "
            f"runs query p95 {1000 * stats(runs_query)['p95']:.1f} ms; delay under load p50 "
            f"{1000 * stats(loaded['delays'])['median']:.1f} p95 {1000 * stats(loaded['delays'])['p95']:.1f} ms")
        gql(base, "mutation($id: ID!) { terminateRun(runId: $id) { ok } }", {"id": quiet})
        return emit("webui_live", orchestrator="runyard", storage=storage,
                    follower="/live/runs/<id>/events (server-sent events)", runs=args.runs, ticks=len(delays),
                    delay_ms=ms(delays),
                    delay_p50_ms_per_run=stats((1000 * stats(r["delays"])["median"] for r in per_run), 1),
                    delay_p95_ms_per_run=stats((1000 * stats(r["delays"])["p95"] for r in per_run), 1),
                    messages_per_run=stats((r["messages"] for r in per_run), 0),
                    healthz_alone_ms=ms(idle_health), open_pages=args.pages, streams_open=open_now,
                    pages_open_s=round(opened_s, 3), healthz_with_pages_ms=ms(health),
                    runs_page_with_pages_ms=ms(runs_page), runs_query_with_pages_ms=ms(runs_query),
                    delay_with_pages_ms=ms(loaded["delays"]))
    finally:
        if pages is not None:
            pages.close()
        ui.stop()


def dagster_side(storage: str, args) -> dict | None:
    """Dagster's live_latency.py with the Dagster virtualenv's python, right after ours."""
    return dagster_result("live_latency.py", ["--storage", storage, "--runs", str(args.runs)])


def table(results: list[tuple[str, dict, dict | None]]) -> str:
    lines = ["| storage | figure | runyard | dagster | goal | met |", "|---|---|---|---|---|---|"]
    for storage, ours, theirs in results:
        for label, key in (("delay p50 (ms)", "median"), ("delay p95 (ms)", "p95")):
            mine = ours["delay_ms"][key]
            other = theirs["delay_ms"][key] if theirs else None
            goal = "<= Dagster" if key == "p95" else ""
            met = "" if other is None or not goal else ("yes" if mine <= other else "NO")
            lines.append(f"| {storage} | {label} | {mine} | {other if other is not None else '-'} | {goal} | {met} |")
        h = ours["healthz_with_pages_ms"]
        lines.append(f"| {storage} | /healthz p50 / p95 with {ours['open_pages']} open live pages (ms) | "
                     f"{h['median']} / {h['p95']} | - | p95 < 100 | {'yes' if h['p95'] < 100 else 'NO'} |")
        d = ours["delay_with_pages_ms"]
        lines.append(f"| {storage} | delay p50 / p95 with {ours['open_pages']} open pages (ms) | "
                     f"{d['median']} / {d['p95']} | - | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storage", default="sqlite,postgres")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--skip-dagster", action="store_true")
    args = ap.parse_args()
    results = []
    for storage in [s.strip() for s in args.storage.split(",") if s.strip()]:
        ours = runyard_side(storage, args)
        theirs = None if args.skip_dagster else dagster_side(storage, args)
        results.append((storage, ours, theirs))
    print(table(results), flush=True)


if __name__ == "__main__":
    main()
