"""runyard-storage-postgres against the storage conformance suite, unchanged: once with
LISTEN/NOTIFY wake-ups and once polling (``notifications: false``, as behind a transaction-mode
connection pooler).

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (see conftest.py); one database per test session.
"""

from __future__ import annotations

import functools

import pytest
from conftest import open_storage, truncate_all

from runyard.testing.storage import SqlStorageConformanceSuite
from runyard_storage_postgres.config import PostgresStorageConfig
from runyard_storage_postgres.storage import PostgresRunStorage


class TestPostgresStorage(SqlStorageConformanceSuite):
    config: dict = {}

    @pytest.fixture
    def storage(self, pg_url):
        s = open_storage(pg_url, **self.config)
        truncate_all(s)
        yield s
        s.dispose()

    @pytest.fixture
    def storage_factory(self, pg_url, storage):
        opened = []

        def factory():
            s = open_storage(pg_url, **self.config)
            opened.append(s)
            return s

        yield factory
        for s in opened:
            s.dispose()

    @pytest.fixture
    def fresh_storage_opener(self, fresh_db):
        return functools.partial(PostgresRunStorage, PostgresStorageConfig(url=fresh_db, **self.config))


class TestPostgresStoragePolling(TestPostgresStorage):
    config = {"notifications": False, "poll_interval": 0.05}
