"""Outages longer than the storage's own retries: nothing a run worker did may be lost.

A private server of this module (initdb + pg_ctl on a free port; see conftest.py) is stopped while a
real run worker (``runyard job execute`` in a subprocess) is running, for much longer than the
storage's ``reconnect_timeout`` and ``connect_timeout`` — the point at which a worker used to give
up, fail the run and lose its events. The op finishes during the outage, so the run's final status
change has to wait for the server too.

* Within ``run_worker.outage_tolerance_seconds`` the worker keeps its events (in memory, spilled to
  a local file past ``run_worker.max_buffered_events``), retries with backoff, and once the server is
  back writes them all, in order, and ends the run SUCCESS.
* Past the tolerance the worker exits non-zero with a message naming the spill file, which holds
  every event it could not write (and the status change it meant to make).
* The web UI answers ``/healthz`` and pages with 503 within seconds while the server is down,
  concurrent requests included.

Needs: PostgreSQL server binaries (initdb, pg_ctl); real subprocesses.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import open_storage

from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard_storage_postgres.testing import PostgresUnavailable, PrivateServer, free_port

TICKS = 40

DEFS = f'''
import time

from runyard import job, op


@op
def work(context) -> int:
    for i in range({TICKS}):
        context.log.info(f"tick {{i}}")
        time.sleep(0.05)
    return {TICKS}


@op
def after(context, n: int) -> None:
    for i in range(5):
        context.log.info(f"after {{i}}")
    context.log.info(f"done {{n}}")


@job
def outage_job():
    after(work())
'''


@pytest.fixture(scope="module")
def server():
    """A private server of this module only: the tests stop it for long stretches."""
    try:
        srv = PrivateServer().init().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield srv
    srv.destroy()


@pytest.fixture
def db(server):
    if not server.running:
        server.start()
    return server.create_database(f"outage_{uuid.uuid4().hex[:8]}")


def _instance_file(home: Path, *, tolerance: float, buffered: int) -> None:
    # The storage gives up after 2 s of retrying: what used to end the run FAILURE.
    (home / "runyard.yaml").write_text(
        "storage:\n  postgres:\n    url: {env: RY_OUTAGE_PG_URL}\n    reconnect_timeout: 2\n"
        "    connect_timeout: 2\n    pool_size: 2\n"
        f"run_worker:\n  outage_tolerance_seconds: {tolerance}\n  max_buffered_events: {buffered}\n")


def _start(cli, defs: Path, db: str) -> tuple[subprocess.Popen, str]:
    proc = cli.popen("job", "execute", "-f", defs, "-j", "outage_job", env={"RY_OUTAGE_PG_URL": db})
    first = proc.stdout.readline()
    match = re.search(r"as run ([0-9a-f]{32})", first)
    assert match, first + proc.stderr.read() if proc.poll() is not None else first
    return proc, match.group(1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_worker_rides_out_an_outage_longer_than_the_storage_retries(cli, home, write_defs, server, db):
    defs = write_defs(DEFS)
    _instance_file(home, tolerance=300, buffered=10)  # a small memory bound: the spill file is used
    proc, run_id = _start(cli, defs, db)
    watcher = open_storage(db)
    try:
        def ticks() -> int:
            return sum(1 for e in watcher.get_events(run_id) if e.message.startswith("tick "))

        wait_until(lambda: ticks() >= 5, 60, what="the worker to write some events")
        watcher.dispose()
        server.stop("fast")
        try:
            # 10x the storage's reconnect_timeout; the op finishes meanwhile (2 s of ticks)
            time.sleep(20)
            assert proc.poll() is None, f"the worker gave up during the outage: {proc.communicate()}"
            spilled = list((home / "spill").glob("*.jsonl"))
            assert spilled, "events past max_buffered_events go to a spill file"
        finally:
            server.start()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        run = watcher.get_run(run_id)
        events = watcher.get_events(run_id)
        logged = [e.message for e in events if e.message.startswith(("tick ", "after ", "done "))]
        expected = [f"tick {i}" for i in range(TICKS)] + [f"after {i}" for i in range(5)] + [f"done {TICKS}"]
        assert logged == expected, Counter(logged).most_common(3)
        kinds = Counter(str(e.event_type) for e in events)
        assert kinds["RUN_START"] == 1 and kinds["RUN_SUCCESS"] == 1 and kinds["RUN_FAILURE"] == 0, kinds
        assert str(events[-1].event_type) == "RUN_SUCCESS"
        assert run.status == RunStatus.SUCCESS
        steps = {st.step_key: st.status for st in watcher.get_step_stats(run_id)}
        assert steps == {"work": "SUCCESS", "after": "SUCCESS"}
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
        assert not list((home / "spill").glob("*.jsonl")), "a spill file written back is removed"
        assert "storage is back" in err  # the worker said what it waited for
    finally:
        _stop(proc)
        watcher.dispose()


def test_worker_exits_with_the_events_on_disk_once_the_tolerance_passes(cli, home, write_defs, server, db):
    defs = write_defs(DEFS)
    _instance_file(home, tolerance=8, buffered=10_000)
    proc, run_id = _start(cli, defs, db)
    watcher = open_storage(db)
    try:
        wait_until(lambda: len(watcher.get_events(run_id)) >= 8, 60, what="the worker to write some events")
        stored = [e.message for e in watcher.get_events(run_id)]
        watcher.dispose()
        server.stop("fast")
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            server.start()
        assert proc.returncode not in (0, None), out + err
        assert "Traceback" not in err, err
        assert "outage_tolerance_seconds" in err and "8" in err, err
        spill = re.search(r"kept in (\S+\.jsonl)", err)
        assert spill, err
        path = Path(spill.group(1))
        assert path.parent == home / "spill" and run_id in path.name
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert {r["run_id"] for r in records} == {run_id}
        messages = [r["message"] for r in records]
        # the spill continues exactly where the stored events stop: together, every event in order
        logged = [m for m in stored + messages if m.startswith(("tick ", "after ", "done "))]
        assert logged == [f"tick {i}" for i in range(TICKS)] + [f"after {i}" for i in range(5)] + \
            [f"done {TICKS}"]
        assert records[-1]["event_type"] == "RUN_SUCCESS"  # the status change it could not make
        # the run is left as the worker last wrote it; nothing claims it finished
        assert open_storage(db).get_run(run_id).status == RunStatus.STARTED
    finally:
        _stop(proc)


def _get(url: str) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode(), time.monotonic() - start
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.monotonic() - start


def test_webui_answers_503_fast_during_an_outage(home, tmp_path, server, db):
    (home / "runyard.yaml").write_text(
        "storage:\n  postgres:\n    url: {env: RY_OUTAGE_PG_URL}\n    pool_size: 2\n    max_overflow: 0\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_HOME=str(home), RY_OUTAGE_PG_URL=db, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "runyard", "webui", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _try_get(base + "/healthz") == 200, 60, what="the web UI to start")
        assert _get(base + "/runs")[0] == 200
        server.stop("fast")
        try:
            status, body, took = _get(base + "/healthz")
            assert status == 503 and took < 5, (status, took, body)
            assert "error" in body
            status, body, took = _get(base + "/runs")
            assert status == 503 and took < 5, (status, took)
            assert "Traceback" not in body and "storage" in body.lower()
            urls = [base + "/healthz", base + "/runs", base + "/"] * 4
            with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
                results = list(pool.map(_get, urls))
            assert all(code == 503 for code, _, _ in results), [r[:1] for r in results]
            assert max(took for _, _, took in results) < 5, [r[2] for r in results]
        finally:
            server.start()
        wait_until(lambda: _try_get(base + "/healthz") == 200, 30, what="the web UI to recover")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def _try_get(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None


class _Proxy:
    """A TCP proxy to the server that can *freeze*: open connections are cut, and new ones are
    accepted but never answered (a hung server behind a load balancer, a half-dead network)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen:
                continue  # held open, never answered
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def freeze(self) -> None:
        self.frozen = True
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_webui_does_not_wait_connect_timeout_for_a_server_that_does_not_answer(home, tmp_path, server, db):
    """New connections are accepted but never answered: libpq would wait ``connect_timeout`` (30 s
    here) for each; the web UI caps it to its own wait limit (libpq's least, 2 s)."""
    proxy = _Proxy(server.port)
    url = db.replace(f":{server.port}/", f":{proxy.port}/")
    (home / "runyard.yaml").write_text(
        "storage:\n  postgres:\n    url: {env: RY_OUTAGE_PG_URL}\n    connect_timeout: 30\n    notifications: false\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_HOME=str(home), RY_OUTAGE_PG_URL=url, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "runyard", "webui", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _try_get(base + "/healthz") == 200, 60, what="the web UI to start")
        proxy.freeze()
        status, body, took = _get(base + "/healthz")
        assert status == 503 and took < 5, (status, took, body)
        status, body, took = _get(base + "/runs")
        assert status == 503 and took < 5, (status, took)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        proxy.close()
