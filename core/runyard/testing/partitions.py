"""The storage conformance checks of :meth:`RunStorage.get_last_runs_by_tag` (a partition's status is
its last run's; docs/partitions.md).

:class:`LastRunsByTagChecks` is part of :class:`runyard.testing.storage.StorageConformanceSuite` and
:class:`SqlLastRunsByTagChecks` of its SQL suite (they use the ``storage`` fixture). The SQL check
reads the query plan of the statement the method sends: it must start from the run tags'
``(key, value)`` index, so a partition status page costs the runs that carry the tag, not every run.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..storage.records import RunRecord, RunStatus

#: runyard.tags.PARTITION_TAG
PARTITION = "runyard/partition"


def _run(job: str, created_at: float, status: RunStatus = RunStatus.SUCCESS, **tags: str) -> RunRecord:
    return RunRecord(run_id=uuid.uuid4().hex, job_name=job, status=status, created_at=created_at,
                     tags={PARTITION: tags.pop("partition"), **tags} if "partition" in tags else dict(tags))


class LastRunsByTagChecks:
    """``get_last_runs_by_tag``: the newest run per tag value, filtered by job and values."""

    def test_last_run_per_tag_value(self, storage):
        t = time.time()
        old_a = _run("etl", t, RunStatus.FAILURE, partition="2024-01-01")
        new_a = _run("etl", t + 10, RunStatus.SUCCESS, partition="2024-01-01", team="x")
        only_b = _run("etl", t + 5, RunStatus.STARTED, partition="2024-01-02")
        other_job = _run("other", t + 20, RunStatus.FAILURE, partition="2024-01-01")
        untagged = _run("etl", t + 30)
        for run in (new_a, old_a, only_b, other_job, untagged):  # inserted out of time order
            storage.add_run(run)
        everything = storage.get_last_runs_by_tag(PARTITION)
        assert {k: r.run_id for k, r in everything.items()} == {"2024-01-01": other_job.run_id,
                                                                "2024-01-02": only_b.run_id}
        of_etl = storage.get_last_runs_by_tag(PARTITION, job_name="etl")
        assert {k: r.run_id for k, r in of_etl.items()} == {"2024-01-01": new_a.run_id,
                                                           "2024-01-02": only_b.run_id}
        got = of_etl["2024-01-01"]  # a whole run record: status and every tag
        assert got.status == RunStatus.SUCCESS and got.job_name == "etl"
        assert got.tags == {PARTITION: "2024-01-01", "team": "x"}
        assert storage.get_last_runs_by_tag(PARTITION, job_name="nobody") == {}
        assert storage.get_last_runs_by_tag("runyard/no_such_tag") == {}

    def test_values_filter_and_many_values(self, storage):
        t = time.time()
        runs = [_run("many", t + i, partition=f"p{i:04d}") for i in range(1200)]
        for run in runs:
            storage.add_run(run)
        wanted = [f"p{i:04d}" for i in range(0, 1200, 1)] + ["absent"]
        got = storage.get_last_runs_by_tag(PARTITION, job_name="many", values=wanted)
        assert len(got) == 1200 and got["p0007"].run_id == runs[7].run_id
        some = storage.get_last_runs_by_tag(PARTITION, values=["p0001", "p0002", "absent"])
        assert set(some) == {"p0001", "p0002"}
        assert storage.get_last_runs_by_tag(PARTITION, values=[]) == {}

    def test_ties_on_created_at_pick_one_run(self, storage):
        t = time.time()
        a, b = _run("tie", t, partition="k"), _run("tie", t, partition="k")
        storage.add_run(a)
        storage.add_run(b)
        got = storage.get_last_runs_by_tag(PARTITION, job_name="tie")
        assert list(got) == ["k"] and got["k"].run_id == max(a.run_id, b.run_id)

    def test_values_are_exact(self, storage):
        t = time.time()
        storage.add_run(_run("exact", t, partition="A"))
        storage.add_run(_run("exact", t + 1, partition="a"))
        storage.add_run(_run("exact", t + 2, partition="a "))
        got = storage.get_last_runs_by_tag(PARTITION, job_name="exact")
        assert sorted(got) == ["A", "a", "a "]
        assert list(storage.get_last_runs_by_tag(PARTITION, values=["A"])) == ["A"]


def _explain(storage: Any, sql: str, params: Any) -> str:
    """The plan of ``sql`` as one text, in the engine's dialect."""
    name = storage.engine.dialect.name
    with storage.engine.connect() as conn:
        if name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            return " / ".join(str(row[3]) for row in rows)
        if name == "postgresql":
            return " / ".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql, params).all())
        rows = conn.exec_driver_sql("EXPLAIN " + sql, params).mappings().all()
        return " / ".join(f"{row.get('table')}:{row.get('type')}:{row.get('key')}" for row in rows)


class SqlLastRunsByTagChecks:
    """The SQL implementation picks the runs in one statement that starts from ``idx_run_tags_kv``."""

    def test_last_runs_by_tag_is_one_statement_from_the_tag_index(self, storage):
        from sqlalchemy import event, insert, text

        from ..storage.sql import schema as s

        # many runs without the tag and a few with it, so a planner with statistics prefers the index
        t = time.time()
        rows, tag_rows = [], []
        for i in range(3000):
            run = _run("bulk", t + i, team=f"t{i % 7}", other=str(i))
            rows.append(storage._run_row(run))
            tag_rows.extend({"run_id": run.run_id, "key": k, "value": v} for k, v in run.tags.items())
        with storage.engine.begin() as conn:
            conn.execute(insert(s.runs), rows)
            conn.execute(insert(s.run_tags), tag_rows)
        for i in range(20):
            storage.add_run(_run("bulk", t + 5000 + i, partition=f"k{i % 5}"))
        with storage.engine.begin() as conn:
            dialect = storage.engine.dialect.name
            conn.execute(text("ANALYZE TABLE runs, run_tags" if dialect in ("mysql", "mariadb") else "ANALYZE"))
        sent: list[tuple[str, Any]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                sent.append((statement, parameters))

        event.listen(storage.engine, "before_cursor_execute", capture)
        try:
            got = storage.get_last_runs_by_tag(PARTITION, job_name="bulk")
        finally:
            event.remove(storage.engine, "before_cursor_execute", capture)
        assert sorted(got) == [f"k{i}" for i in range(5)]
        assert all(r.created_at >= t + 5015 for r in got.values())
        picking = [(sql, p) for sql, p in sent if "row_number" in sql.lower()]
        assert len(picking) == 1, sent  # one statement picks the runs (then their tags, by run id)
        assert len(sent) == 2, sent
        plan = _explain(storage, *picking[0])
        assert "idx_run_tags_kv" in plan, plan
