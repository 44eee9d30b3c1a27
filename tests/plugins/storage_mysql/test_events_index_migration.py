"""Revision 0003 (``idx_events_run_type``, what the run page reads step and plan events through) on
MySQL/MariaDB: a database at 0002 with a run stored as that revision stored it is upgraded by
``runyard instance migrate`` (the CLI, in a subprocess), the index is there and the run reads back.

Needs: the MySQL/MariaDB server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

from runyard.storage.sql.schema import HEAD_REVISION
from runyard.testing.run_page_reads import BEFORE_EVENTS_TYPE_INDEX, check_migrated_revision_0002, write_revision_0002
from runyard_storage_mysql.config import MysqlStorageConfig
from runyard_storage_mysql.storage import MysqlRunStorage
from runyard_storage_mysql.testing import open_storage


def test_instance_migrate_adds_the_events_type_index_to_a_0002_database(cli, home, fresh_my_db):
    old = MysqlRunStorage(MysqlStorageConfig(url=fresh_my_db))
    write_revision_0002(old.engine)
    assert old.schema_revision() == BEFORE_EVENTS_TYPE_INDEX
    old.dispose()
    (home / "runyard.yaml").write_text(f"storage:\n  mysql:\n    url: '{fresh_my_db}'\n")
    out = cli.ok("instance", "migrate").stdout
    assert f"Migrated storage from revision {BEFORE_EVENTS_TYPE_INDEX} to {HEAD_REVISION}." in out
    storage = open_storage(fresh_my_db)
    try:
        check_migrated_revision_0002(storage)
    finally:
        storage.dispose()
