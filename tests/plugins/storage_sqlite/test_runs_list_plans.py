"""The runs list's queries on SQLite read indexes, never every run (issue 14: a tag filter was a
correlated EXISTS that visited every run, 5.8 s at a million runs).

Every statement :meth:`get_runs` (one page) and :meth:`count_runs_by_status` send for each filter
of the runs list is captured and explained (``EXPLAIN QUERY PLAN``, with its parameters): no plan
scans the runs or run_tags table whole, none has a correlated subquery. Only an unfiltered list may
walk ``idx_runs_created`` (newest first, one page), and only unfiltered counts read a whole index.
The answers are checked against a filter applied in Python, so the fast paths stay right. The runs
are :class:`runyard.testing.runs_list.RunPopulation`'s, as in the PostgreSQL twin of this file.

Needs: nothing beyond Python's sqlite3 (a database file under pytest's tmp_path).
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from runyard.testing.runs_list import RUN_COLUMNS, RunPopulation, RunsListPlanSuite, selects_sent
from runyard_storage_sqlite.storage import SqliteRunStorage

# 10,000 runs a team (a common tag: the walk); 11 rare ones, of both teams (read from the tag index)
RUNS = RunPopulation(runs=20_000, teams=2, rare_every=1999, schedules=("nightly",))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("plans") / "runyard.db")
    storage = SqliteRunStorage(path)
    storage.check_ready()
    db = sqlite3.connect(path)
    marks = ",".join("?" * len(RUN_COLUMNS))
    db.executemany(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks})",
                   [RUNS.row(i) for i in range(RUNS.runs)])
    db.executemany("INSERT INTO run_tags (run_id, key, value) VALUES (?,?,?)",
                   [row for i in range(RUNS.runs) for row in RUNS.tag_rows(i)])
    db.commit()
    db.close()
    yield storage
    storage.dispose()


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


class TestSqliteRunsListPlans(RunsListPlanSuite):
    RUNS = RUNS

    def plans(self, storage, call) -> list[tuple[str, list[str]]]:
        """(statement, its EXPLAIN QUERY PLAN lines) of every SELECT ``call()`` sends."""
        sent = selects_sent(storage, call)
        with storage.engine.connect() as conn:
            return [(sql, [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)])
                    for sql, params in sent]

    def check_page(self, name, plans) -> None:
        # the unfiltered list, and the walk of a common tag, read runs newest first from idx_runs_created
        # and stop after one page
        _check(plans, may_walk_created=name == "none" or "common tag" in name)

    def check_counts(self, name, plans) -> None:
        # counting every run of the instance (or a time range) reads a whole index, never the table
        _check(plans, may_walk_created=False, may_read_whole_index=name in ("none", "time range"))
