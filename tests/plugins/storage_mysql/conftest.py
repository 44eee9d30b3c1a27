"""Fixtures for the MySQL/MariaDB storage tests.

Needs: MariaDB (10.6+) or MySQL (8.0.17+) reachable at $RUNYARD_TEST_MYSQL_URL (default
mysql://root@127.0.0.1:3306/, root with an empty password on the development machines) as an account
that may CREATE DATABASE — each test session creates its own databases there and drops them at the
end, touching nothing else. If the server is missing the tests FAIL with what to install or start
(`scripts/test` starts or installs MariaDB); they never skip.
"""

from __future__ import annotations

import pytest

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


@pytest.fixture
def fresh_my_db(my_admin_url):
    """A database of its own for one test (schema creation, migrations, moves)."""
    url = create_database(my_admin_url, prefix="runyard_t1")
    yield url
    drop_database(url, my_admin_url)
