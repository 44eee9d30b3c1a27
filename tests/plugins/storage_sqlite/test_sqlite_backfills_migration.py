"""Revision 0005 (``backfills``) on SQLite: a database at 0004 with a run stored as that revision
stored it migrates to head; the table and its indexes are there, the old run reads back, a backfill's
batch works, and the revision downgrades and upgrades again.

Needs: nothing beyond Python's sqlite3 (a database file under pytest's tmp_path).
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.testing.backfills import check_migrates_to_backfills
from runyard_storage_sqlite.storage import SqliteRunStorage


def test_migrate_adds_the_backfills_table_to_a_0004_database(tmp_path):
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    storage = SqliteRunStorage(str(path))
    try:
        check_migrates_to_backfills(engine, storage)
    finally:
        engine.dispose()
        storage.dispose()
