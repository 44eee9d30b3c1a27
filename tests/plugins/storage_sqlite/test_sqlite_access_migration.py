"""Revision 0004 (``api_tokens`` and ``audit_log``) on SQLite: a database at 0003 with a run stored
as that revision stored it is refused by ``runyard auth`` until ``runyard instance migrate`` (the CLI,
in a subprocess) upgrades it; then the tables and indexes are there, the run reads back, tokens and
audit entries work (API and CLI), and the revision downgrades and upgrades again.

Needs: nothing beyond Python's sqlite3 (a database file under pytest's tmp_path).
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.testing.access import check_cli_migrates_to_access_tables, write_revision_0003


def test_instance_migrate_adds_the_token_and_audit_tables_to_a_0003_database(cli, home, tmp_path):
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    write_revision_0003(engine)
    engine.dispose()
    (home / "runyard.yaml").write_text(f"storage:\n  sqlite:\n    path: '{path}'\n")
    check_cli_migrates_to_access_tables(cli)
