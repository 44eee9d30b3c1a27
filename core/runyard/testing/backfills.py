"""The storage conformance checks of backfills (docs/backfills.md).

Part of :class:`runyard.testing.storage.StorageConformanceSuite` (which inherits these tests); they
use its ``storage`` and ``storage_factory`` fixtures. Also: :func:`check_copy_keeps_backfills` for
moving an instance between SQL backends, and the migration checks of revision 0005.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ..storage.records import (
    BackfillRecord,
    BackfillStatus,
    CodePointer,
    Event,
    EventType,
    RunFilter,
    RunRecord,
    RunStatus,
)
from ..tags import BACKFILL_TAG

B = BackfillStatus
#: runyard/partition (helper D's constant); spelled here so the checks do not wait on it
PARTITION = "runyard/partition"


def make_backfill(keys: list[str] | None = None, *, job_name: str = "etl", location: str = "loc",
                  **kwargs) -> BackfillRecord:
    return BackfillRecord(backfill_id=uuid.uuid4().hex, location=location, job_name=job_name,
                          partition_keys=list(keys if keys is not None else ["a", "b", "c"]), **kwargs)


def backfill_batch(backfill: BackfillRecord, start: int, size: int) -> tuple[list[RunRecord], list[Event]]:
    """The QUEUED runs (and their RUN_ENQUEUED events) of ``backfill``'s partitions
    ``[start, start + size)``, as the daemon makes them."""
    runs, events = [], []
    for key in backfill.partition_keys[start:start + size]:
        run = RunRecord(run_id=uuid.uuid4().hex, job_name=backfill.job_name, status=RunStatus.QUEUED,
                        run_config={"ops": {"p": {"config": {"key": key}}}}, code_pointer=backfill.code_pointer,
                        tags={**backfill.tags, BACKFILL_TAG: backfill.backfill_id, PARTITION: key})
        runs.append(run)
        events.append(Event(run_id=run.run_id, event_type=EventType.RUN_ENQUEUED, message="queued"))
    return runs, events


class BackfillChecks:
    """Backfills: what every storage keeps and answers, and the one-transaction batch."""

    def test_backfill_round_trips_every_field(self, storage):
        made = make_backfill(["2024-01-01", "Ünïcode key", "x" * 300], location="etl ✓", job_name="daily",
                             code_pointer=CodePointer(python_file="/code/defs.py", working_directory="/code"),
                             tags={"team": "data", "runyard/priority": "3"}, created_at=1_700_000_000.123456,
                             retry_of="f" * 32)
        storage.add_backfill(made)
        got = storage.get_backfill(made.backfill_id)
        assert got is not None and got.updated_at is not None
        assert got.to_dict() | {"updated_at": None} == made.to_dict() | {"updated_at": None}
        assert got.status == B.REQUESTED and got.submitted == 0 and got.error is None
        assert storage.get_backfill("0" * 32) is None
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
            storage.add_backfill(make_backfill(backfill_id=made.backfill_id))
        assert storage.get_backfill(made.backfill_id).partition_keys == made.partition_keys

    def test_backfills_list_newest_first_filtered_and_paged(self, storage):
        made = [make_backfill(job_name="a" if i % 2 else "b", location=f"loc{i % 3}", created_at=1000.0 + i)
                for i in range(7)]
        for bf in made:
            storage.add_backfill(bf)
        storage.update_backfill(made[2].backfill_id, B.CANCELED)
        ids = [bf.backfill_id for bf in made][::-1]
        assert [bf.backfill_id for bf in storage.get_backfills()] == ids
        first = storage.get_backfills(limit=3)
        assert [bf.backfill_id for bf in first] == ids[:3]
        assert [bf.backfill_id for bf in storage.get_backfills(limit=3, cursor=first[-1].backfill_id)] == ids[3:6]
        assert [bf.backfill_id for bf in storage.get_backfills(statuses=[B.CANCELED])] == [made[2].backfill_id]
        assert len(storage.get_backfills(statuses=[B.REQUESTED])) == 6
        assert storage.get_backfills(statuses=[]) == []
        assert {bf.job_name for bf in storage.get_backfills(job_name="a")} == {"a"}
        assert {bf.location for bf in storage.get_backfills(locations=["loc1", "loc2"])} == {"loc1", "loc2"}
        assert storage.get_backfills(locations=[]) == []

    def test_backfill_status_change_is_compare_and_set(self, storage):
        bf = make_backfill()
        storage.add_backfill(bf)
        assert not storage.update_backfill(bf.backfill_id, B.CANCELED, expected=[B.CANCELING])
        assert storage.update_backfill(bf.backfill_id, B.CANCELING, expected=[B.REQUESTED])
        assert storage.update_backfill(bf.backfill_id, B.FAILED, expected=[B.CANCELING], error="boom\n" * 1000)
        got = storage.get_backfill(bf.backfill_id)
        assert got.status == B.FAILED and got.error == "boom\n" * 1000
        assert not storage.update_backfill("missing", B.CANCELED)

    def test_a_batch_of_runs_and_the_cursor_move_together(self, storage):
        bf = make_backfill([f"k{i}" for i in range(5)], tags={"team": "data"})
        storage.add_backfill(bf)
        runs, events = backfill_batch(bf, 0, 3)
        assert storage.submit_backfill_runs(bf.backfill_id, 0, runs, events)
        got = storage.get_backfill(bf.backfill_id)
        assert got.submitted == 3 and got.status == B.REQUESTED
        stored = storage.get_runs(RunFilter(tags={BACKFILL_TAG: bf.backfill_id}))
        assert {r.run_id for r in stored} == {r.run_id for r in runs}
        assert all(r.status == RunStatus.QUEUED and r.tags["team"] == "data" for r in stored)
        assert sorted(r.tags[PARTITION] for r in stored) == ["k0", "k1", "k2"]
        assert [str(e.event_type) for e in storage.get_events(runs[0].run_id)] == ["RUN_ENQUEUED"]
        # the same batch again (a daemon retrying after its commit): nothing more
        again, again_events = backfill_batch(bf, 0, 3)
        assert not storage.submit_backfill_runs(bf.backfill_id, 0, again, again_events)
        assert all(storage.get_run(r.run_id) is None for r in again)
        assert storage.get_backfill(bf.backfill_id).submitted == 3
        rest, rest_events = backfill_batch(bf, 3, 2)
        assert storage.submit_backfill_runs(bf.backfill_id, 3, rest, rest_events)
        done = storage.get_backfill(bf.backfill_id)
        assert done.submitted == 5 and done.status == B.COMPLETED
        assert storage.count_runs(RunFilter(tags={BACKFILL_TAG: bf.backfill_id})) == 5
        assert not storage.submit_backfill_runs(bf.backfill_id, 5, *backfill_batch(bf, 0, 1))

    def test_no_run_is_made_for_a_canceled_backfill_or_without_the_lease(self, storage):
        bf = make_backfill()
        storage.add_backfill(bf)
        lease = storage.acquire_lease("backfill-fence", "me", 30)
        runs, events = backfill_batch(bf, 0, 1)
        storage.release_lease("backfill-fence", "me")  # then another daemon takes it
        assert storage.acquire_lease("backfill-fence", "other", 30) is not None
        assert not storage.submit_backfill_runs(bf.backfill_id, 0, runs, events, fence=lease)
        assert storage.get_run(runs[0].run_id) is None and storage.get_backfill(bf.backfill_id).submitted == 0
        current = storage.get_lease("backfill-fence")
        assert storage.submit_backfill_runs(bf.backfill_id, 0, runs, events, fence=current)
        storage.update_backfill(bf.backfill_id, B.CANCELING, expected=[B.REQUESTED])
        more, more_events = backfill_batch(bf, 1, 1)
        assert not storage.submit_backfill_runs(bf.backfill_id, 1, more, more_events)
        assert storage.get_run(more[0].run_id) is None
        assert storage.get_backfill(bf.backfill_id).submitted == 1

    def test_racing_submitters_of_one_batch_make_its_runs_once(self, storage, storage_factory):
        bf = make_backfill([f"k{i}" for i in range(40)])
        storage.add_backfill(bf)
        wins: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def submit(index: int) -> None:
            try:
                other = storage_factory()
                runs, events = backfill_batch(bf, 0, 40)
                barrier.wait(30)
                if other.submit_backfill_runs(bf.backfill_id, 0, runs, events):
                    wins.append(index)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(wins) == 1
        assert storage.count_runs(RunFilter(tags={BACKFILL_TAG: bf.backfill_id})) == 40
        assert storage.get_backfill(bf.backfill_id).status == B.COMPLETED


def check_copy_keeps_backfills(source, target) -> None:
    """Moving an instance between SQL storages keeps its backfills and their runs' tags. ``source``
    and ``target`` are ready and empty."""
    from ..storage.sql.transfer import copy_storage

    bf = make_backfill([f"2024-01-0{i}" for i in range(1, 6)], created_at=time.time() - 5)
    source.add_backfill(bf)
    runs, events = backfill_batch(bf, 0, 2)
    source.submit_backfill_runs(bf.backfill_id, 0, runs, events)
    source.update_backfill(bf.backfill_id, B.CANCELED, error="stopped")
    counts = copy_storage(source, target)
    assert counts["backfills"] == 1, counts
    assert target.get_backfills() == source.get_backfills()
    assert target.get_backfill(bf.backfill_id).submitted == 2
    assert target.count_runs(RunFilter(tags={BACKFILL_TAG: bf.backfill_id})) == 2


# ---- migrating a database from before the table (0004) ----------------------------------------------
#: the revision before ``backfills`` (0005)
BEFORE_BACKFILLS = "0004"


def check_migrates_to_backfills(engine, storage) -> None:
    """A database written at 0004 (a run of that revision stored as raw SQL), opened by ``storage``
    (unprepared, on ``engine``'s database): migrating adds ``backfills`` with its indexes, the old run
    reads back, a backfill works, and 0005 downgrades and upgrades again."""
    import sqlalchemy as sa

    from ..storage.sql.migrations import downgrade, upgrade
    from ..storage.sql.schema import HEAD_REVISION
    from .old_schema import schema_with_old_run

    schema_with_old_run(engine, BEFORE_BACKFILLS, "QUEUED")
    assert storage.schema_revision() == BEFORE_BACKFILLS
    assert storage.migrate() == (BEFORE_BACKFILLS, HEAD_REVISION)
    insp = sa.inspect(storage.engine)
    assert "backfills" in insp.get_table_names()
    indexes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("backfills")}
    assert indexes.get("idx_backfills_status") == ["status", "created_at"], indexes
    assert indexes.get("idx_backfills_created") == ["created_at"], indexes
    assert storage.get_run("old-run").status == RunStatus.QUEUED
    bf = make_backfill()
    storage.add_backfill(bf)
    assert storage.submit_backfill_runs(bf.backfill_id, 0, *backfill_batch(bf, 0, 3))
    assert storage.get_backfill(bf.backfill_id).status == B.COMPLETED
    with storage.engine.begin() as conn:
        downgrade(conn, BEFORE_BACKFILLS)
    assert "backfills" not in sa.inspect(storage.engine).get_table_names()
    with storage.engine.begin() as conn:
        upgrade(conn)
    assert storage.schema_revision() == HEAD_REVISION and storage.get_backfills() == []
    assert storage.get_run("old-run") is not None
