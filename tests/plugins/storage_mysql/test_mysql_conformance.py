"""runyard-storage-mysql against the whole storage conformance suite (generic and SQL), unchanged.

Needs: MariaDB or MySQL at $RUNYARD_TEST_MYSQL_URL (see conftest.py); one database per test session
and one per schema-creation test, all dropped afterwards.
"""

from __future__ import annotations

import functools

import pytest

from runyard.testing.storage import SqlStorageConformanceSuite
from runyard_storage_mysql.config import MysqlStorageConfig
from runyard_storage_mysql.storage import MysqlRunStorage
from runyard_storage_mysql.testing import open_storage, truncate_all


class TestMysqlStorage(SqlStorageConformanceSuite):
    @pytest.fixture
    def storage(self, my_url):
        s = open_storage(my_url)
        truncate_all(s)
        yield s
        s.dispose()

    @pytest.fixture
    def storage_factory(self, my_url, storage):
        opened = []

        def factory():
            s = open_storage(my_url)
            opened.append(s)
            return s

        yield factory
        for s in opened:
            s.dispose()

    @pytest.fixture
    def fresh_storage_opener(self, fresh_my_db):
        return functools.partial(MysqlRunStorage, MysqlStorageConfig(url=fresh_my_db))
