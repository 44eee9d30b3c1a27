"""Helpers shared by the web UI's benchmarks (webui_live.py, webui_scale.py, webui_run_page.py).

Each of them starts a real ``runyard webui`` on a scratch home (SQLite) or a scratch database
(PostgreSQL), times HTTP and GraphQL requests against it, and may run the matching Dagster script
right after. The statistics and ``RESULT`` lines come from :mod:`rybench`; what is specific to a web
server is here: the process (:class:`WebuiProcess`, stopped with its whole process group), HTTP and
GraphQL calls, timing, RSS, the scratch home, runs bulk-inserted straight through SQL, and the
Dagster side.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rybench import BENCH_DIR, REPO_DIR, SHARED_BENCH, log, make_home, stats


# ---- HTTP and timing --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, payload: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
    """GET ``url``, or POST ``payload`` as JSON; (status, body), also for an error status."""
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def gql(base: str, query: str, variables: dict | None = None) -> dict:
    """The ``data`` of a GraphQL answer; RuntimeError on any error."""
    code, body = http(base + "/graphql", {"query": query, "variables": variables or {}})
    answer = json.loads(body) if body else {}
    if code != 200 or answer.get("errors"):
        raise RuntimeError(f"GraphQL answered {code}: {body[:300]!r}")
    return answer["data"]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Seconds of each of ``n`` calls of ``fn``, one after another."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ms(values) -> dict:
    """:func:`rybench.stats` of durations in seconds, in milliseconds."""
    return stats((1000 * v for v in values), 1)


def wait_until_ok(check: Callable[[], object], timeout: float, what: str) -> None:
    """Call ``check`` until it is true (connection and GraphQL errors count as not yet)."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, RuntimeError, urllib.error.URLError):
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.02)


# ---- the web UI process ----------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (FileNotFoundError, StopIteration):
        return 0


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the code server, run workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


class WebuiProcess:
    """``runyard webui [-f defs]`` on ``home`` and a free port, in its own process group (its code
    server and run workers included), stopped as a group. ``t0`` is when it was spawned."""

    def __init__(self, home: str, defs: str | None = None, log_name: str = "webui.log"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env["RUNYARD_HOME"] = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "runyard", "webui", "--port", str(self.port)] + (["-f", defs] if defs else [])
        self.log_path = os.path.join(home, log_name)
        self._log = open(self.log_path, "wb")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO_DIR, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_for(self, check: Callable[[], object], what: str, timeout: float = 120) -> float:
        """Call ``check`` until it is true (as :func:`wait_until_ok`); seconds since spawn. Fails at
        once, with the end of its log, when the web UI exits first."""
        deadline = time.perf_counter() + timeout
        while True:
            try:
                if check():
                    return time.perf_counter() - self.t0
            except (OSError, RuntimeError, urllib.error.URLError):
                pass
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"the web UI did not get to '{what}' within {timeout} s (exit code "
                                   f"{self.proc.poll()}):\n"
                                   f"{self.tail()}")
            time.sleep(0.02)

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds from spawn to the first 200 on ``/healthz``."""
        return self.wait_for(lambda: http(self.base + "/healthz", timeout=2)[0] == 200, "/healthz answered", timeout)

    def tail(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group (code server, workers)
        except ProcessLookupError:
            pass
        self._log.close()


@contextmanager
def scratch_home(prefix: str, storage: str) -> Iterator[tuple[str, str | None]]:
    """(home, database URL or None): a fresh home on SQLite, or on a scratch PostgreSQL database
    (created on ``$RUNYARD_TEST_PG_URL`` or postgresql://postgres@127.0.0.1:5432/postgres); both
    removed afterwards."""
    db_url = None
    if storage == "postgres":
        from runyard_storage_postgres.testing import create_database, require_server

        db_url = create_database(require_server(), prefix="runyard_bench_" + prefix.replace("-", "_"))
        home = make_home(prefix + "-pg", f"storage:\n  postgres:\n    url: '{db_url}'\n")
    else:
        home = make_home(prefix)
    try:
        yield home, db_url
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if db_url:
            from runyard_storage_postgres.testing import drop_database

            drop_database(db_url)


# ---- many runs, straight through SQL ----------------------------------------------------------------
STATUSES = ["SUCCESS"] * 16 + ["FAILURE"] * 3 + ["CANCELED"]
RUN_COLUMNS = ("run_id", "job_name", "status", "run_config", "code_pointer", "launcher_info",
               "created_at", "updated_at", "start_time", "end_time", "priority")


def run_rows(n: int, now: float, code_file: str):
    """(run row, its tags) for n finished runs, oldest first, one every 0.5 s up to now: 20 jobs,
    80 % SUCCESS / 15 % FAILURE / 5 % CANCELED, tag ``team`` with 7 values, ``rare=yes`` on one run in
    10,000, one run in 50 from one of 5 schedules and one in 50 launched by the user ``alice``."""
    pointer = json.dumps({"python_file": code_file})
    for i in range(n):
        run_id = f"{uuid.uuid4().hex[:24]}{i:08x}"
        created = now - (n - i) * 0.5
        row = (run_id, f"job_{i % 20}", STATUSES[(i // 3) % 20], "{}", pointer, "{}", created, created, created,
               created + 1.0, 0)
        tags = [("team", f"team-{i % 7}"), ("seq", str(i))]
        if i % 10_000 == 0:
            tags.append(("rare", "yes"))
        if i % 50 == 1:
            tags.append(("runyard/schedule", f"schedule_{i // 50 % 5}"))
        elif i % 50 == 2:
            tags.append(("runyard/user", "alice"))
        yield row, [(run_id, k, v) for k, v in tags]


def seed_runs(home: str, db_url: str | None, n: int, code_file: str = os.path.join(BENCH_DIR, "workload.py")) -> None:
    """:func:`run_rows` into the home's SQLite database, or COPY into ``db_url`` (then analyzed)."""
    if db_url:
        _seed_postgres(db_url, n, code_file)
    else:
        _seed_sqlite(os.path.join(home, "runyard.db"), n, code_file)


def _seed_sqlite(path: str, n: int, code_file: str) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA synchronous=OFF")
        rows, tags = [], []
        marks = ",".join("?" * len(RUN_COLUMNS))

        def flush() -> None:
            con.executemany(f"INSERT INTO runs ({','.join(RUN_COLUMNS)}) VALUES ({marks})", rows)
            con.executemany("INSERT INTO run_tags (run_id, key, value) VALUES (?,?,?)", tags)
            rows.clear()
            tags.clear()

        for row, row_tags in run_rows(n, time.time(), code_file):
            rows.append(row)
            tags.extend(row_tags)
            if len(rows) >= 50_000:
                flush()
        flush()
        con.commit()
    finally:
        con.close()


def _seed_postgres(url: str, n: int, code_file: str) -> None:
    import psycopg2

    con = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        runs_buf, tags_buf = io.StringIO(), io.StringIO()
        rw, tw = csv.writer(runs_buf), csv.writer(tags_buf)

        def flush() -> None:
            with con.cursor() as cur:
                runs_buf.seek(0)
                tags_buf.seek(0)
                cur.copy_expert(f"COPY runs ({','.join(RUN_COLUMNS)}) FROM STDIN WITH CSV", runs_buf)
                cur.copy_expert("COPY run_tags (run_id, key, value) FROM STDIN WITH CSV", tags_buf)
            for buf in (runs_buf, tags_buf):
                buf.seek(0)
                buf.truncate()

        for i, (row, row_tags) in enumerate(run_rows(n, time.time(), code_file)):
            rw.writerow(row)
            tw.writerows(row_tags)
            if i % 100_000 == 99_999:
                flush()
        flush()
        con.commit()
        con.autocommit = True
        with con.cursor() as cur:  # what autovacuum does after a load; the planner needs the statistics
            cur.execute("VACUUM ANALYZE runs")
            cur.execute("VACUUM ANALYZE run_tags")
    finally:
        con.close()


# ---- the Dagster side ------------------------------------------------------------------------------
def dagster_result(script: str, args: list[str]) -> dict | None:
    """Run ``../shared/bench-dagster/dagster/<script> <args>`` with the Dagster virtualenv's python
    (found as compare.py finds it) and return its ``RESULT`` record; None, said why, when the
    virtualenv or the script is missing or it printed none."""
    sys.path.insert(0, BENCH_DIR)
    from compare import find_dagster_python

    python, note = find_dagster_python(None)
    path = os.path.join(SHARED_BENCH, "dagster", script)
    if python is None or not os.path.exists(path):
        log(f"Dagster side skipped: {note if python is None else path + ' missing'}")
        return None
    env = {**os.environ, "PYTHONPATH": f"{SHARED_BENCH}/dagster:{SHARED_BENCH}/common"}
    log(f"Dagster ({note}): {script} {' '.join(args)}")
    proc = subprocess.run([python, path, *args], cwd=os.path.dirname(path), env=env, stdout=subprocess.PIPE,
                          stderr=sys.stderr, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    log(f"Dagster's {script} printed no RESULT (exit {proc.returncode})")
    return None
