"""The run storage conformance suites.

Every rule in :mod:`runyard.storage.base` is checked here. A storage plugin subclasses
:class:`StorageConformanceSuite` (any storage) or :class:`SqlStorageConformanceSuite` (one built on
:class:`runyard.storage.sql.SqlRunStorage`, which adds checks of the shared schema) and provides:

* ``storage`` — a ready, empty storage;
* ``fresh_storage_opener`` — a picklable zero-argument callable (e.g. ``functools.partial(MyStorage,
  config)``) that opens a storage *without* preparing it, on a new, empty database of its own (the
  same one on every call, not the ``storage`` fixture's): the suite calls it in several processes at
  once to check that first-time schema creation does not race;
* optionally ``storage_factory`` — a zero-argument callable returning a second, independent storage
  object on the ``storage`` fixture's database (another process's view); race tests use it.

The generic suite makes no assumption about how a storage keeps its data (no SQL).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable

import pytest

from ..storage.base import ClaimLimits, RunStorage, TagLimit
from ..storage.records import CodePointer, Event, EventType, Lease, RunFilter, RunRecord, RunStatus, Tick
from .access import AccessRecordsChecks
from .backfills import BackfillChecks
from .partitions import LastRunsByTagChecks, SqlLastRunsByTagChecks

S = RunStatus


def make_run(job_name: str = "job", status: RunStatus = S.NOT_STARTED, **kwargs) -> RunRecord:
    return RunRecord(run_id=uuid.uuid4().hex, job_name=job_name, status=status, **kwargs)


def ev(run_id: str, message: str = "", event_type=EventType.ENGINE_EVENT, **kwargs) -> Event:
    return Event(run_id=run_id, event_type=event_type, message=message, **kwargs)


def _prepare_in_process(opener: Callable[[], RunStorage], barrier, index: int, results) -> None:
    """In a child process: open a storage, wait for the others, prepare it, use it; report."""
    try:
        storage = opener()
        try:
            barrier.wait(120)
            storage.check_ready()
            storage.add_run(make_run(f"opener-{index}"))
            results.put((index, None))
        finally:
            storage.dispose()
    except BaseException:  # noqa: BLE001 - reported to the parent with the traceback
        results.put((index, traceback.format_exc()))


def prepare_in_processes(opener: Callable[[], RunStorage], processes: int = 3,
                         timeout: float = 180) -> list[str]:
    """Call ``opener()`` in ``processes`` fresh (spawned) processes and, all at once, prepare each
    storage (``check_ready``) and add a run with it. Returns the failures' tracebacks (empty when
    every process succeeded)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=_prepare_in_process, args=(opener, barrier, i, results))
             for i in range(processes)]
    for p in procs:
        p.start()
    failures: dict[int, str] = {}
    reported: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(reported) < processes and time.monotonic() < deadline:
        try:
            index, error = results.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and results.empty():
                break
            continue
        reported.add(index)
        if error:
            failures[index] = error
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()
    for i, p in enumerate(procs):
        if i not in reported:
            failures[i] = f"process {i} reported nothing (exit code {p.exitcode})"
    return [f"process {i}:\n{failures[i]}" for i in sorted(failures)]


class StorageConformanceSuite(AccessRecordsChecks, BackfillChecks, LastRunsByTagChecks):
    """Subclass and provide ``storage`` and ``fresh_storage_opener`` (optionally ``storage_factory``).
    API tokens and the audit log are checked by the tests it inherits (:mod:`.access`)."""

    @pytest.fixture
    def storage(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `storage` fixture returning a ready, empty RunStorage")

    @pytest.fixture
    def storage_factory(self, storage):
        """Default: the same object. Override to open a second connection pool on the database."""
        return lambda: storage

    @pytest.fixture
    def fresh_storage_opener(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError(
            "provide a `fresh_storage_opener` fixture: a picklable zero-argument callable that opens "
            "(without check_ready) a storage on a new, empty database of its own, e.g. "
            "functools.partial(MyStorage, config)")

    # ---- preparing a storage ---------------------------------------------------------------------
    def test_schema_revision_is_stable(self, storage):
        revision = storage.schema_revision()
        assert revision is not None
        before, after = storage.migrate()
        assert before == after == revision

    def test_processes_preparing_a_new_database_at_once_do_not_race(self, fresh_storage_opener):
        """Several processes open an empty database for the first time together (a deployment's
        services starting at once): each prepares it (creating the schema) and writes, none fails."""
        failures = prepare_in_processes(fresh_storage_opener, processes=3)
        assert failures == [], "\n".join(failures)
        storage = fresh_storage_opener()
        try:
            storage.check_ready()
            assert sorted(r.job_name for r in storage.get_runs()) == ["opener-0", "opener-1", "opener-2"]
            revision = storage.schema_revision()
            assert storage.migrate() == (revision, revision)
            self.check_prepared_once(storage)
        finally:
            storage.dispose()

    def check_prepared_once(self, storage: RunStorage) -> None:
        """After concurrent first-time preparation: backend-specific checks (see the SQL suite)."""

    # ---- runs ------------------------------------------------------------------------------------
    def test_add_and_get_run_round_trips_every_field(self, storage):
        run = make_run("etl", run_config={"ops": {"a": {"config": {"n": 3}}}}, tags={"team": "data", "x": "1"},
                       code_pointer=CodePointer(python_file="/x/defs.py", working_directory="/x"),
                       step_keys_to_execute=["a", "b"], parent_run_id="p1", root_run_id="r1",
                       launcher_info={"pid": 12})
        storage.add_run(run)
        got = storage.get_run(run.run_id)
        assert got is not None
        assert got.job_name == "etl" and got.status == S.NOT_STARTED
        assert got.run_config == run.run_config
        assert got.tags == {"team": "data", "x": "1"}
        assert got.code_pointer == run.code_pointer
        assert got.step_keys_to_execute == ["a", "b"]
        assert (got.parent_run_id, got.root_run_id) == ("p1", "r1")
        assert got.launcher_info == {"pid": 12}
        assert got.created_at == pytest.approx(run.created_at)

    def test_get_missing_run_is_none(self, storage):
        assert storage.get_run("does-not-exist") is None

    def test_duplicate_run_id_is_rejected_and_first_run_kept(self, storage):
        run = make_run("first")
        storage.add_run(run)
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
            storage.add_run(RunRecord(run_id=run.run_id, job_name="second"))
        assert storage.get_run(run.run_id).job_name == "first"

    def test_get_runs_newest_first_with_filters_limit_and_cursor(self, storage):
        runs = []
        for i in range(6):
            r = make_run("a" if i % 2 else "b", tags={"i": str(i), "even": str(i % 2 == 0)})
            r.created_at = 1000.0 + i
            storage.add_run(r)
            runs.append(r)
        ids = [r.run_id for r in storage.get_runs()]
        assert ids == [r.run_id for r in reversed(runs)]
        assert [r.run_id for r in storage.get_runs(limit=2)] == ids[:2]
        assert [r.run_id for r in storage.get_runs(limit=2, cursor=ids[1])] == ids[2:4]
        assert {r.job_name for r in storage.get_runs(RunFilter(job_name="a"))} == {"a"}
        assert len(storage.get_runs(RunFilter(tags={"even": "True"}))) == 3
        assert [r.run_id for r in storage.get_runs(RunFilter(tags={"i": "4", "even": "True"}))] == [runs[4].run_id]
        assert storage.get_runs(RunFilter(tags={"i": "4", "even": "False"})) == []
        assert storage.count_runs() == 6
        assert storage.count_runs(RunFilter(job_name="b")) == 3
        assert {r.run_id for r in storage.get_runs(RunFilter(run_ids=ids[:2]))} == set(ids[:2])
        old = storage.get_runs(RunFilter(created_before=1002.0))  # exclusive: 1000 and 1001
        assert [r.run_id for r in old] == [runs[1].run_id, runs[0].run_id]
        assert storage.count_runs(RunFilter(created_before=1002.0, job_name="a")) == 1

    def test_runs_list_filters_and_counts_per_status(self, storage):
        """What the web UI's runs list asks: several statuses one page at a time (cursor included),
        runs carrying a tag whatever its value, a time range, counts per status, a cheap ping."""
        statuses = [S.SUCCESS, S.FAILURE, S.CANCELED, S.SUCCESS]
        runs = []
        for i in range(12):
            r = make_run("a" if i < 6 else "b", status=statuses[i % 4],
                         tags={"team": "x" if i % 2 else "y", **({"who": f"u{i}"} if i % 3 == 0 else {})})
            r.created_at = 2000.0 + i
            storage.add_run(r)
            runs.append(r)

        def ids(*indexes):
            return [runs[i].run_id for i in indexes]

        two = RunFilter(statuses=[S.FAILURE, S.CANCELED])
        assert [r.run_id for r in storage.get_runs(two, limit=3)] == ids(10, 9, 6)
        assert [r.run_id for r in storage.get_runs(two, limit=3, cursor=runs[6].run_id)] == ids(5, 2, 1)
        assert [r.run_id for r in storage.get_runs(RunFilter(statuses=[S.FAILURE, S.CANCELED], job_name="b"),
                                                   limit=5)] == ids(10, 9, 6)
        assert [r.run_id for r in storage.get_runs(RunFilter(tag_keys=["who"]), limit=10)] == ids(9, 6, 3, 0)
        assert [r.run_id for r in storage.get_runs(RunFilter(tag_keys=["who"], tags={"team": "x"}))] == ids(9, 3)
        window = RunFilter(created_after=2003.0, created_before=2006.0)  # after inclusive, before exclusive
        assert [r.run_id for r in storage.get_runs(window)] == ids(5, 4, 3)
        assert storage.count_runs_by_status() == {S.SUCCESS: 6, S.FAILURE: 3, S.CANCELED: 3}
        assert storage.count_runs_by_status(RunFilter(tags={"team": "y"})) == {S.SUCCESS: 3, S.CANCELED: 3}
        assert storage.count_runs_by_status(RunFilter(statuses=[S.FAILURE], job_name="a")) == {S.FAILURE: 2}
        assert storage.count_runs_by_status(RunFilter(job_name="nobody")) == {}
        storage.ping()

    def test_filter_by_last_change(self, storage):
        a, b = make_run(), make_run()
        storage.add_run(a)
        storage.add_run(b)
        before = max(r.updated_at for r in storage.get_runs())
        time.sleep(0.01)
        assert storage.transition_run(b.run_id, [S.NOT_STARTED], S.FAILURE)
        changed = storage.get_runs(RunFilter(updated_after=before))
        assert [r.run_id for r in changed] == [b.run_id]
        assert storage.count_runs(RunFilter(statuses=[S.FAILURE], updated_after=before)) == 1
        assert storage.get_runs(RunFilter(updated_after=storage.get_run(b.run_id).updated_at)) == []  # exclusive

    def test_filter_by_status(self, storage):
        a, b = make_run(), make_run()
        storage.add_run(a)
        storage.add_run(b)
        assert storage.transition_run(b.run_id, [S.NOT_STARTED], S.QUEUED)
        assert [r.run_id for r in storage.get_runs(RunFilter(statuses=[S.QUEUED]))] == [b.run_id]
        assert storage.count_runs(RunFilter(statuses=[S.NOT_STARTED, S.QUEUED])) == 2

    def test_delete_run_removes_tags_and_events(self, storage):
        run = make_run(tags={"k": "v"})
        storage.add_run(run, [ev(run.run_id, "hello")])
        assert storage.delete_run(run.run_id)
        assert storage.get_run(run.run_id) is None
        assert storage.get_events(run.run_id) == []
        assert storage.get_runs(RunFilter(tags={"k": "v"})) == []
        assert not storage.delete_run(run.run_id)

    def test_update_run_merges_launcher_info_and_tags(self, storage):
        run = make_run(tags={"a": "1"}, launcher_info={"x": 1})
        storage.add_run(run)
        storage.update_run(run.run_id, launcher_info={"pid": 5}, tags={"a": "2", "b": "3"})
        got = storage.get_run(run.run_id)
        assert got.launcher_info == {"x": 1, "pid": 5}
        assert got.tags == {"a": "2", "b": "3"}
        assert got.status == S.NOT_STARTED

    # ---- transitions -----------------------------------------------------------------------------
    def test_transition_is_compare_and_set(self, storage):
        run = make_run()
        storage.add_run(run)
        assert storage.transition_run(run.run_id, [S.NOT_STARTED], S.STARTING,
                                      [ev(run.run_id, "go", EventType.RUN_STARTING)])
        # the same expectation a second time must fail and write nothing
        assert not storage.transition_run(run.run_id, [S.NOT_STARTED], S.STARTING,
                                          [ev(run.run_id, "again", EventType.RUN_STARTING)])
        assert storage.get_run(run.run_id).status == S.STARTING
        assert [e.message for e in storage.get_events(run.run_id)] == ["go"]

    def test_transition_sets_times_and_launcher_info(self, storage):
        run = make_run()
        storage.add_run(run)
        assert storage.transition_run(run.run_id, [S.NOT_STARTED], S.STARTED, start_time=10.0,
                                      launcher_info={"pid": 1})
        assert storage.transition_run(run.run_id, [S.STARTED], S.SUCCESS, end_time=12.5)
        got = storage.get_run(run.run_id)
        assert (got.start_time, got.end_time, got.status) == (10.0, 12.5, S.SUCCESS)
        assert got.launcher_info == {"pid": 1}

    def test_transition_of_missing_run_is_false(self, storage):
        assert not storage.transition_run("nope", [S.NOT_STARTED], S.STARTING)

    def test_racing_transitions_have_exactly_one_winner(self, storage, storage_factory):
        runs = [make_run() for _ in range(20)]
        for r in runs:
            storage.add_run(r)
        wins: list[str] = []
        lock = threading.Lock()

        def contender(name: str) -> None:
            s = storage_factory()
            for r in runs:
                if s.transition_run(r.run_id, [S.NOT_STARTED], S.STARTING,
                                    [ev(r.run_id, name, EventType.RUN_STARTING)]):
                    with lock:
                        wins.append(r.run_id)

        threads = [threading.Thread(target=contender, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == sorted(r.run_id for r in runs)
        for r in runs:
            assert len(storage.get_events(r.run_id)) == 1

    # ---- events ----------------------------------------------------------------------------------
    def test_events_keep_order_fields_and_get_increasing_ids(self, storage):
        run = make_run()
        storage.add_run(run)
        storage.store_events([ev(run.run_id, f"m{i}", step_key="s" if i % 2 else None,
                                 level="DEBUG" if i == 3 else "INFO", data={"i": i}) for i in range(50)])
        storage.store_event(ev(run.run_id, "last", EventType.LOG))
        events = storage.get_events(run.run_id)
        assert [e.message for e in events] == [f"m{i}" for i in range(50)] + ["last"]
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert events[3].level == "DEBUG" and events[3].data == {"i": 3}
        assert events[1].step_key == "s" and events[0].step_key is None
        assert events[-1].event_type == EventType.LOG

    def test_event_cursor_limit_and_filters(self, storage):
        run = make_run()
        storage.add_run(run)
        storage.store_events([ev(run.run_id, str(i), EventType.STEP_START if i % 3 == 0 else EventType.LOG,
                                 step_key=f"s{i % 2}") for i in range(30)])
        first = storage.get_events(run.run_id, limit=10)
        rest = storage.get_events(run.run_id, after_id=first[-1].id)
        assert [e.message for e in first + rest] == [str(i) for i in range(30)]
        starts = storage.get_events(run.run_id, event_types=["STEP_START"])
        assert [e.message for e in starts] == [str(i) for i in range(0, 30, 3)]
        assert all(e.step_key == "s1" for e in storage.get_events(run.run_id, step_key="s1"))

    def test_events_are_per_run(self, storage):
        a, b = make_run(), make_run()
        storage.add_run(a)
        storage.add_run(b)
        storage.store_events([ev(a.run_id, "a"), ev(b.run_id, "b"), ev(a.run_id, "a2")])
        assert [e.message for e in storage.get_events(a.run_id)] == ["a", "a2"]
        assert [e.message for e in storage.get_events(b.run_id)] == ["b"]

    def test_events_page_backwards_with_before_id(self, storage):
        """``before_id`` with ``limit``: the last ``limit`` events below it, in order (the run page
        opens on a long run's newest events and loads older ones on demand)."""
        run, other = make_run(), make_run()
        storage.add_run(run)
        storage.add_run(other)
        storage.store_events([ev(run.run_id, str(i), step_key=f"s{i % 2}") for i in range(20)]
                             + [ev(other.run_id, "x")])
        ids = [e.id for e in storage.get_events(run.run_id)]
        newest = storage.get_events(run.run_id, before_id=2**63 - 1, limit=5)
        assert [e.message for e in newest] == [str(i) for i in range(15, 20)]
        assert [e.id for e in storage.get_events(run.run_id, before_id=ids[15], limit=5)] == ids[10:15]
        assert [e.id for e in storage.get_events(run.run_id, before_id=ids[3], limit=5)] == ids[:3]
        assert [e.id for e in storage.get_events(run.run_id, before_id=ids[3])] == ids[:3]
        assert storage.get_events(run.run_id, before_id=ids[0], limit=5) == []
        assert [e.id for e in storage.get_events(run.run_id, after_id=ids[4], before_id=ids[9], limit=2)] == ids[7:9]
        odd = storage.get_events(run.run_id, before_id=ids[10], limit=2, step_key="s1")
        assert [e.message for e in odd] == ["7", "9"]

    def test_runs_by_parent(self, storage):
        """``RunFilter(parent_run_id=)``: a run's re-executions (the run page's children)."""
        from ..tags import PARENT_RUN_ID_TAG

        parent = make_run()
        storage.add_run(parent)
        kids = []
        for i in range(3):
            kids.append(storage.add_run(make_run(tags={PARENT_RUN_ID_TAG: parent.run_id}, parent_run_id=parent.run_id,
                                                 root_run_id=parent.run_id, created_at=3000.0 + i)))
        grandchild = storage.add_run(make_run(tags={PARENT_RUN_ID_TAG: kids[0].run_id}, parent_run_id=kids[0].run_id,
                                              root_run_id=parent.run_id))
        by_parent = storage.get_runs(RunFilter(parent_run_id=parent.run_id))
        assert [r.run_id for r in by_parent] == [k.run_id for k in reversed(kids)]
        assert storage.count_runs(RunFilter(parent_run_id=kids[0].run_id)) == 1
        assert storage.get_runs(RunFilter(parent_run_id=grandchild.run_id)) == []

    def test_concurrent_writers_lose_nothing(self, storage, storage_factory):
        run = make_run()
        storage.add_run(run)

        def writer(n: int) -> None:
            s = storage_factory()
            for batch in range(10):
                s.store_events([ev(run.run_id, f"w{n}-{batch}-{i}", data={"w": n, "seq": batch * 10 + i})
                                for i in range(10)])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = storage.get_events(run.run_id)
        assert len(events) == 400
        for n in range(4):  # each writer's own order is preserved
            seqs = [e.data["seq"] for e in events if e.data["w"] == n]
            assert seqs == list(range(100))
        assert_batches_contiguous(events, key=lambda e: (e.data["w"], e.data["seq"] // 10))

    def test_unicode_and_large_payloads(self, storage):
        run = make_run(tags={"naïve": "☃"})
        storage.add_run(run)
        big = "x" * 200_000
        storage.store_event(ev(run.run_id, "ünïcödé ✓", data={"blob": big}))
        got = storage.get_events(run.run_id)[0]
        assert got.message == "ünïcödé ✓" and got.data["blob"] == big
        assert storage.get_run(run.run_id).tags == {"naïve": "☃"}

    def test_megabytes_of_text_in_every_kind_of_field(self, storage):
        """Large values survive whole (MySQL's TEXT would stop at 64 KiB): a 3 MiB event message,
        1 MiB run config and launcher info, a 100 KiB tag value that a filter still finds exactly."""
        message = "".join(chr(0x41 + i % 26) for i in range(3 * 2**20)) + "☃"
        config = {"ops": {"a": {"config": {"blob": "c" * 2**20}}}}
        tag = "t" * 100_000
        run = make_run(run_config=config, tags={"big": tag}, launcher_info={"blob": "l" * 2**20})
        storage.add_run(run)
        storage.add_run(make_run(tags={"big": tag[:-1] + "T"}))
        storage.store_event(ev(run.run_id, message, data={"blob": "d" * 2**20}))
        got = storage.get_events(run.run_id)[0]
        assert len(got.message) == len(message) and got.message == message
        assert len(got.data["blob"]) == 2**20
        stored = storage.get_run(run.run_id)
        assert stored.run_config == config and stored.tags == {"big": tag}
        assert len(stored.launcher_info["blob"]) == 2**20
        assert [r.run_id for r in storage.get_runs(RunFilter(tags={"big": tag}))] == [run.run_id]

    def test_times_keep_double_precision(self, storage):
        """Epoch seconds round-trip to the microsecond (a single-precision column would put
        today's times minutes off)."""
        created, started = 1_764_000_000.123456, 1_764_000_001.654321
        ended, stamp = 1_764_000_002.000001, 1_764_000_003.999999
        run = make_run()
        run.created_at = created
        storage.add_run(run, [ev(run.run_id, "first", timestamp=stamp)])
        assert storage.transition_run(run.run_id, [S.NOT_STARTED], S.STARTED, start_time=started)
        assert storage.transition_run(run.run_id, [S.STARTED], S.SUCCESS, end_time=ended)
        got = storage.get_run(run.run_id)
        assert (got.created_at, got.start_time, got.end_time) == (created, started, ended)
        assert abs(got.updated_at - time.time()) < 60
        assert storage.get_events(run.run_id)[0].timestamp == stamp
        assert [r.run_id for r in storage.get_runs(RunFilter(created_before=created + 0.000001))] == [run.run_id]
        assert storage.get_runs(RunFilter(created_before=created)) == []
        storage.create_tick(Tick(instigator="precise", tick_time=stamp))
        assert storage.create_tick(Tick(instigator="precise", tick_time=stamp + 0.000001)) is not None
        assert [t.tick_time for t in storage.get_ticks("precise")] == [stamp + 0.000001, stamp]
        lease = storage.acquire_lease("precise", "a", ttl_seconds=30)
        assert storage.get_lease("precise").expires_at == lease.expires_at

    def test_step_stats_count_attempts_and_keep_last_outcome(self, storage):
        run = make_run()
        storage.add_run(run)
        E = EventType
        storage.store_events([
            ev(run.run_id, "", E.STEP_START, step_key="a", timestamp=1.0),
            ev(run.run_id, "", E.STEP_UP_FOR_RETRY, step_key="a", timestamp=2.0),
            ev(run.run_id, "", E.STEP_RESTARTED, step_key="a", timestamp=3.0),
            ev(run.run_id, "", E.STEP_START, step_key="b", timestamp=3.5),
            ev(run.run_id, "", E.STEP_FAILURE, step_key="a", timestamp=4.0, data={"error": "boom"}),
            ev(run.run_id, "", E.STEP_SUCCESS, step_key="b", timestamp=5.0),
            ev(run.run_id, "", E.STEP_SKIPPED, step_key="c", timestamp=6.0),
            ev(run.run_id, "noise", E.LOG, step_key="a"),
        ])
        stats = {st.step_key: st for st in storage.get_step_stats(run.run_id)}
        assert [st.step_key for st in storage.get_step_stats(run.run_id)] == ["a", "b", "c"]
        assert (stats["a"].status, stats["a"].attempts, stats["a"].error) == ("FAILURE", 2, "boom")
        assert (stats["a"].start_time, stats["a"].end_time) == (1.0, 4.0)
        assert (stats["b"].status, stats["b"].attempts, stats["b"].duration) == ("SUCCESS", 1, 1.5)
        assert (stats["c"].status, stats["c"].attempts) == ("SKIPPED", 0)
        only = storage.get_step_stats(run.run_id, ["b"])
        assert [st.step_key for st in only] == ["b"]

    def test_recent_step_stats_cover_the_newest_runs_of_a_job(self, storage):
        E = EventType
        runs = [make_run("durations", created_at=100.0 + i) for i in range(4)]
        runs.append(make_run("other", created_at=200.0))
        for i, run in enumerate(runs):
            storage.add_run(run)
            storage.store_events([
                ev(run.run_id, "", E.STEP_START, step_key="a", timestamp=10.0),
                ev(run.run_id, "", E.STEP_SUCCESS, step_key="a", timestamp=11.0 + i),
                ev(run.run_id, "", E.STEP_START, step_key="b", timestamp=12.0),
                ev(run.run_id, "", E.STEP_FAILURE, step_key="b", timestamp=15.0, data={"error": f"boom {i}"}),
            ])
        quiet = make_run("durations", created_at=300.0)  # the newest: no step ran yet
        storage.add_run(quiet)
        recent = storage.get_recent_step_stats("durations", runs=3)
        # the 3 newest runs are `quiet` (left out: no steps), runs[3] and runs[2]
        assert list(recent) == [runs[3].run_id, runs[2].run_id]
        a, b = recent[runs[3].run_id]
        assert (a.step_key, a.status, a.duration) == ("a", "SUCCESS", 4.0)
        assert (b.step_key, b.status, b.duration, b.error) == ("b", "FAILURE", 3.0, "boom 3")
        assert list(storage.get_recent_step_stats("durations", runs=10)) == [r.run_id for r in reversed(runs[:4])]
        assert storage.get_recent_step_stats("nothing here") == {}

    def test_metrics_reads_are_right_when_answered(self, storage):
        """``get_queue_and_event_marks`` and ``get_finished_runs_between`` may say None (cannot answer
        cheaply); an answer must be exact."""
        E = EventType
        before = storage.get_queue_and_event_marks()
        queued = [make_run("metrics", status=S.QUEUED, created_at=t) for t in (60.0, 40.5, 50.0)]
        for run in queued:
            storage.add_run(run)
        done, failed, running = (make_run("metrics", created_at=70.0 + i) for i in range(3))
        for run in (done, failed, running):
            storage.add_run(run)
        storage.store_events([ev(running.run_id, "", E.RUN_START), ev(done.run_id, "", E.RUN_START)])
        start = max(e.id for run in (done, running) for e in storage.get_events(run.run_id))
        storage.store_events([ev(done.run_id, "", E.RUN_SUCCESS), ev(running.run_id, "step", E.ENGINE_EVENT),
                              ev(failed.run_id, "", E.RUN_FAILURE)])
        ids = {run.run_id: max(e.id for e in storage.get_events(run.run_id)) for run in (done, running, failed)}
        marks = storage.get_queue_and_event_marks()
        if before is not None or marks is not None:
            assert marks == (40.5, max(ids.values()))
        finished = storage.get_finished_runs_between(start, max(ids.values()), 10)
        if finished is not None:
            assert finished == [(ids[done.run_id], done.run_id, "metrics"),
                                (ids[failed.run_id], failed.run_id, "metrics")]
            assert storage.get_finished_runs_between(start, max(ids.values()), 1) == finished[:1]
            assert storage.get_finished_runs_between(ids[done.run_id], max(ids.values()), 10) == finished[1:]
            assert storage.get_finished_runs_between(max(ids.values()), max(ids.values()) + 100, 10) == []

    # ---- schedules and sensors -------------------------------------------------------------------
    def test_instigator_state(self, storage):
        assert storage.get_instigator_state("nightly") is None
        storage.set_instigator_state("nightly", "schedule", "RUNNING", {"cursor": "1"})
        storage.set_instigator_state("nightly", "schedule", "STOPPED", {"cursor": "2"})
        state = storage.get_instigator_state("nightly")
        assert (state["kind"], state["status"], state["data"]) == ("schedule", "STOPPED", {"cursor": "2"})

    def test_ticks_are_unique_per_instigator_and_time(self, storage):
        t = storage.create_tick(Tick(instigator="nightly", tick_time=100.0))
        assert t is not None and t.id is not None
        assert storage.create_tick(Tick(instigator="nightly", tick_time=100.0)) is None
        assert storage.create_tick(Tick(instigator="other", tick_time=100.0)) is not None
        t.status, t.run_ids, t.skip_reason, t.planned_runs = "SUCCESS", ["r1"], None, {"nightly:100": "r1"}
        storage.update_tick(t)
        storage.create_tick(Tick(instigator="nightly", tick_time=200.0, status="SKIPPED", skip_reason="why"))
        ticks = storage.get_ticks("nightly")
        assert [x.tick_time for x in ticks] == [200.0, 100.0]
        assert ticks[1].status == "SUCCESS" and ticks[1].run_ids == ["r1"]
        assert ticks[1].planned_runs == {"nightly:100": "r1"} and ticks[0].planned_runs == {}
        assert ticks[0].skip_reason == "why"

    def test_ticks_page_both_ways_and_instigator_states_list(self, storage):
        """``get_ticks`` pages by a tick id, older (``before_id``) and newer (``after_id``), newest
        first either way, ties in time broken by id; ``get_instigator_states`` lists every state."""
        made = [storage.create_tick(Tick(instigator="paged", tick_time=1000.0 + i)) for i in range(7)]
        storage.create_tick(Tick(instigator="elsewhere", tick_time=1003.5))
        ids = [t.id for t in reversed(made)]  # newest first
        assert [t.id for t in storage.get_ticks("paged", limit=3)] == ids[:3]
        assert [t.id for t in storage.get_ticks("paged", limit=3, before_id=ids[2])] == ids[3:6]
        assert [t.id for t in storage.get_ticks("paged", limit=3, before_id=ids[5])] == ids[6:]
        assert [t.id for t in storage.get_ticks("paged", limit=3, after_id=ids[6])] == ids[3:6]
        assert [t.id for t in storage.get_ticks("paged", limit=3, after_id=ids[3])] == ids[:3]
        assert storage.get_ticks("paged", limit=3, after_id=ids[0]) == []
        assert storage.get_ticks("paged", limit=3, before_id=10**9) == []  # an unknown id pages nothing
        other = storage.get_ticks("elsewhere")[0].id
        assert storage.get_ticks("paged", before_id=other) == []  # another instigator's tick is no cursor
        storage.set_instigator_state("b_sensor", "sensor", "RUNNING", {"cursor": "7"})
        storage.set_instigator_state("a_schedule", "schedule", "STOPPED")
        states = storage.get_instigator_states()
        assert [(x["name"], x["kind"], x["status"]) for x in states] == [
            ("a_schedule", "schedule", "STOPPED"), ("b_sensor", "sensor", "RUNNING")]
        assert [x["data"] for x in storage.get_instigator_states("sensor")] == [{"cursor": "7"}]

    def test_run_keys_are_claimed_once(self, storage):
        assert storage.claim_run_key("sensor", "k1", "r1")
        assert not storage.claim_run_key("sensor", "k1", "r2")
        assert storage.claim_run_key("other", "k1", "r3")
        assert storage.claim_run_key("sensor", "k1", "r1")  # again for its holder: a retried tick
        assert not storage.claim_run_key("sensor", "k1", "r2")

    # Keys that differ only in case, accents, width or trailing spaces are different keys everywhere
    # (a case-insensitive collation makes File_A.csv and file_a.csv one run key).
    EXACT_KEYS = ("File_A.csv", "file_a.csv", "FILE_A.CSV", "file_á.csv", "file_a.csv ", "ﬁle_a.csv")

    def test_run_keys_are_case_and_accent_sensitive(self, storage):
        for i, key in enumerate(self.EXACT_KEYS):
            assert storage.claim_run_key("sensor", key, f"r{i}"), key
        for key in self.EXACT_KEYS:
            assert not storage.claim_run_key("sensor", key, "again"), key
        assert storage.claim_run_key("Sensor", "file_a.csv", "other instigator")

    def test_tags_are_case_and_accent_sensitive(self, storage):
        runs = {}
        for key, value in [("team", "data"), ("team", "Data"), ("Team", "data"), ("téam", "data"),
                           ("team", "dáta"), ("team", "data ")]:
            run = make_run(tags={key: value})
            storage.add_run(run)
            runs[(key, value)] = run.run_id
        for (key, value), run_id in runs.items():
            assert [r.run_id for r in storage.get_runs(RunFilter(tags={key: value}))] == [run_id], (key, value)
            assert storage.count_runs(RunFilter(tags={key: value})) == 1
        both = make_run(tags={"k": "1", "K": "2", "k ": "3"})
        storage.add_run(both)
        storage.update_run(both.run_id, tags={"K": "22", "ḱ": "4"})
        assert storage.get_run(both.run_id).tags == {"k": "1", "K": "22", "k ": "3", "ḱ": "4"}

    def test_kv_keys_are_case_and_accent_sensitive(self, storage):
        for i, key in enumerate(self.EXACT_KEYS):
            storage.kv_set(key, str(i))
        assert [storage.kv_get(key) for key in self.EXACT_KEYS] == [str(i) for i in range(len(self.EXACT_KEYS))]
        assert storage.kv_get("FILE_a.csv") is None

    # ---- daemon ----------------------------------------------------------------------------------
    def test_heartbeats_upsert(self, storage):
        storage.heartbeat("d1", "scheduler", {"errors": []})
        time.sleep(0.01)
        storage.heartbeat("d1", "scheduler", {"errors": ["boom"]})
        storage.heartbeat("d1", "queue")
        beats = storage.get_heartbeats()
        assert [(b["daemon_id"], b["loop"]) for b in beats] == [("d1", "queue"), ("d1", "scheduler")]
        assert beats[1]["info"] == {"errors": ["boom"]}

    def test_lease_exclusive_renewable_and_fenced(self, storage):
        first = storage.acquire_lease("daemon", "a", ttl_seconds=30)
        assert first is not None and first.token >= 1
        assert storage.acquire_lease("daemon", "b", ttl_seconds=30) is None
        renewed = storage.acquire_lease("daemon", "a", ttl_seconds=30)
        assert renewed is not None and renewed.token == first.token
        assert storage.get_lease("daemon").holder == "a"
        assert not storage.release_lease("daemon", "b")
        assert storage.release_lease("daemon", "a")
        assert storage.get_lease("daemon") is None

    def test_tokens_never_go_backwards_across_releases(self, storage):
        tokens = []
        for holder in ("a", "b", "a", "c"):
            lease = storage.acquire_lease("fenced-release", holder, ttl_seconds=30)
            assert lease is not None and storage.get_lease("fenced-release").holder == holder
            tokens.append(lease.token)
            assert storage.release_lease("fenced-release", holder)
            assert storage.get_lease("fenced-release") is None
            assert not storage.release_lease("fenced-release", holder)
        assert tokens == sorted(set(tokens)), tokens

    def test_expired_lease_is_taken_over_with_a_new_token(self, storage):
        first = storage.acquire_lease("daemon", "a", ttl_seconds=0.05)
        time.sleep(0.15)
        second = storage.acquire_lease("daemon", "b", ttl_seconds=30)
        assert second is not None and second.token > first.token
        assert storage.acquire_lease("daemon", "a", ttl_seconds=30) is None

    def test_racing_lease_acquirers_have_one_holder(self, storage, storage_factory):
        holders: list[str] = []
        lock = threading.Lock()

        def grab(name: str) -> None:
            if storage_factory().acquire_lease("race", name, ttl_seconds=30):
                with lock:
                    holders.append(name)

        threads = [threading.Thread(target=grab, args=(f"h{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(holders) == 1
        assert storage.get_lease("race").holder == holders[0]

    def test_renewal_is_fenced(self, storage):
        first = storage.acquire_lease("fenced", "a", ttl_seconds=30)
        renewed = storage.renew_lease(first, ttl_seconds=60)
        assert renewed is not None and renewed.token == first.token
        assert renewed.expires_at >= first.expires_at
        assert storage.renew_lease(Lease("fenced", "b", first.token, 0.0), ttl_seconds=30) is None
        assert storage.renew_lease(Lease("fenced", "a", first.token + 1, 0.0), ttl_seconds=30) is None
        short = storage.acquire_lease("short", "a", ttl_seconds=0.05)
        time.sleep(0.15)
        assert storage.renew_lease(short, ttl_seconds=30) is None  # expired: lost, even if nobody took it
        taken = storage.acquire_lease("short", "b", ttl_seconds=30)
        assert taken is not None and taken.token > short.token
        assert storage.renew_lease(short, ttl_seconds=30) is None
        assert storage.get_lease("short").holder == "b"

    # ---- the run queue ---------------------------------------------------------------------------
    def _enqueue(self, storage, n: int, **kwargs) -> list[RunRecord]:
        runs = []
        for i in range(n):
            r = make_run(status=S.QUEUED, **kwargs)
            r.created_at = 1000.0 + i + len(kwargs.get("tags", {}))
            storage.add_run(r)
            runs.append(r)
        return runs

    def test_claim_takes_priority_then_oldest_and_writes_run_starting(self, storage):
        low = self._enqueue(storage, 3)
        high = make_run(status=S.QUEUED, tags={"runyard/priority": "5"})
        high.created_at = 2000.0
        storage.add_run(high)
        negative = make_run(status=S.QUEUED, tags={"runyard/priority": "-1"})
        negative.created_at = 1.0
        storage.add_run(negative)
        storage.add_run(make_run(status=S.NOT_STARTED))  # never claimed: not queued
        claimed = storage.claim_queued_runs("daemon-1", limit=3)
        assert [r.run_id for r in claimed] == [high.run_id, low[0].run_id, low[1].run_id]
        assert all(r.status == S.STARTING for r in claimed)
        assert claimed[0].tags == {"runyard/priority": "5"}
        for r in claimed:
            assert storage.get_run(r.run_id).status == S.STARTING
            (event,) = storage.get_events(r.run_id)
            assert event.event_type == EventType.RUN_STARTING and event.data == {"claimed_by": "daemon-1"}
        rest = storage.claim_queued_runs("daemon-2", limit=10)
        assert [r.run_id for r in rest] == [low[2].run_id, negative.run_id]
        assert storage.claim_queued_runs("daemon-2", limit=10) == []
        assert storage.get_events(negative.run_id)[0].data == {"claimed_by": "daemon-2"}

    def test_claim_of_chosen_runs_and_limits(self, storage):
        runs = self._enqueue(storage, 4)
        assert storage.claim_queued_runs("d", limit=0) == []
        assert storage.claim_queued_runs("d", limit=5, run_ids=[]) == []
        got = storage.claim_queued_runs("d", limit=5, run_ids=[runs[3].run_id, runs[1].run_id, "missing"])
        assert [r.run_id for r in got] == [runs[1].run_id, runs[3].run_id]
        assert storage.claim_queued_runs("d", limit=5, run_ids=[runs[1].run_id]) == []
        assert [r.run_id for r in storage.claim_queued_runs("d", limit=1)] == [runs[0].run_id]

    def test_priority_tag_set_later_reorders_the_queue(self, storage):
        runs = self._enqueue(storage, 3)
        storage.update_run(runs[2].run_id, tags={"runyard/priority": "10"})
        storage.update_run(runs[0].run_id, tags={"runyard/priority": "not a number"})
        assert [r.run_id for r in storage.claim_queued_runs("d", limit=3)] == [
            runs[2].run_id, runs[0].run_id, runs[1].run_id]

    def test_claim_is_fenced_by_a_lease(self, storage):
        self._enqueue(storage, 2)
        lease = storage.acquire_lease("run-queue", "daemon-a", ttl_seconds=30)
        assert len(storage.claim_queued_runs("daemon-a", limit=1, fence=lease)) == 1
        storage.release_lease("run-queue", "daemon-a")
        taken = storage.acquire_lease("run-queue", "daemon-b", ttl_seconds=30)
        assert storage.claim_queued_runs("daemon-a", limit=1, fence=lease) == []  # deposed: claims nothing
        assert len(storage.claim_queued_runs("daemon-b", limit=1, fence=taken)) == 1

    def test_racing_claimers_claim_each_run_exactly_once(self, storage, storage_factory):
        runs = self._enqueue(storage, 60)
        claims: list[tuple[str, str]] = []
        lock = threading.Lock()

        def claimer(name: str) -> None:
            s = storage_factory()
            while True:
                got = s.claim_queued_runs(name, limit=3)
                if not got:
                    return
                with lock:
                    claims.extend((name, r.run_id) for r in got)

        threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(rid for _, rid in claims) == sorted(r.run_id for r in runs)
        for name, rid in claims:
            (event,) = storage.get_events(rid)
            assert event.data == {"claimed_by": name}

    def test_claim_respects_max_in_progress_counting_running_runs(self, storage):
        storage.add_run(make_run(status=S.STARTED))
        storage.add_run(make_run(status=S.CANCELING))
        storage.add_run(make_run(status=S.SUCCESS))  # finished: not counted
        self._enqueue(storage, 5)
        limits = ClaimLimits(max_in_progress=4)
        assert len(storage.claim_queued_runs("d", limit=10, limits=limits)) == 2
        assert storage.claim_queued_runs("d", limit=10, limits=limits) == []
        unlimited = storage.claim_queued_runs("d", limit=2, limits=ClaimLimits(max_in_progress=-1))
        assert len(unlimited) == 2

    def test_claim_respects_tag_limits_and_skips_blocked_runs(self, storage):
        storage.add_run(make_run(status=S.STARTED, tags={"db": "pg"}))
        pg = self._enqueue(storage, 2, tags={"db": "pg"})
        other = self._enqueue(storage, 1, tags={"db": "mysql"})
        untagged = self._enqueue(storage, 1)
        limits = ClaimLimits(tag_limits=[TagLimit(key="db", value="pg", limit=2)])
        got = {r.run_id for r in storage.claim_queued_runs("d", limit=10, limits=limits)}
        # one more pg run fits; the second is skipped and the runs behind it still go
        assert got == {pg[0].run_id, other[0].run_id, untagged[0].run_id}
        assert storage.get_run(pg[1].run_id).status == S.QUEUED
        any_value = ClaimLimits(tag_limits=[TagLimit(key="db", limit=3)])
        assert storage.claim_queued_runs("d", limit=10, limits=any_value) == []  # 3 "db" runs in progress

    def test_claim_applies_tag_limit_per_unique_value(self, storage):
        for value in ("a", "a", "b", "b", "c"):
            self._enqueue(storage, 1, tags={"tenant": value})
        limits = ClaimLimits(tag_limits=[TagLimit(key="tenant", limit=1, per_unique_value=True)])
        got = storage.claim_queued_runs("d", limit=10, limits=limits)
        assert sorted(r.tags["tenant"] for r in got) == ["a", "b", "c"]
        assert storage.claim_queued_runs("d", limit=10, limits=limits) == []

    def test_racing_limited_claimers_never_exceed_the_limits(self, storage, storage_factory):
        self._enqueue(storage, 12, tags={"pool": "x"})
        self._enqueue(storage, 12)
        limits = ClaimLimits(max_in_progress=5, tag_limits=[TagLimit(key="pool", value="x", limit=2)])
        claimed: list[RunRecord] = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def claimer(name: str) -> None:
            s = storage_factory()
            barrier.wait()
            for _ in range(5):
                got = s.claim_queued_runs(name, limit=2, limits=limits)
                with lock:
                    claimed.extend(got)

        threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(claimed) == 5 == len({r.run_id for r in claimed})
        assert sum(1 for r in claimed if r.tags.get("pool") == "x") == 2
        assert storage.count_runs(RunFilter(statuses=[S.STARTING])) == 5

    # ---- waiting for changes ---------------------------------------------------------------------
    def test_wait_for_events_returns_at_once_times_out_and_wakes(self, storage, storage_factory):
        run = make_run()
        storage.add_run(run)
        assert not storage.wait_for_events(run.run_id, None, timeout=0.2)
        storage.store_event(ev(run.run_id, "first"))
        first = storage.get_events(run.run_id)[0]
        assert storage.wait_for_events(run.run_id, None, timeout=0)
        start = time.monotonic()
        assert not storage.wait_for_events(run.run_id, first.id, timeout=0.3)
        assert time.monotonic() - start >= 0.25
        other = storage_factory()
        timer = threading.Timer(0.3, lambda: other.store_event(ev(run.run_id, "second")))
        timer.start()
        try:
            start = time.monotonic()
            assert storage.wait_for_events(run.run_id, first.id, timeout=10)
            assert time.monotonic() - start < 5
        finally:
            timer.join()
        assert [e.message for e in storage.get_events(run.run_id, after_id=first.id)] == ["second"]

    def test_wait_for_runs_sees_new_and_moved_runs(self, storage, storage_factory):
        storage.wait_for_runs(timeout=0)  # start watching
        assert not storage.wait_for_runs(timeout=0.2)
        other = storage_factory()
        run = make_run()
        for change in (lambda: other.add_run(run),
                       lambda: other.transition_run(run.run_id, [S.NOT_STARTED], S.QUEUED),
                       lambda: other.claim_queued_runs("d", limit=1),
                       lambda: other.transition_run(run.run_id, [S.STARTING], S.FAILURE)):
            timer = threading.Timer(0.2, change)
            timer.start()
            try:
                start = time.monotonic()
                assert storage.wait_for_runs(timeout=10)
                assert time.monotonic() - start < 5
            finally:
                timer.join()
            while storage.wait_for_runs(timeout=0.2):  # drain: a change may be seen once or twice
                pass

    def test_tailing_reader_misses_nothing_under_concurrent_writers(self, storage, storage_factory):
        """A reader following one run by cursor (what `run logs --follow` and the web UI do) sees
        every event exactly once, in id order, while several writers append to the run."""
        run = make_run()
        storage.add_run(run)
        done = threading.Event()

        def writer(n: int) -> None:
            s = storage_factory()
            for batch in range(15):
                s.store_events([ev(run.run_id, f"w{n}-{batch}-{i}") for i in range(1 + (batch + n) % 4)])

        seen: list[int] = []

        def reader() -> None:
            s = storage_factory()
            cursor = None
            while True:
                finished = done.is_set()
                for e in s.get_events(run.run_id, after_id=cursor):
                    seen.append(e.id)
                    cursor = e.id
                if finished:
                    return

        tail = threading.Thread(target=reader)
        tail.start()
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        tail.join()
        events = storage.get_events(run.run_id)
        assert seen == [e.id for e in events]
        assert_batches_contiguous(events, key=lambda e: e.message.rsplit("-", 1)[0])

    # ---- key-value -------------------------------------------------------------------------------
    def test_kv(self, storage):
        assert storage.kv_get("k") is None
        storage.kv_set("k", "v1")
        storage.kv_set("k", "v2")
        assert storage.kv_get("k") == "v2"


def assert_batches_contiguous(events: list[Event], key: Callable[[Event], object]) -> None:
    """The deterministic order concurrent writers get: a run's events in id order hold each
    ``store_events`` batch (events with the same ``key``) together, in the order it was given,
    never interleaved with another writer's batch (writers of one run take turns)."""
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    seen: set[object] = set()
    previous: object = object()
    for e in events:
        k = key(e)
        if k != previous:
            assert k not in seen, f"batch {k!r} is split by another writer's events"
            seen.add(k)
            previous = k


class SqlStorageConformanceSuite(SqlLastRunsByTagChecks, StorageConformanceSuite):
    """The generic suite plus checks of the shared SQL schema, for storages built on
    :class:`runyard.storage.sql.SqlRunStorage`."""

    def test_schema_is_at_head(self, storage):
        from ..storage.sql.schema import HEAD_REVISION

        assert storage.schema_revision() == HEAD_REVISION
        before, after = storage.migrate()
        assert before == after == HEAD_REVISION

    def test_tables_and_columns_are_the_models(self, storage):
        from sqlalchemy import inspect

        from ..storage.sql.schema import metadata

        insp = inspect(storage.engine)
        assert set(insp.get_table_names()) - {"alembic_version"} == set(metadata.tables)
        for name, table in metadata.tables.items():
            assert {c["name"] for c in insp.get_columns(name)} == {c.name for c in table.columns}, name
            assert {i["name"] for i in insp.get_indexes(name)} >= {i.name for i in table.indexes}, name

    def test_recent_step_stats_are_one_query(self, storage):
        from sqlalchemy import event

        for i in range(5):
            run = make_run("one_query", created_at=float(i))
            storage.add_run(run)
            storage.store_events([ev(run.run_id, "", EventType.STEP_START, step_key="a", timestamp=1.0),
                                  ev(run.run_id, "", EventType.STEP_SUCCESS, step_key="a", timestamp=2.0)])
        statements: list[str] = []

        def count(conn, cursor, statement, *args) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "events" in statement:
                statements.append(statement)

        event.listen(storage.engine, "before_cursor_execute", count)
        try:
            assert len(storage.get_recent_step_stats("one_query", runs=5)) == 5
        finally:
            event.remove(storage.engine, "before_cursor_execute", count)
        assert len(statements) == 1, statements

    def test_a_runs_event_writers_take_turns(self, storage, storage_factory):
        """Deterministically: while one transaction has written a run's event and not committed,
        another writer of that run waits, so ids follow commit order and a reader following the run
        by ``after_id`` can never see the later event first and then skip the earlier one."""
        run = make_run()
        storage.add_run(run)
        holding, release = threading.Event(), threading.Event()

        def first(conn) -> None:
            storage.insert_events(conn, [ev(run.run_id, "first")])
            holding.set()
            release.wait(20)

        a = threading.Thread(target=storage.transact, args=(first,))
        a.start()
        try:
            assert holding.wait(20)
            b = threading.Thread(target=storage_factory().store_events, args=([ev(run.run_id, "second")],))
            b.start()
            time.sleep(0.5)
            assert storage.get_events(run.run_id) == []  # "second" must not commit before "first"
            assert b.is_alive()
        finally:
            release.set()
            a.join(30)
        b.join(30)
        assert [e.message for e in storage.get_events(run.run_id)] == ["first", "second"]

    def check_prepared_once(self, storage) -> None:
        from sqlalchemy import text

        with storage.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
