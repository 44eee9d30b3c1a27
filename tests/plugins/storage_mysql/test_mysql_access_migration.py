"""Revision 0004 (``api_tokens`` and ``audit_log``) on MySQL/MariaDB: a database at 0003 with a run
stored as that revision stored it is refused by ``runyard auth`` until ``runyard instance migrate``
(the CLI, in a subprocess) upgrades it; then the tables and indexes are there, the run reads back,
tokens and audit entries work (API and CLI), and the revision downgrades and upgrades again. Moving an
instance between SQLite and MySQL keeps its tokens and audit log, and new entries' ids follow.

Needs: the MySQL/MariaDB server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

import pytest
from conftest import sqlite_and

from runyard.testing.access import (
    check_cli_migrates_to_access_tables,
    check_copy_keeps_tokens_and_audit,
    write_revision_0003,
)
from runyard_storage_mysql.config import MysqlStorageConfig
from runyard_storage_mysql.storage import MysqlRunStorage
from runyard_storage_mysql.testing import open_storage


def test_instance_migrate_adds_the_token_and_audit_tables_to_a_0003_database(cli, home, fresh_my_db):
    old = MysqlRunStorage(MysqlStorageConfig(url=fresh_my_db))
    write_revision_0003(old.engine)
    old.dispose()
    (home / "runyard.yaml").write_text(f"storage:\n  mysql:\n    url: '{fresh_my_db}'\n")
    check_cli_migrates_to_access_tables(cli)


@pytest.mark.parametrize("direction", ["sqlite-to-mysql", "mysql-to-sqlite"])
def test_moving_between_backends_keeps_tokens_and_the_audit_log(fresh_my_db, tmp_path, direction):
    with sqlite_and(open_storage(fresh_my_db), tmp_path, direction.startswith("sqlite")) as (source, target):
        check_copy_keeps_tokens_and_audit(source, target)
