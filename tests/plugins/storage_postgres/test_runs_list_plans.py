"""The runs list's queries on PostgreSQL read indexes, never every run (issue 14: at a million runs
every runs query counted all matching runs, 44 ms of a 61 ms query).

100,000 runs (:class:`runyard.testing.runs_list.RunPopulation`) are copied into a database of this
module's own and analyzed (what autovacuum does after a load: the planner's statistics). Every
statement :meth:`get_runs` (one page) sends for each filter of the runs list is captured and
explained (``EXPLAIN (FORMAT JSON)``, with its parameters): no ``Seq Scan`` of runs or run_tags, no
correlated ``SubPlan``. Counts per status may read a whole table when they count most of it (that is
the cheapest way), but never with a correlated subquery. The answers are checked against a filter
applied in Python. The SQLite twin of this file is tests/plugins/storage_sqlite/test_runs_list_plans.py.

Needs: the PostgreSQL server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

import csv
import io

import psycopg2
import pytest
from conftest import open_storage

from runyard.testing.runs_list import RUN_COLUMNS, RunPopulation, RunsListPlanSuite, selects_sent
from runyard_storage_postgres.testing import create_database, drop_database

RUNS = RunPopulation(runs=100_000, teams=7, rare_every=10_000,  # ~14,000 runs a team; 10 rare ones
                     schedules=tuple(f"schedule_{n}" for n in range(5)))


@pytest.fixture(scope="module")
def seeded(pg_admin_url):
    url = create_database(pg_admin_url, prefix="runyard_plans")
    storage = open_storage(url)
    try:
        runs, tags = io.StringIO(), io.StringIO()
        rw, tw = csv.writer(runs), csv.writer(tags)
        for i in range(RUNS.runs):
            rw.writerow(RUNS.row(i))
            tw.writerows(RUNS.tag_rows(i))
        db = psycopg2.connect(url)
        try:
            with db.cursor() as cur:
                runs.seek(0)
                tags.seek(0)
                cur.copy_expert(f"COPY runs ({', '.join(RUN_COLUMNS)}) FROM STDIN WITH CSV", runs)
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


class TestPostgresRunsListPlans(RunsListPlanSuite):
    RUNS = RUNS

    def plans(self, storage, call) -> list[tuple[str, dict]]:
        """(statement, its plan) of every SELECT ``call()`` sends."""
        sent = selects_sent(storage, call)
        with storage.engine.connect() as conn:
            return [(sql, conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).scalar()[0]["Plan"])
                    for sql, params in sent]

    def check_page(self, name, plans) -> None:
        _check(plans, may_scan=False)

    def check_counts(self, name, plans) -> None:
        _check(plans, may_scan=True)
