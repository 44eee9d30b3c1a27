"""The run page's reads on PostgreSQL (its plan, its step events, step stats) read
``idx_events_run_type``, not every event of the run (issue 14: the first view of a 100,000-event run
folded 400 step events by reading 100,000 rows). ``EXPLAIN`` of every statement
:func:`runyard.testing.run_page_reads.run_page_statements` captures, after ``ANALYZE`` (what
autovacuum does after a load).

Needs: the PostgreSQL server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

from conftest import open_storage

from runyard.testing.run_page_reads import check_plans, run_page_statements, seed_long_runs
from runyard_storage_postgres.testing import create_database, drop_database


def test_the_run_page_reads_step_and_plan_events_through_their_index(pg_admin_url):
    url = create_database(pg_admin_url, prefix="runyard_runpage")
    storage = open_storage(url)
    try:
        run_id = seed_long_runs(storage)[1]
        with storage.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE events")
        sent = run_page_statements(storage, run_id)
        with storage.engine.connect() as conn:
            plans = [(sql, "\n".join(conn.exec_driver_sql("EXPLAIN " + sql, params).scalars().all()))
                     for sql, params in sent]
    finally:
        storage.dispose()
        drop_database(url, pg_admin_url)
    check_plans(plans, lambda plan: "Index Scan using idx_events_run_type on events" in plan
                and "Seq Scan" not in plan and "idx_events_run " not in plan)
