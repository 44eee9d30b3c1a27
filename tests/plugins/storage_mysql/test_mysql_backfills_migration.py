"""Revision 0005 (``backfills``) on MySQL/MariaDB: a database at 0004 with a run stored as that
revision stored it migrates to head (table, indexes, old run, a backfill's batch; down and up again).
Moving an instance between SQLite and MySQL keeps its backfills.

Needs: the MySQL/MariaDB server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

import pytest
from conftest import sqlite_and

from runyard.testing.backfills import check_copy_keeps_backfills, check_migrates_to_backfills
from runyard_storage_mysql.config import MysqlStorageConfig
from runyard_storage_mysql.storage import MysqlRunStorage
from runyard_storage_mysql.testing import open_storage


def test_migrate_adds_the_backfills_table_to_a_0004_database(fresh_my_db):
    storage = MysqlRunStorage(MysqlStorageConfig(url=fresh_my_db))
    try:
        check_migrates_to_backfills(storage.engine, storage)
    finally:
        storage.dispose()


@pytest.mark.parametrize("direction", ["sqlite-to-mysql", "mysql-to-sqlite"])
def test_moving_between_backends_keeps_backfills(fresh_my_db, tmp_path, direction):
    with sqlite_and(open_storage(fresh_my_db), tmp_path, direction.startswith("sqlite")) as (source, target):
        check_copy_keeps_backfills(source, target)
