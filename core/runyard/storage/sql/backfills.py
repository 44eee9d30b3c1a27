"""Backfills on the shared SQL schema (table ``backfills``; docs/backfills.md).

A mixin of :class:`~.storage.SqlRunStorage`: it writes through ``transact`` and reads through
``query``, so a backend's retries and outage handling cover this table as they cover the runs. The
batch of a backfill's runs and the move of its cursor are one transaction
(:meth:`SqlBackfillRecords.submit_backfill_runs`): the backfill's row is locked, its cursor compared,
the runs inserted, the cursor moved — a daemon retrying a batch another one already made finds the
cursor moved and writes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..records import BackfillRecord, BackfillStatus, CodePointer, Event, Lease, RunRecord
from . import schema as s

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


class SqlBackfillRecords:
    """The backfill methods of :class:`~runyard.storage.base.RunStorage` in SQL."""

    transact: Callable[..., Any]
    query: Callable[..., Any]
    dialect: Any
    _run_row: Callable[[RunRecord], dict[str, Any]]
    _lease_select: Callable[[str], Any]
    insert_events: Callable[[Connection, Sequence[Event]], None]
    runs_changed: Callable[[Connection, Sequence[tuple[str, str]]], None]

    def add_backfill(self, backfill: BackfillRecord) -> BackfillRecord:
        now = time.time()
        row = {"backfill_id": backfill.backfill_id, "location": backfill.location, "job_name": backfill.job_name,
               "status": BackfillStatus(backfill.status).value, "partition_keys": _dumps(list(backfill.partition_keys)),
               "num_partitions": len(backfill.partition_keys), "submitted": backfill.submitted,
               "code_pointer": _dumps(backfill.code_pointer.to_dict()), "tags": _dumps(dict(backfill.tags)),
               "created_at": backfill.created_at, "updated_at": now, "error": backfill.error,
               "retry_of": backfill.retry_of}
        self.transact(lambda conn: conn.execute(insert(s.backfills).values(**row)))
        backfill.updated_at = now
        return backfill

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None:
        query = select(s.backfills).where(s.backfills.c.backfill_id == backfill_id)
        row = self.query(lambda conn: conn.execute(query).first())
        return _backfill_from_row(row) if row is not None else None

    def get_backfills(self, statuses: Iterable[BackfillStatus] | None = None, limit: int | None = None,
                      cursor: str | None = None, job_name: str | None = None,
                      locations: Sequence[str] | None = None) -> list[BackfillRecord]:
        b = s.backfills.c
        wanted = [BackfillStatus(x).value for x in statuses] if statuses is not None else None
        if (wanted is not None and not wanted) or (locations is not None and not locations) or limit == 0:
            return []

        def op(conn: Connection) -> list[BackfillRecord]:
            query = select(s.backfills)
            if wanted is not None:
                query = query.where(b.status.in_(wanted))
            if job_name is not None:
                query = query.where(b.job_name == job_name)
            if locations is not None:
                query = query.where(b.location.in_(list(locations)))
            if cursor:
                anchor = conn.execute(select(b.created_at).where(b.backfill_id == cursor)).scalar()
                if anchor is not None:
                    query = query.where(or_(b.created_at < anchor,
                                            and_(b.created_at == anchor, b.backfill_id < cursor)))
            query = query.order_by(b.created_at.desc(), b.backfill_id.desc())
            if limit:
                query = query.limit(limit)
            return [_backfill_from_row(r) for r in conn.execute(query).all()]

        return self.query(op)

    def update_backfill(self, backfill_id: str, status: BackfillStatus, *,
                        expected: Iterable[BackfillStatus] | None = None, error: str | None = None) -> bool:
        b = s.backfills.c
        values: dict[str, Any] = {"status": BackfillStatus(status).value, "updated_at": time.time()}
        if error is not None:
            values["error"] = error
        statement = update(s.backfills).where(b.backfill_id == backfill_id)
        if expected is not None:
            statement = statement.where(b.status.in_([BackfillStatus(x).value for x in expected]))
        return self.transact(lambda conn: conn.execute(statement.values(**values)).rowcount == 1)

    def submit_backfill_runs(self, backfill_id: str, expected_submitted: int, runs: Sequence[RunRecord],
                             events: Sequence[Event] = (), *, fence: Lease | None = None) -> bool:
        b = s.backfills.c
        run_rows = [self._run_row(run) for run in runs]
        tag_rows = [{"run_id": run.run_id, "key": k, "value": str(v)} for run in runs for k, v in run.tags.items()]
        requested = BackfillStatus.REQUESTED.value

        def op(conn: Connection) -> bool:
            if fence is not None:
                lease = conn.execute(self._lease_select(fence.name)).first()
                if (lease is None or lease.holder != fence.holder or lease.token != fence.token
                        or lease.expires_at < time.time()):
                    return False
            row = conn.execute(self.dialect.lock_rows(
                select(b.status, b.submitted, b.num_partitions).where(b.backfill_id == backfill_id))).first()
            if row is None or row.status != requested or row.submitted != expected_submitted:
                return False
            moved = expected_submitted + len(runs)
            status = BackfillStatus.COMPLETED.value if moved >= row.num_partitions else requested
            changed = conn.execute(update(s.backfills).where(
                b.backfill_id == backfill_id, b.status == requested, b.submitted == expected_submitted)
                .values(submitted=moved, status=status, updated_at=time.time())).rowcount
            if changed != 1:
                return False
            if run_rows:
                conn.execute(insert(s.runs), run_rows)
                if tag_rows:
                    conn.execute(insert(s.run_tags), tag_rows)
                if events:
                    self.insert_events(conn, events)
                self.runs_changed(conn, [(run.run_id, run.status.value) for run in runs])
            return True

        return self.transact(op)


def _backfill_from_row(r: Any) -> BackfillRecord:
    return BackfillRecord(backfill_id=r.backfill_id, location=r.location, job_name=r.job_name,
                          partition_keys=json.loads(r.partition_keys), status=BackfillStatus(r.status),
                          submitted=int(r.submitted), code_pointer=CodePointer.from_dict(json.loads(r.code_pointer)),
                          tags=json.loads(r.tags), created_at=r.created_at, updated_at=r.updated_at,
                          error=r.error or None, retry_of=r.retry_of)
