"""The runs list's queries on PostgreSQL read indexes, never every run (issue 14: at a million runs
every runs query counted all matching runs, 44 ms of a 61 ms query).

100,000 runs are copied into a database of this module's own and analyzed (what autovacuum does
after a load: the planner's statistics). Every statement :meth:`get_runs` (one page) sends for each
filter of the runs list is captured and explained (``EXPLAIN (FORMAT JSON)``, with its parameters):
no ``Seq Scan`` of runs or run_tags, no correlated ``SubPlan``. Counts per status may read a whole
table when they count most of it (that is the cheapest way), but never with a correlated subquery.
The answers are checked against a filter applied in Python.

Needs: the PostgreSQL server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

import csv
import io

import psycopg2
import pytest
from conftest import open_storage
from sqlalchemy import event

from runyard.storage.records import RunFilter, RunStatus
from runyard.tags import SCHEDULE_TAG, USER_TAG
from runyard_storage_postgres.testing import create_database, drop_database

N = 100_000
STATUSES = ["SUCCESS"] * 16 + ["FAILURE"] * 3 + ["CANCELED"]


def _tags(i: int) -> dict[str, str]:
    tags = {"team": f"team-{i % 7}"}  # ~14,000 runs each: a common tag
    if i % 10_000 == 0:
        tags["rare"] = "yes"  # 10 runs
    if i % 50 == 1:
        tags[SCHEDULE_TAG] = f"schedule_{i % 5}"
    elif i % 50 == 2:
        tags[USER_TAG] = "alice"
    return tags


@pytest.fixture(scope="module")
def seeded(pg_admin_url):
    url = create_database(pg_admin_url, prefix="runyard_plans")
    storage = open_storage(url)
    try:
        runs, tags = io.StringIO(), io.StringIO()
        rw, tw = csv.writer(runs), csv.writer(tags)
        for i in range(N):
            run_id = f"run-{i:06d}"
            rw.writerow((run_id, f"job_{i % 20}", STATUSES[(i // 3) % 20], "{}", "{}", "{}", 1000.0 + i,
                         1000.0 + i, 0))
            tw.writerows((run_id, k, v) for k, v in _tags(i).items())
        db = psycopg2.connect(url)
        try:
            with db.cursor() as cur:
                runs.seek(0)
                tags.seek(0)
                cur.copy_expert("COPY runs (run_id, job_name, status, run_config, code_pointer, launcher_info, "
                                "created_at, updated_at, priority) FROM STDIN WITH CSV", runs)
                cur.copy_expert("COPY run_tags (run_id, key, value) FROM STDIN WITH CSV", tags)
            db.commit()
            db.autocommit = True
            with db.cursor() as cur:
                cur.execute("VACUUM ANALYZE runs")
                cur.execute("VACUUM ANALYZE run_tags")
        finally:
            db.close()
        yield storage
    finally:
        storage.dispose()
        drop_database(url, pg_admin_url)


FILTERS = {
    "none": RunFilter(),
    "job": RunFilter(job_name="job_3"),
    "status": RunFilter(statuses=[RunStatus.FAILURE]),
    "two statuses": RunFilter(statuses=[RunStatus.FAILURE, RunStatus.CANCELED]),
    "selective tag": RunFilter(tags={"rare": "yes"}),
    "common tag": RunFilter(tags={"team": "team-3"}),
    "status and common tag": RunFilter(statuses=[RunStatus.FAILURE], tags={"team": "team-3"}),
    "two tags": RunFilter(tags={"team": "team-0", "rare": "yes"}),
    "launched by a schedule": RunFilter(tags={SCHEDULE_TAG: "schedule_1"}),
    "launched by anyone": RunFilter(tag_keys=[USER_TAG]),
    "time range": RunFilter(created_after=50_000.0, created_before=51_000.0),
}


def _matches(i: int, f: RunFilter) -> bool:
    tags = _tags(i)
    return ((not f.statuses or STATUSES[(i // 3) % 20] in {s.value for s in f.statuses})
            and (f.job_name is None or f.job_name == f"job_{i % 20}")
            and all(tags.get(k) == v for k, v in (f.tags or {}).items())
            and all(k in tags for k in f.tag_keys or ())
            and (f.created_after is None or 1000.0 + i >= f.created_after)
            and (f.created_before is None or 1000.0 + i < f.created_before))


def _plans(storage, call) -> list[tuple[str, dict]]:
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
        return [(sql, conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).scalar()[0]["Plan"])
                for sql, params in sent]


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _check(plans, *, may_scan: bool) -> None:
    for sql, plan in plans:
        for node in _nodes(plan):
            assert node.get("Parent Relationship") != "SubPlan", f"a correlated subquery:\n{sql}\n{plan}"
            if not may_scan:
                assert not (node["Node Type"] == "Seq Scan" and node.get("Relation Name") in ("runs", "run_tags")), \
                    f"a sequential scan of {node.get('Relation Name')}:\n{sql}\n{plan}"


@pytest.mark.parametrize("name", list(FILTERS))
def test_a_page_reads_indexes_only(seeded, name):
    f = FILTERS[name]
    got = []
    plans = _plans(seeded, lambda: got.extend(seeded.get_runs(f, limit=51)))
    expected = [f"run-{i:06d}" for i in reversed(range(N)) if _matches(i, f)][:51]
    assert [r.run_id for r in got] == expected
    _check(plans, may_scan=False)


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
    _check(plans, may_scan=True)
