"""Revision 0005 (``backfills``) on PostgreSQL: a database at 0004 with a run stored as that
revision stored it migrates to head (table, indexes, old run, a backfill's batch; down and up again).
Moving an instance between SQLite and PostgreSQL keeps its backfills.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (a database per test).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import open_storage, sqlite_and

from runyard.testing.backfills import check_copy_keeps_backfills, check_migrates_to_backfills
from runyard_storage_postgres.config import PostgresStorageConfig
from runyard_storage_postgres.storage import PostgresRunStorage


def test_migrate_adds_the_backfills_table_to_a_0004_database(fresh_db):
    engine = sa.create_engine(fresh_db.replace("postgresql://", "postgresql+psycopg2://", 1))
    storage = PostgresRunStorage(PostgresStorageConfig(url=fresh_db))
    try:
        check_migrates_to_backfills(engine, storage)
    finally:
        engine.dispose()
        storage.dispose()


@pytest.mark.parametrize("direction", ["sqlite-to-postgres", "postgres-to-sqlite"])
def test_moving_between_backends_keeps_backfills(fresh_db, tmp_path, direction):
    with sqlite_and(open_storage(fresh_db), tmp_path, direction.startswith("sqlite")) as (source, target):
        check_copy_keeps_backfills(source, target)
