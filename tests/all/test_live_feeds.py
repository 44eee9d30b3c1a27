"""What the web UI's live hub reads from storage, on every SQL backend (SQLite, PostgreSQL,
MariaDB/MySQL — real servers, as in tests/plugins): the events of many runs in one read, each after
its own cursor; run statuses without configs or tags; new and updated ticks across instigators; and
each storage's change signal (SQLite ``PRAGMA data_version``, Postgres ``LISTEN/NOTIFY``, MySQL
polling) seeing writes by another process's storage object."""

from __future__ import annotations

import time

import pytest

from runyard.storage.base import ALL_CHANGES, CHANGE_EVENTS, CHANGE_RUNS, CHANGE_TICKS
from runyard.storage.records import Event, EventType, RunRecord, RunStatus, Tick, TickStatus
from runyard.testing import wait_until


def _sqlite(tmp_path):
    from runyard_storage_sqlite.storage import SqliteRunStorage

    path = str(tmp_path / "live.db")
    return (lambda: SqliteRunStorage(path)), None


def _postgres(tmp_path):
    from runyard_storage_postgres.config import PostgresStorageConfig
    from runyard_storage_postgres.storage import PostgresRunStorage
    from runyard_storage_postgres.testing import create_database, drop_database, require_server

    url = create_database(require_server(), prefix="runyard_test_live")
    return (lambda: PostgresRunStorage(PostgresStorageConfig(url=url))), lambda: drop_database(url)


def _mysql(tmp_path):
    from runyard_storage_mysql.config import MysqlStorageConfig
    from runyard_storage_mysql.storage import MysqlRunStorage
    from runyard_storage_mysql.testing import create_database, drop_database, require_server

    url = create_database(require_server(), prefix="runyard_test_live")
    return (lambda: MysqlRunStorage(MysqlStorageConfig(url=url))), lambda: drop_database(url)


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def storages(request, tmp_path):
    """``open()`` -> a new storage object on one fresh database (one per "process")."""
    make, drop = {"sqlite": _sqlite, "postgres": _postgres, "mysql": _mysql}[request.param](tmp_path)
    opened = []

    def open_storage():
        s = make()
        s.check_ready()
        opened.append(s)
        return s

    yield open_storage
    for s in opened:
        s.dispose()
    if drop is not None:
        drop()


def _run(storage, run_id: str, status: RunStatus = RunStatus.STARTED) -> None:
    storage.add_run(RunRecord(run_id=run_id, job_name="j", status=status, tags={"t": "v"}))


def _events(storage, run_id: str, *messages: str) -> None:
    storage.store_events([Event(run_id=run_id, event_type=EventType.LOG, message=m) for m in messages])


def test_events_of_many_runs_each_after_its_own_cursor(storages):
    storage = storages()
    for rid in ("a", "b", "c"):
        _run(storage, rid)
    _events(storage, "a", "a1", "a2")
    _events(storage, "b", "b1")
    _events(storage, "a", "a3")
    _events(storage, "c", "c1", "c2")
    a = storage.get_events("a")
    b = storage.get_events("b")
    got = storage.get_events_for_runs({"a": a[0].id, "b": None, "c": None})
    assert [e.message for e in got] == ["a2", "b1", "a3", "c1", "c2"]  # id order, every run after its cursor
    assert [e.id for e in got] == sorted(e.id for e in got)
    assert storage.get_events_for_runs({"a": a[-1].id, "b": b[-1].id}) == []
    assert storage.get_events_for_runs({}) == []
    # a limit cuts the whole answer, so each run gets a prefix of what follows its cursor
    cut = storage.get_events_for_runs({"a": None, "c": None}, limit=3)
    assert [e.message for e in cut] == ["a1", "a2", "a3"]
    assert storage.get_events_for_runs({"nobody": None}) == []


def test_events_of_more_runs_than_one_query_takes(storages):
    storage = storages()
    storage.LIVE_CHUNK = 4  # several queries, merged in id order
    ids = [f"r{i}" for i in range(10)]
    for rid in ids:
        _run(storage, rid)
    for rid in reversed(ids):
        _events(storage, rid, f"{rid}-1", f"{rid}-2")
    got = storage.get_events_for_runs({rid: None for rid in ids}, limit=7)
    assert [e.message for e in got] == ["r9-1", "r9-2", "r8-1", "r8-2", "r7-1", "r7-2", "r6-1"]


def test_run_statuses_without_configs_or_tags(storages):
    storage = storages()
    _run(storage, "q", RunStatus.QUEUED)
    _run(storage, "s", RunStatus.STARTED)
    _run(storage, "f", RunStatus.SUCCESS)
    unfinished = storage.get_run_statuses(statuses=[RunStatus.QUEUED, RunStatus.STARTED])
    assert {rid: st for rid, (st, _) in unfinished.items()} == {"q": RunStatus.QUEUED, "s": RunStatus.STARTED}
    assert all(isinstance(updated, float) for _, updated in unfinished.values())
    picked = storage.get_run_statuses(run_ids=["f", "s", "missing"])
    assert {rid: st for rid, (st, _) in picked.items()} == {"f": RunStatus.SUCCESS, "s": RunStatus.STARTED}
    assert storage.get_run_statuses(run_ids=[]) == {}


def test_recent_ticks_across_instigators(storages):
    storage = storages()
    assert storage.get_recent_ticks(None) == []
    first = storage.create_tick(Tick(instigator="s1", tick_time=1.0, status=TickStatus.SUCCESS))
    assert [t.id for t in storage.get_recent_ticks(None)] == [first.id]  # where to start from: the newest
    running = storage.create_tick(Tick(instigator="s2", tick_time=2.0, status=TickStatus.STARTED))
    other = storage.create_tick(Tick(instigator="s1", tick_time=3.0, status=TickStatus.SKIPPED))
    assert [(t.instigator, t.status) for t in storage.get_recent_ticks(first.id)] == [
        ("s2", TickStatus.STARTED), ("s1", TickStatus.SKIPPED)]
    running.status, running.run_ids = TickStatus.SUCCESS, ["r1"]
    storage.update_tick(running)
    again = storage.get_recent_ticks(other.id, ids=[running.id])
    assert [(t.id, t.status, t.run_ids) for t in again] == [(running.id, TickStatus.SUCCESS, ["r1"])]


def test_change_signal_sees_another_processes_writes(storages):
    reader, writer = storages(), storages()
    signal = reader.change_signal()
    try:
        assert signal.changed() == ALL_CHANGES  # the first look: nothing is known yet
        _run(writer, "x")
        wait_until(lambda: CHANGE_RUNS in signal.changed(), timeout=30, what="the new run to be signalled")
        _events(writer, "x", "hello")
        wait_until(lambda: CHANGE_EVENTS in signal.changed(), timeout=30, what="the new event to be signalled")
        writer.create_tick(Tick(instigator="s", tick_time=time.time(), status=TickStatus.STARTED))
        wait_until(lambda: CHANGE_TICKS in signal.changed(), timeout=30, what="the new tick to be signalled")
    finally:
        signal.close()


def test_quiet_storage_signals_nothing_where_it_can_tell(storages):
    reader = storages()
    signal = reader.change_signal()
    try:
        signal.changed()
        time.sleep(0.2)
        for _ in range(5):
            time.sleep(signal.interval)
            seen = signal.changed()
        if type(reader).__name__ == "MysqlRunStorage":
            assert seen == ALL_CHANGES  # it cannot tell: every look says "read again" (polling)
        else:
            assert seen == frozenset()
    finally:
        signal.close()
