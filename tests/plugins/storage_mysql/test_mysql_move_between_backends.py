"""``runyard instance migrate --from OLD_INSTANCE_FILE`` between all three SQL backends: an instance
made on SQLite by a real ``runyard job execute`` moves to MariaDB, then to PostgreSQL, and back from
PostgreSQL to MariaDB to SQLite. Every hop keeps run ids, statuses, tags, events (with their ids),
step stats, ticks, leases and key-value rows, and new events continue after the copied ids.

Needs: MariaDB/MySQL at $RUNYARD_TEST_MYSQL_URL and PostgreSQL at $RUNYARD_TEST_PG_URL (a database of
each per test, dropped afterwards); real CLI subprocesses.
"""

from __future__ import annotations

import re

import pytest

from runyard.instance.instance import Instance
from runyard.storage.records import Event, EventType, RunStatus, Tick
from runyard.testing import storage_contents
from runyard_storage_postgres import testing as pg

DEFS = '''
from runyard import job, op


@op
def one(context) -> int:
    context.log.info("one says hi — ✓")
    return 1


@op
def two(context, n: int) -> int:
    context.log.info(f"two got {n}")
    return n + 1


@job(tags={"team": "data"})
def small():
    two(one())
'''


@pytest.fixture
def pg_db():
    try:
        admin = pg.require_server()
    except pg.PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    url = pg.create_database(admin, prefix="runyard_move")
    yield url
    pg.drop_database(url, admin)


def snapshot(home, instance_file: str) -> dict:
    instance = Instance.open(str(home), instance_file=str(home / instance_file))
    try:
        return storage_contents(instance.storage, instigators=("nightly",), leases=("daemon",),
                                kv_keys=("cursor", "Cursor"))
    finally:
        instance.dispose()


def move(cli, home, old_yaml: str, new_yaml: str) -> None:
    (home / "old.yaml").write_text(old_yaml)
    (home / "runyard.yaml").write_text(new_yaml)
    out = cli.ok("instance", "migrate", "--from", home / "old.yaml").stdout
    assert "Copied 3 runs" in out and re.search(r"events\s+\d+ rows", out)


def test_instance_moves_sqlite_to_mysql_to_postgres_and_back(cli, home, write_defs, fresh_my_db, pg_db):
    yamls = {
        "sqlite": f"storage:\n  sqlite:\n    path: '{home / 'old.db'}'\n",
        "mysql": f"storage:\n  mysql:\n    url: '{fresh_my_db}'\n",
        "postgres": f"storage:\n  postgres:\n    url: '{pg_db}'\n",
        "sqlite2": f"storage:\n  sqlite:\n    path: '{home / 'back.db'}'\n",
    }
    (home / "runyard.yaml").write_text(yamls["sqlite"])
    defs = write_defs(DEFS)
    run_ids = []
    for _ in range(2):
        out = cli.ok("job", "execute", "-f", defs, "-j", "small", "--tag", "batch=1").stdout
        run_ids.append(re.search(r"\b([0-9a-f]{32})\b", out).group(1))
    instance = Instance.open(str(home))
    storage = instance.storage
    queued = instance.create_run(job_name="small", tags={"runyard/priority": "3", "Team": "Data"},
                                 status=RunStatus.QUEUED)
    storage.create_tick(Tick(instigator="nightly", tick_time=1_764_000_000.123456, run_ids=run_ids[:1]))
    storage.acquire_lease("daemon", "d1", ttl_seconds=600)
    storage.kv_set("cursor", "42")
    storage.kv_set("Cursor", "43")
    instance.dispose()
    before = snapshot(home, "runyard.yaml")
    assert len(before["runs"]) == 3 and all(before["events"][r] for r in run_ids)

    hops = [("sqlite", "mysql"), ("mysql", "postgres")]
    for old, new in hops:
        move(cli, home, yamls[old], yamls[new])
        assert snapshot(home, "runyard.yaml") == before, f"{old} -> {new}"
        assert snapshot(home, "old.yaml") == before  # the source is left as it was

    listed = cli.json("run", "list", "--json")
    assert {r["run_id"] for r in listed} == {*run_ids, queued.run_id}
    assert "two got 1" in cli.ok("run", "logs", run_ids[0]).stdout

    # back from PostgreSQL into a MariaDB that is not empty: refused, nothing written
    (home / "old.yaml").write_text(yamls["postgres"])
    (home / "runyard.yaml").write_text(yamls["mysql"])
    again = cli("instance", "migrate", "--from", home / "old.yaml")
    assert again.returncode == 1 and "is not empty" in again.stderr and "Traceback" not in again.stderr

    # and from MariaDB into a new SQLite file: new events continue after the copied ids
    move(cli, home, yamls["mysql"], yamls["sqlite2"])
    assert snapshot(home, "runyard.yaml") == before
    for name in ("runyard.yaml", "old.yaml"):  # the new SQLite and the MariaDB source
        instance = Instance.open(str(home), instance_file=str(home / name))
        storage = instance.storage
        try:
            storage.store_event(Event(run_id=run_ids[0], event_type=EventType.LOG, message="after the move"))
            events = storage.get_events(run_ids[0])
            assert events[-1].message == "after the move"
            assert events[-1].id > max(e[0] for evs in before["events"].values() for e in evs)
            assert [r.run_id for r in storage.claim_queued_runs("daemon", 5)] == [queued.run_id]
        finally:
            instance.dispose()
