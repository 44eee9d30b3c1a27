"""runyard-storage-sqlite against the storage conformance suite, plus SQLite-specific behaviour.

Needs: nothing beyond Python's sqlite3 (real database files under pytest's tmp_path).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sqlite3

import pytest

from runyard.errors import SchemaRevisionError
from runyard.storage.records import Event, EventType
from runyard.testing.storage import SqlStorageConformanceSuite, make_run
from runyard_storage_sqlite.storage import SqliteRunStorage, SqliteStorageConfig


def open_storage(path: str) -> SqliteRunStorage:
    s = SqliteRunStorage(path, SqliteStorageConfig(busy_timeout_ms=30_000))
    s.check_ready()
    return s


class TestSqliteStorage(SqlStorageConformanceSuite):
    @pytest.fixture
    def storage(self, tmp_path):
        s = open_storage(str(tmp_path / "runyard.db"))
        yield s
        s.dispose()

    @pytest.fixture
    def fresh_storage_opener(self, tmp_path):
        return functools.partial(SqliteRunStorage, str(tmp_path / "fresh.db"))

    @pytest.fixture
    def storage_factory(self, tmp_path):
        opened = []

        def factory():
            s = open_storage(str(tmp_path / "runyard.db"))
            opened.append(s)
            return s

        yield factory
        for s in opened:
            s.dispose()


def test_wal_and_busy_timeout_are_set(tmp_path):
    s = open_storage(str(tmp_path / "x.db"))
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def _append_events(path: str, run_id: str, writer: int, batches: int) -> None:
    s = open_storage(path)
    for b in range(batches):
        s.store_events([Event(run_id=run_id, event_type=EventType.LOG, message=f"{writer}:{b}:{i}",
                              data={"w": writer, "seq": b * 5 + i}) for i in range(5)])
    s.dispose()


def test_many_processes_append_to_one_run_without_loss(tmp_path):
    path = str(tmp_path / "runyard.db")
    s = open_storage(path)
    run = make_run()
    s.add_run(run)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_events, args=(path, run.run_id, w, 40)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    events = s.get_events(run.run_id)
    assert len(events) == 6 * 40 * 5
    for w in range(6):
        assert [e.data["seq"] for e in events if e.data["w"] == w] == list(range(200))


def test_newer_schema_revision_is_refused(tmp_path):
    path = str(tmp_path / "runyard.db")
    open_storage(path).dispose()
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    s = SqliteRunStorage(path)
    with pytest.raises(SchemaRevisionError, match="9999.*newer runyard"):
        s.check_ready()


def test_relative_path_is_under_home(tmp_path):
    from runyard.component import ComponentContext

    s = SqliteRunStorage.from_config(SqliteStorageConfig(path="data/r.db"),
                                     ComponentContext(home=str(tmp_path)))
    assert s.path == os.path.join(str(tmp_path), "data", "r.db")


def test_schema_head_matches_alembic_head():
    from runyard.storage.sql.migrations import head_revision
    from runyard.storage.sql.schema import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


def test_model_matches_migrations(tmp_path):
    """The tables Alembic creates are exactly the SQLAlchemy model's tables and columns."""
    from sqlalchemy import inspect

    from runyard.storage.sql.schema import metadata

    s = open_storage(str(tmp_path / "runyard.db"))
    insp = inspect(s.engine)
    assert set(insp.get_table_names()) - {"alembic_version"} == set(metadata.tables)
    for name, table in metadata.tables.items():
        assert {c["name"] for c in insp.get_columns(name)} == {c.name for c in table.columns}, name
