"""Fixtures for the Postgres storage tests.

Needs: a PostgreSQL server reachable at $RUNYARD_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/postgres, trust auth on the development machines) as a role that
may CREATE DATABASE — each test session creates its own database there and drops it at the end; and
the server binaries (initdb, pg_ctl) for private servers started on a free port (password auth, fault
tests). If any of that is missing the tests FAIL with what to install or start; they never skip.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from runyard.testing import stop_processes_with_env
from runyard_storage_postgres.config import PostgresStorageConfig
from runyard_storage_postgres.storage import PostgresRunStorage
from runyard_storage_postgres.testing import (
    PostgresUnavailable,
    PrivateServer,
    create_database,
    drop_database,
    require_server,
)

TABLES = ("runs", "run_tags", "events", "instigators", "ticks", "run_keys", "daemon_heartbeats", "leases", "kv",
          "api_tokens", "audit_log", "backfills")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        return require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pg_url(pg_admin_url):
    """A database of this test session, created now and dropped at the end."""
    url = create_database(pg_admin_url)
    yield url
    drop_database(url, pg_admin_url)


@pytest.fixture(autouse=True)
def _no_process_left(request):
    """Run workers, daemons and servers a test started for its home (``tmp_path/home``) are ended
    when it ends — before the session's database is dropped or a private server stopped, so none
    is left retrying against them (see :func:`end_processes_of`)."""
    home = request.getfixturevalue("tmp_path") / "home" if "tmp_path" in request.fixturenames else None
    yield
    if home is not None:
        end_processes_of(home)


def end_processes_of(home: Path) -> None:
    """End every process whose environment names ``home`` as its RUNYARD_HOME; warn about those that
    had to be killed (a test that does not wait for what it started)."""
    killed = stop_processes_with_env("RUNYARD_HOME", str(home))
    if killed:
        warnings.warn(f"killed {len(killed)} process(es) left running for {home}: {killed}", stacklevel=1)


@pytest.fixture
def fresh_db(pg_admin_url, tmp_path):
    """A database of its own for one test (migrations, schema revisions). Processes of the test's
    home are ended before it is dropped."""
    url = create_database(pg_admin_url, prefix="runyard_t1")
    yield url
    end_processes_of(tmp_path / "home")
    drop_database(url, pg_admin_url)


@pytest.fixture(scope="session")
def private_server():
    """A private PostgreSQL with scram-sha-256 password auth on a free port (started once)."""
    try:
        server = PrivateServer().init().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.destroy()


def open_storage(url: str, **config) -> PostgresRunStorage:
    s = PostgresRunStorage(PostgresStorageConfig(url=url, **config))
    s.check_ready()
    return s


def truncate_all(storage: PostgresRunStorage) -> None:
    with storage.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))


class DaemonReplicas:
    """``runyard daemon`` replicas of one instance home on the test's database, from one definitions
    file; each replica in a session of its own. ``settings``: the instance file's lines after its
    ``storage:`` line."""

    def __init__(self, tmp_path: Path, db_url: str, settings: str, defs_source: str):
        import os

        from runyard.instance.instance import Instance

        self.cwd = tmp_path
        self.home = tmp_path / "home"
        self.home.mkdir()
        (self.home / "runyard.yaml").write_text(f"storage: {{postgres: {{url: '{db_url}'}}}}\n{settings}")
        self.defs = tmp_path / "defs.py"
        self.defs.write_text(defs_source)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        self.env.update(RUNYARD_HOME=str(self.home), PYTHONUNBUFFERED="1")
        self.instance = Instance.open(home=str(self.home))
        self.storage = self.instance.storage
        self.started: list = []

    def spawn(self):
        import subprocess
        import sys

        proc = subprocess.Popen([sys.executable, "-m", "runyard", "daemon", "-f", str(self.defs)], cwd=self.cwd,
                                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.started.append(proc)
        return proc

    def holder_pid(self) -> int | None:
        """The pid of the replica holding the daemon lease now, or None."""
        import time

        lease = self.storage.get_lease("runyard-daemon")
        return int(lease.holder.split(":")[1]) if lease and lease.expires_at > time.time() else None

    def stop_all(self) -> None:
        """SIGTERM to every live replica, then SIGKILL to the session of any still there after 30 s."""
        import os
        import signal
        import subprocess

        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def sqlite_and(server_storage, tmp_path: Path, sqlite_first: bool):
    """``(source, target)`` for moving an instance: a fresh SQLite storage and ``server_storage``,
    SQLite first or second; both disposed afterwards."""
    from runyard_storage_sqlite.storage import SqliteRunStorage

    sqlite = SqliteRunStorage(str(tmp_path / "r.db"))
    sqlite.check_ready()
    try:
        yield (sqlite, server_storage) if sqlite_first else (server_storage, sqlite)
    finally:
        sqlite.dispose()
        server_storage.dispose()
