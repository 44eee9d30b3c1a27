"""The run page's reads on SQLite (its plan, its step events, step stats) read
``idx_events_run_type``, not every event of the run (issue 14: the first view of a 100,000-event run
folded 400 step events by reading 100,000 rows). ``EXPLAIN QUERY PLAN`` of every statement
:func:`runyard.testing.run_page_reads.run_page_statements` captures.

Needs: nothing beyond Python's sqlite3 (a database file under pytest's tmp_path).
"""

from __future__ import annotations

from runyard.testing.run_page_reads import check_plans, run_page_statements, seed_long_runs
from runyard_storage_sqlite.storage import SqliteRunStorage


def test_the_run_page_reads_step_and_plan_events_through_their_index(tmp_path):
    storage = SqliteRunStorage(str(tmp_path / "runyard.db"))
    storage.check_ready()
    try:
        run_id = seed_long_runs(storage)[1]
        sent = run_page_statements(storage, run_id)
        with storage.engine.connect() as conn:
            plans = [(sql, " / ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)))
                     for sql, params in sent]
    finally:
        storage.dispose()
    check_plans(plans, lambda plan: plan.startswith("SEARCH events USING INDEX idx_events_run_type (run_id=? "
                                                    "AND event_type=?") and "TEMP" not in plan.split(" / ")[0])
