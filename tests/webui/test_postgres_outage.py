"""The web UI during a PostgreSQL outage (issue 10, item 3): ``/healthz`` and pages answer 503 within
seconds while the server is down, concurrent requests included, and recover when it is back; a server
that accepts connections but never answers does not make each request wait libpq's connect timeout.

Needs: PostgreSQL server binaries (initdb, pg_ctl) for a private server this module stops; real
``runyard webui`` processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.testing import wait_until
from runyard_storage_postgres.testing import PostgresUnavailable, PrivateServer, free_port


@pytest.fixture(scope="module")
def server():
    """A private server of this module only: the tests stop it."""
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


def _get(url: str) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode(), time.monotonic() - start
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.monotonic() - start


@contextlib.contextmanager
def _webui(home: Path, tmp_path: Path, url: str) -> Iterator[str]:
    """A ``runyard webui`` on the instance file in ``home``, with ``RY_OUTAGE_PG_URL`` set to ``url``;
    yields its base URL and stops its whole session at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_HOME=str(home), RY_OUTAGE_PG_URL=url, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "runyard", "webui", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _try_get(base + "/healthz") == 200 or proc.poll() is not None, 60,
                   what="the web UI to start")
        assert proc.poll() is None, proc.stdout.read()
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def test_webui_answers_503_fast_during_an_outage(home, tmp_path, server, db):
    (home / "runyard.yaml").write_text(
        "storage:\n  postgres:\n    url: {env: RY_OUTAGE_PG_URL}\n    pool_size: 2\n    max_overflow: 0\n")
    with _webui(home, tmp_path, db) as base:
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
    try:
        with _webui(home, tmp_path, url) as base:
            proxy.freeze()
            status, body, took = _get(base + "/healthz")
            assert status == 503 and took < 5, (status, took, body)
            status, body, took = _get(base + "/runs")
            assert status == 503 and took < 5, (status, took)
    finally:
        proxy.close()
