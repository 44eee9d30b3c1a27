"""Revision 0003 (``idx_events_run_type``, what the run page reads step and plan events through): a
database at 0002 with a run stored as that revision stored it is upgraded by ``runyard instance
migrate`` (the CLI, in a subprocess), the index is there and the run reads back through it.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (a database per test); the SQLite case needs nothing.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from runyard.storage.sql.schema import HEAD_REVISION
from runyard.testing.run_page_reads import BEFORE_EVENTS_TYPE_INDEX, check_migrated_revision_0002, write_revision_0002


@pytest.fixture(params=["postgres", "sqlite"])
def at_0002(request, home, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_db")
        yaml_text = f"storage:\n  postgres:\n    url: '{url}'\n"
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    else:
        path = tmp_path / "old.db"
        yaml_text = f"storage:\n  sqlite:\n    path: '{path}'\n"
        engine = sa.create_engine(f"sqlite:///{path}")
    write_revision_0002(engine)
    engine.dispose()
    (home / "runyard.yaml").write_text(yaml_text)
    return request.param


def test_instance_migrate_adds_the_events_type_index_to_a_0002_database(cli, at_0002):
    assert cli.json("instance", "info", "--json")["storage"]["schema_revision"] == BEFORE_EVENTS_TYPE_INDEX
    out = cli.ok("instance", "migrate").stdout
    assert f"Migrated storage from revision {BEFORE_EVENTS_TYPE_INDEX} to {HEAD_REVISION}." in out

    from runyard.instance.instance import Instance

    instance = Instance.open(str(cli.home))
    try:
        check_migrated_revision_0002(instance.storage)
    finally:
        instance.dispose()
    shown = cli.json("run", "show", "old-run", "--json")
    assert [(s["step_key"], s["status"]) for s in shown["steps"]] == [("a", "SUCCESS"), ("b", "FAILURE")]
