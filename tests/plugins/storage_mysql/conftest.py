"""Fixtures for the MySQL/MariaDB storage tests.

Needs: MariaDB (10.6+) or MySQL (8.0.17+) reachable at $RUNYARD_TEST_MYSQL_URL (default
mysql://root@127.0.0.1:3306/, root with an empty password on the development machines) as an account
that may CREATE DATABASE — each test session creates its own databases there and drops them at the
end, touching nothing else. If the server is missing the tests FAIL with what to install or start
(`scripts/test` starts or installs MariaDB); they never skip.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

from runyard.testing import stop_processes_with_env
from runyard_storage_mysql.testing import MysqlUnavailable, create_database, drop_database, require_server


@pytest.fixture(scope="session")
def my_admin_url() -> str:
    try:
        return require_server()
    except MysqlUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def my_url(my_admin_url):
    """A database of this test session, created now and dropped at the end."""
    url = create_database(my_admin_url)
    yield url
    drop_database(url, my_admin_url)


@pytest.fixture(autouse=True)
def _no_process_left(request):
    """Run workers, daemons and servers a test started for its home (``tmp_path/home``) are ended
    when it ends — before the session's database is dropped (see :func:`end_processes_of`)."""
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
def fresh_my_db(my_admin_url, tmp_path):
    """A database of its own for one test (schema creation, migrations, moves). Processes of the
    test's home are ended before it is dropped."""
    url = create_database(my_admin_url, prefix="runyard_t1")
    yield url
    end_processes_of(tmp_path / "home")
    drop_database(url, my_admin_url)


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
