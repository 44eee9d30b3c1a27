"""The runs list's queries on SQLite read indexes, never every run (issue 14: a tag filter was a
correlated EXISTS that visited every run, 5.8 s at a million runs).

Every statement :meth:`get_runs` (one page) and :meth:`count_runs_by_status` send for each filter
of the runs list is captured and explained (``EXPLAIN QUERY PLAN``, with its parameters): no plan
scans the runs or run_tags table whole, none has a correlated subquery. Only an unfiltered list may
walk ``idx_runs_created`` (newest first, one page), and only unfiltered counts read a whole index.
The answers are checked against a filter applied in Python, so the fast paths stay right.

Needs: nothing beyond Python's sqlite3 (a database file under pytest's tmp_path).
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from sqlalchemy import event

from runyard.storage.records import RunFilter, RunStatus
from runyard.tags import SCHEDULE_TAG, USER_TAG
from runyard_storage_sqlite.storage import SqliteRunStorage

N = 20_000
STATUSES = ["SUCCESS"] * 16 + ["FAILURE"] * 3 + ["CANCELED"]


def _tags(i: int) -> dict[str, str]:
    tags = {"team": f"team-{i % 2}"}  # 10,000 runs each: a common tag (the walk)
    if i % 2000 == 0:
        tags["rare"] = "yes"  # 10 runs: read from the tag index
    if i % 50 == 1:
        tags[SCHEDULE_TAG] = "nightly"
    elif i % 50 == 2:
        tags[USER_TAG] = "alice"
    return tags


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("plans") / "runyard.db")
    storage = SqliteRunStorage(path)
    storage.check_ready()
    db = sqlite3.connect(path)
    runs, tags = [], []
    for i in range(N):
        run_id = f"run-{i:06d}"
        runs.append((run_id, f"job_{i % 20}", STATUSES[(i // 3) % 20], "{}", "{}", "{}", 1000.0 + i, 1000.0 + i, 0))
        tags.extend((run_id, k, v) for k, v in _tags(i).items())
    db.executemany("INSERT INTO runs (run_id, job_name, status, run_config, code_pointer, launcher_info, "
                   "created_at, updated_at, priority) VALUES (?,?,?,?,?,?,?,?,?)", runs)
    db.executemany("INSERT INTO run_tags (run_id, key, value) VALUES (?,?,?)", tags)
    db.commit()
    db.close()
    yield storage
    storage.dispose()


FILTERS = {
    "none": RunFilter(),
    "job": RunFilter(job_name="job_3"),
    "status": RunFilter(statuses=[RunStatus.FAILURE]),
    "two statuses": RunFilter(statuses=[RunStatus.FAILURE, RunStatus.CANCELED]),
    "selective tag": RunFilter(tags={"rare": "yes"}),
    "common tag": RunFilter(tags={"team": "team-1"}),
    "status and common tag": RunFilter(statuses=[RunStatus.FAILURE], tags={"team": "team-1"}),
    "two statuses and common tag": RunFilter(statuses=[RunStatus.FAILURE, RunStatus.CANCELED],
                                             tags={"team": "team-1"}),
    "two tags": RunFilter(tags={"team": "team-1", "rare": "yes"}),
    "launched by a schedule": RunFilter(tags={SCHEDULE_TAG: "nightly"}),
    "launched by anyone": RunFilter(tag_keys=[USER_TAG]),
    "time range": RunFilter(created_after=5000.0, created_before=6000.0),
    "job and time range": RunFilter(job_name="job_3", created_after=5000.0, created_before=6000.0),
}


def _matches(i: int, f: RunFilter) -> bool:
    tags = _tags(i)
    return ((not f.statuses or STATUSES[(i // 3) % 20] in {s.value for s in f.statuses})
            and (f.job_name is None or f.job_name == f"job_{i % 20}")
            and all(tags.get(k) == v for k, v in (f.tags or {}).items())
            and all(k in tags for k in f.tag_keys or ())
            and (f.created_after is None or 1000.0 + i >= f.created_after)
            and (f.created_before is None or 1000.0 + i < f.created_before))


def _plans(storage, call) -> list[tuple[str, list[str]]]:
    """(statement, its EXPLAIN QUERY PLAN lines) of every SELECT ``call()`` sends."""
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    event.listen(storage.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)
    with storage.engine.connect() as conn:
        return [(sql, [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)])
                for sql, params in sent]


def _check(plans, *, may_walk_created: bool, may_read_whole_index: bool = False) -> None:
    for sql, plan in plans:
        text = json.dumps(plan)
        assert "CORRELATED" not in text, f"a correlated subquery:\n{sql}\n{plan}"
        for line in plan:
            assert not re.fullmatch(r"SCAN (runs|run_tags|common_tag_\d+)", line), f"a table scan:\n{sql}\n{plan}"
            assert not line.startswith("SCAN run_tags"), f"the tags read whole:\n{sql}\n{plan}"
            if line.startswith("SCAN runs"):
                allowed = (may_walk_created and "idx_runs_created" in line) or (
                    may_read_whole_index and "COVERING INDEX" in line)
                assert allowed, f"the runs read whole:\n{sql}\n{plan}"


@pytest.mark.parametrize("name", list(FILTERS))
def test_a_page_reads_indexes_only(seeded, name):
    f = FILTERS[name]
    got = []
    plans = _plans(seeded, lambda: got.extend(seeded.get_runs(f, limit=51)))
    expected = [f"run-{i:06d}" for i in reversed(range(N)) if _matches(i, f)][:51]
    assert [r.run_id for r in got] == expected
    # the unfiltered list, and the walk of a common tag, read runs newest first from idx_runs_created
    # and stop after one page
    _check(plans, may_walk_created=name in ("none",) or "common tag" in name)


@pytest.mark.parametrize("name", list(FILTERS))
def test_the_next_page_follows_the_cursor(seeded, name):
    f = FILTERS[name]
    first = seeded.get_runs(f, limit=20)
    if len(first) < 20:
        return
    second = seeded.get_runs(f, limit=20, cursor=first[-1].run_id)
    expected = [f"run-{i:06d}" for i in reversed(range(N)) if _matches(i, f)][20:40]
    assert [r.run_id for r in second] == expected


@pytest.mark.parametrize("name", list(FILTERS))
def test_counts_per_status_have_no_correlated_subquery(seeded, name):
    f = FILTERS[name]
    counts: dict = {}
    plans = _plans(seeded, lambda: counts.update(seeded.count_runs_by_status(f)))
    expected: dict[RunStatus, int] = {}
    for i in range(N):
        if _matches(i, f):
            st = RunStatus(STATUSES[(i // 3) % 20])
            expected[st] = expected.get(st, 0) + 1
    assert counts == expected
    # counting every run of the instance (or of two statuses) reads a whole index, never the table
    _check(plans, may_walk_created=False, may_read_whole_index=name in ("none", "time range"))
