"""Schema evolution: a database created at an older revision (0001), with runs, tags, events, ticks,
leases and key-value rows written as that revision wrote them, is upgraded by ``runyard instance
migrate`` (the CLI, in a subprocess) and everything reads back; the revision's new queue priority
column is filled from the runs' ``runyard/priority`` tags.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (a database per test); the SQLite case needs nothing.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from runyard.storage.records import EventType, RunStatus
from runyard.storage.sql.migrations import upgrade
from runyard.storage.sql.schema import HEAD_REVISION

OLD = "0001"
RUN_COLUMNS = ("run_id", "job_name", "status", "run_config", "code_pointer", "step_keys_to_execute",
               "parent_run_id", "root_run_id", "launcher_info", "created_at", "updated_at", "start_time",
               "end_time")
RUNS = [  # run_id, status, tags, created_at
    ("old-success", "SUCCESS", {"team": "data"}, 100.0),
    ("old-queued-plain", "QUEUED", {}, 101.0),
    ("old-queued-urgent", "QUEUED", {"runyard/priority": "7"}, 102.0),
    ("old-queued-bad-tag", "QUEUED", {"runyard/priority": "high"}, 99.0),
]


def write_old_revision(engine: sa.Engine) -> None:
    """Create the schema at 0001 and fill it the way a runyard of that revision did (raw SQL: the
    current code writes columns 0001 does not have)."""
    with engine.begin() as conn:
        upgrade(conn, OLD)
    md = sa.MetaData()
    runs = sa.Table("runs", md, *(sa.Column(c) for c in RUN_COLUMNS))
    tags = sa.Table("run_tags", md, sa.Column("run_id"), sa.Column("key"), sa.Column("value"))
    events = sa.Table("events", md, *(sa.Column(c) for c in (
        "run_id", "event_type", "timestamp", "step_key", "level", "message", "data")))
    ticks = sa.Table("ticks", md, *(sa.Column(c) for c in ("instigator", "tick_time", "status", "data",
                                                             "updated_at")))
    leases = sa.Table("leases", md, *(sa.Column(c) for c in ("name", "holder", "token", "expires_at")))
    kv = sa.Table("kv", md, sa.Column("key"), sa.Column("value"))
    with engine.begin() as conn:
        for run_id, status, run_tags, created in RUNS:
            conn.execute(runs.insert().values(
                run_id=run_id, job_name="etl", status=status, run_config=json.dumps({"ops": {"a": 1}}),
                code_pointer=json.dumps({"python_file": "/x/defs.py"}), step_keys_to_execute=None,
                parent_run_id=None, root_run_id=None, launcher_info=json.dumps({"pid": 7}),
                created_at=created, updated_at=created, start_time=None, end_time=None))
            for key, value in run_tags.items():
                conn.execute(tags.insert().values(run_id=run_id, key=key, value=value))
        conn.execute(events.insert(), [
            {"run_id": "old-success", "event_type": t, "timestamp": 100.0 + i, "step_key": step,
             "level": "INFO", "message": f"old event {i}", "data": json.dumps({"i": i})}
            for i, (t, step) in enumerate([("RUN_STARTING", None), ("RUN_START", None), ("STEP_START", "a"),
                                           ("STEP_SUCCESS", "a"), ("RUN_SUCCESS", None)])])
        conn.execute(ticks.insert().values(instigator="nightly", tick_time=50.0, status="SUCCESS",
                                           data=json.dumps({"run_ids": ["old-success"]}), updated_at=50.0))
        conn.execute(leases.insert().values(name="daemon", holder="d1", token=4, expires_at=1.0))
        conn.execute(kv.insert().values(key="k", value="v"))


@pytest.fixture(params=["postgres", "sqlite"])
def old_instance(request, home, tmp_path):
    """(instance home, storage yaml) of a database at revision 0001 with old rows in it."""
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_db")
        yaml_text = f"storage:\n  postgres:\n    url: '{url}'\n"
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    else:
        path = tmp_path / "old.db"
        yaml_text = f"storage:\n  sqlite:\n    path: '{path}'\n"
        engine = sa.create_engine(f"sqlite:///{path}")
    write_old_revision(engine)
    engine.dispose()
    (home / "runyard.yaml").write_text(yaml_text)
    return request.param


def test_instance_migrate_upgrades_an_old_database_and_keeps_its_data(cli, old_instance):
    info = cli.json("instance", "info", "--json")
    assert info["storage"]["schema_revision"] == OLD

    refused = cli("run", "list")  # the code refuses an old schema until it is migrated
    assert refused.returncode == 1
    assert f"at schema revision {OLD}, this runyard needs {HEAD_REVISION}" in refused.stderr
    assert "runyard instance migrate" in refused.stderr

    out = cli.ok("instance", "migrate").stdout
    assert f"Migrated storage from revision {OLD} to {HEAD_REVISION}." in out
    assert "nothing to do" in cli.ok("instance", "migrate").stdout

    listed = {r["run_id"]: r for r in cli.json("run", "list", "--json")}
    assert set(listed) == {r[0] for r in RUNS}
    assert listed["old-success"]["status"] == "SUCCESS"
    shown = cli.json("run", "show", "old-success", "--json")
    assert shown["tags"] == {"team": "data"}
    assert shown["run_config"] == {"ops": {"a": 1}}
    assert shown["launcher_info"] == {"pid": 7}
    assert [(s["step_key"], s["status"], s["attempts"]) for s in shown["steps"]] == [("a", "SUCCESS", 1)]
    logs = cli.ok("run", "logs", "old-success").stdout
    assert all(f"old event {i}" in logs for i in range(5))

    # Read back through the storage API too, and use what the new revision added.
    from runyard.instance.instance import Instance

    instance = Instance.open(str(cli.home))
    storage = instance.storage
    try:
        events = storage.get_events("old-success")
        assert [e.message for e in events] == [f"old event {i}" for i in range(5)]
        assert events[-1].event_type == EventType.RUN_SUCCESS and events[2].data == {"i": 2}
        assert storage.get_ticks("nightly")[0].run_ids == ["old-success"]
        assert storage.get_lease("daemon").token == 4
        assert storage.kv_get("k") == "v"
        # priority came from the tags: urgent first, then the oldest plain ones (a bad tag is 0)
        claimed = storage.claim_queued_runs("daemon", limit=10)
        assert [r.run_id for r in claimed] == ["old-queued-urgent", "old-queued-bad-tag", "old-queued-plain"]
        assert all(r.status == RunStatus.STARTING for r in claimed)
        # new writes after the migration get ids after the old ones
        storage.store_event(events[0].__class__(run_id="old-success", event_type=EventType.LOG, message="new"))
        assert storage.get_events("old-success")[-1].id > events[-1].id
    finally:
        instance.dispose()
