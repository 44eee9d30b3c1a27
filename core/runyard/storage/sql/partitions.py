"""The last run per tag value (a partition's status: the last run of each ``runyard/partition``
value) on the shared SQL schema (docs/partitions.md).

A mixin of :class:`~.storage.SqlRunStorage`. One query picks the runs: the tag's rows are read from
the ``(key, value)`` index of ``run_tags`` (only the runs that carry the tag, never every run),
joined to ``runs`` by primary key, and a window function keeps the newest run of each value
(``ROW_NUMBER() OVER (PARTITION BY value ORDER BY created_at DESC, run_id DESC)``: SQLite 3.25+,
PostgreSQL, MySQL 8 and MariaDB 10.2+). The chosen runs' tags are then read by primary key, as
``get_runs`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..records import RunRecord
from . import schema as s

#: values per query when ``values`` is given (bound parameters stay well under every database's limit)
_VALUES_CHUNK = 900


class SqlPartitionRecords:
    """:meth:`runyard.storage.base.RunStorage.get_last_runs_by_tag` in SQL."""

    query: Callable[..., Any]
    _run_from_row: Callable[..., RunRecord]
    _tags_for: Callable[[Connection, list[str]], dict[str, dict[str, str]]]

    def get_last_runs_by_tag(self, tag_key: str, job_name: str | None = None,
                             values: Iterable[str] | None = None) -> dict[str, RunRecord]:
        wanted = None if values is None else sorted({str(v) for v in values})
        if wanted is not None and not wanted:
            return {}

        def last_runs(conn: Connection, chunk: list[str] | None) -> list[Any]:
            t, r = s.run_tags.c, s.runs.c
            rank = func.row_number().over(partition_by=t.value, order_by=(r.created_at.desc(), r.run_id.desc()))
            clauses = [t.key == tag_key]
            if chunk is not None:
                clauses.append(t.value.in_(chunk))
            if job_name is not None:
                # wrapped (`|| ''`) so no planner drives from idx_runs_job: a job's runs outnumber
                # the ones carrying the tag (every run of the job, against one per partition run)
                clauses.append(r.job_name.concat("") == job_name)
            ranked = (select(s.runs, t.value.label("tag_value"), rank.label("rank"))
                      .select_from(s.run_tags.join(s.runs, r.run_id == t.run_id))
                      .where(*clauses).subquery())
            return conn.execute(select(ranked).where(ranked.c.rank == 1)).all()

        def op(conn: Connection) -> dict[str, RunRecord]:
            rows: list[Any] = []
            if wanted is None:
                rows = last_runs(conn, None)
            else:
                for start in range(0, len(wanted), _VALUES_CHUNK):
                    rows.extend(last_runs(conn, wanted[start:start + _VALUES_CHUNK]))
            tags = self._tags_for(conn, [row.run_id for row in rows])
            return {row.tag_value: self._run_from_row(row, tags[row.run_id]) for row in rows}

        return self.query(op)
