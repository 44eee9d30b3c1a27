"""Revision 0004 (``api_tokens`` and ``audit_log``) on PostgreSQL: a database at 0003 with a run
stored as that revision stored it is refused by ``runyard auth`` until ``runyard instance migrate``
(the CLI, in a subprocess) upgrades it; then the tables and indexes are there, the run reads back,
tokens and audit entries work (API and CLI), and the revision downgrades and upgrades again. Moving an
instance between SQLite and PostgreSQL keeps its tokens and audit log, and new entries' ids follow.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (a database per test).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import open_storage, sqlite_and

from runyard.testing.access import (
    check_cli_migrates_to_access_tables,
    check_copy_keeps_tokens_and_audit,
    write_revision_0003,
)


def test_instance_migrate_adds_the_token_and_audit_tables_to_a_0003_database(cli, home, fresh_db):
    engine = sa.create_engine(fresh_db.replace("postgresql://", "postgresql+psycopg2://", 1))
    write_revision_0003(engine)
    engine.dispose()
    (home / "runyard.yaml").write_text(f"storage:\n  postgres:\n    url: '{fresh_db}'\n")
    check_cli_migrates_to_access_tables(cli)


@pytest.mark.parametrize("direction", ["sqlite-to-postgres", "postgres-to-sqlite"])
def test_moving_between_backends_keeps_tokens_and_the_audit_log(fresh_db, tmp_path, direction):
    with sqlite_and(open_storage(fresh_db), tmp_path, direction.startswith("sqlite")) as (source, target):
        check_copy_keeps_tokens_and_audit(source, target)
