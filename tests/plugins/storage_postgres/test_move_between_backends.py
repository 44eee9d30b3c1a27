"""Moving an instance between backends with ``runyard instance migrate --from OLD_INSTANCE_FILE``:
SQLite to Postgres (what docs/plugins/storage_postgres.md tells users to do) and back. Runs made by a
real ``runyard job execute`` keep their ids, statuses, tags, events (and event ids), step stats,
ticks, leases and key-value rows; new events continue after the copied ids; a second copy into the
now non-empty target is refused.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (a database per test); real CLI subprocesses.
"""

from __future__ import annotations

import re

import pytest

from runyard.instance.instance import Instance
from runyard.storage.records import Event, EventType, RunStatus, Tick
from runyard.testing import storage_contents

DEFS = '''
from runyard import job, op


@op
def one(context) -> int:
    context.log.info("one says hi")
    return 1


@op
def two(context, n: int) -> int:
    context.log.info(f"two got {n}")
    return n + 1


@job(tags={"team": "data"})
def small():
    two(one())
'''


def snapshot(home, instance_file: str) -> dict:
    instance = Instance.open(str(home), instance_file=str(home / instance_file))
    try:
        return storage_contents(instance.storage, instigators=("nightly",), leases=("daemon",), kv_keys=("cursor",))
    finally:
        instance.dispose()


@pytest.mark.parametrize("direction", ["sqlite-to-postgres", "postgres-to-sqlite"])
def test_instance_moves_between_backends(cli, home, write_defs, fresh_db, direction):
    sqlite_yaml = f"storage:\n  sqlite:\n    path: '{home / 'old.db'}'\n"
    postgres_yaml = f"storage:\n  postgres:\n    url: '{fresh_db}'\n"
    old_yaml, new_yaml = (sqlite_yaml, postgres_yaml) if direction == "sqlite-to-postgres" else (
        postgres_yaml, sqlite_yaml)
    (home / "runyard.yaml").write_text(old_yaml)
    defs = write_defs(DEFS)
    run_ids = []
    for _ in range(2):
        out = cli.ok("job", "execute", "-f", defs, "-j", "small", "--tag", "batch=1").stdout
        run_ids.append(re.search(r"\b([0-9a-f]{32})\b", out).group(1))
    instance = Instance.open(str(home))
    storage = instance.storage
    queued = instance.create_run(job_name="small", tags={"runyard/priority": "3"}, status=RunStatus.QUEUED)
    storage.create_tick(Tick(instigator="nightly", tick_time=10.0, status="SUCCESS", run_ids=run_ids[:1]))
    storage.acquire_lease("daemon", "d1", ttl_seconds=600)
    storage.kv_set("cursor", "42")
    instance.dispose()
    before = snapshot(home, "runyard.yaml")
    assert len(before["runs"]) == 3 and all(before["events"][r] for r in run_ids)

    (home / "old.yaml").write_text(old_yaml)
    (home / "runyard.yaml").write_text(new_yaml)
    out = cli.ok("instance", "migrate", "--from", home / "old.yaml").stdout
    assert "Copied 3 runs" in out and re.search(r"events\s+\d+ rows", out)

    after = snapshot(home, "runyard.yaml")
    assert after == before
    assert snapshot(home, "old.yaml") == before  # the source is left as it was
    listed = cli.json("run", "list", "--json")
    assert {r["run_id"] for r in listed} == {*run_ids, queued.run_id}
    assert "two got 1" in cli.ok("run", "logs", run_ids[0]).stdout

    instance = Instance.open(str(home))
    storage = instance.storage
    try:
        storage.store_event(Event(run_id=run_ids[0], event_type=EventType.LOG, message="after the move"))
        events = storage.get_events(run_ids[0])
        assert events[-1].message == "after the move"
        assert events[-1].id > max(e[0] for evs in before["events"].values() for e in evs)
        assert [r.run_id for r in storage.claim_queued_runs("daemon", 5)] == [queued.run_id]
    finally:
        instance.dispose()

    again = cli("instance", "migrate", "--from", home / "old.yaml")
    assert again.returncode == 1 and "is not empty" in again.stderr
