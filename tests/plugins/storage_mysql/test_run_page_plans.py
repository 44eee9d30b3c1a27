"""The run page's reads on MySQL/MariaDB (its plan, its step events, step stats) read
``idx_events_run_type``, not every event of the run (issue 14: the first view of a 100,000-event run
folded 400 step events by reading 100,000 rows). ``EXPLAIN`` of every statement
:func:`runyard.testing.run_page_reads.run_page_statements` captures, after ``ANALYZE TABLE``.

Needs: the MySQL/MariaDB server of this directory's conftest (a database created and dropped here).
"""

from __future__ import annotations

from runyard.testing.run_page_reads import check_plans, run_page_statements, seed_long_runs
from runyard_storage_mysql.testing import open_storage


def test_the_run_page_reads_step_and_plan_events_through_their_index(fresh_my_db):
    storage = open_storage(fresh_my_db)
    try:
        run_id = seed_long_runs(storage)[1]
        with storage.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE TABLE events")
        sent = run_page_statements(storage, run_id)
        with storage.engine.connect() as conn:
            plans = [(sql, repr([(r._mapping["key"], r._mapping["type"])
                                 for r in conn.exec_driver_sql("EXPLAIN " + sql, params)]))
                     for sql, params in sent]
    finally:
        storage.dispose()
    check_plans(plans, lambda plan: plan.startswith("[('idx_events_run_type', ") and "'ALL'" not in plan)
