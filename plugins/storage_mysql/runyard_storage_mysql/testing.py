"""Helpers for testing against a real MySQL or MariaDB server (used by this plugin's tests; handy
for anyone testing a deployment on MySQL).

The server is named by ``RUNYARD_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/``): an
account that may ``CREATE DATABASE``. Tests make their own databases on it (:func:`create_database`)
and drop them afterwards (:func:`drop_database`); nothing else on the server is touched.

Nothing here skips: when the server is missing the error says what to do, and tests fail.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

DEFAULT_ADMIN_URL = "mysql://root@127.0.0.1:3306/"
ADMIN_URL_ENV = "RUNYARD_TEST_MYSQL_URL"
#: runyard's tables, emptied by :func:`truncate_all`
TABLES = ("runs", "run_tags", "events", "instigators", "ticks", "run_keys", "daemon_heartbeats", "leases", "kv",
          "api_tokens", "audit_log", "backfills")


class MysqlUnavailable(RuntimeError):
    """What a test needs from MySQL/MariaDB is missing; the message says what and how to fix it."""


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


def connect(url: str, **kwargs: Any):
    """A PyMySQL connection (autocommit) for ``url``, with or without a database in it."""
    import pymysql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                           password=u.password or "", database=u.database or None, charset="utf8mb4",
                           autocommit=True, **kwargs)


def hide(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def require_server(url: str | None = None) -> str:
    """Return the admin URL once a connection works; raise :class:`MysqlUnavailable` otherwise."""
    url = url or admin_url()
    try:
        connect(url, connect_timeout=5).close()
    except Exception as exc:  # noqa: BLE001 - reported with what to do
        raise MysqlUnavailable(
            f"MariaDB/MySQL is not reachable at {hide(url)} ({str(exc).strip().splitlines()[0]}). These tests "
            f"need a running server: start it (`service mariadb start`), install one "
            f"(`apt-get install -y mariadb-server`), or point {ADMIN_URL_ENV} at an account allowed to "
            f"CREATE DATABASE. `scripts/test` does the first two."
        ) from None
    return url


def database_url(base_url: str, database: str) -> str:
    """``base_url`` pointing at another database (same server, account and password)."""
    from sqlalchemy.engine import make_url

    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


def create_database(base_url: str | None = None, prefix: str = "runyard_test") -> str:
    """Create a fresh, uniquely named database (with the server's default character set, which
    the schema does not rely on); return its URL."""
    base_url = base_url or admin_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = connect(base_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()
    return database_url(base_url, name)


def drop_database(url: str, base_url: str | None = None) -> None:
    """Drop the database ``url`` names."""
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    conn = connect(base_url or admin_url())
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


def open_storage(url: str, **config: Any):
    """A ready :class:`~runyard_storage_mysql.storage.MysqlRunStorage` on ``url`` (schema created)."""
    from .config import MysqlStorageConfig
    from .storage import MysqlRunStorage

    storage = MysqlRunStorage(MysqlStorageConfig(url=url, **config))
    storage.check_ready()
    return storage


def truncate_all(storage: Any) -> None:
    """Empty every runyard table of ``storage``'s database (between tests sharing one database)."""
    from sqlalchemy import text

    with storage.engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"TRUNCATE TABLE `{table}`"))
