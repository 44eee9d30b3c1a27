"""SqlRunStorage: one implementation of the storage interface for every SQL backend.

What differs between databases — column types, row locks, the locks that order event writers and
limited queue claims, first-time schema creation, retryable errors — comes from the
:class:`~.dialects.SqlDialect` registered for the engine's dialect (:attr:`SqlRunStorage.dialect`),
so a backend plugin only builds the engine. API tokens and the audit log are in :mod:`.access`,
backfills in :mod:`.backfills`.

Every write is one transaction run by :meth:`SqlRunStorage.transact` and every read goes through
:meth:`SqlRunStorage.query`. Beyond correctness, a backend may override those two (to retry after a
dropped connection), ``insert_events`` and ``runs_changed`` (to send notifications), as the
Postgres plugin does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, event, func, insert, or_, select, text, union_all, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ...errors import SchemaRevisionError, StorageError, StorageUnavailableError
from ...tags import PRIORITY_TAG
from ..base import (
    IN_PROGRESS_STATUSES,
    UNFINISHED_STATUSES,
    ClaimLimits,
    RunStorage,
    apply_step_event,
    claim_event,
    run_priority,
    select_within_limits,
)
from ..records import (
    FINISHED_STATUSES,
    STATUS_EVENT,
    STEP_STATUS_EVENTS,
    CodePointer,
    Event,
    EventType,
    Lease,
    RunFilter,
    RunRecord,
    RunStatus,
    StepStats,
    Tick,
    TickStatus,
)
from . import schema as s
from .access import SqlAccessRecords
from .backfills import SqlBackfillRecords
from .dialects import QUEUE_CLAIMS, SqlDialect, dialect_for
from .partitions import SqlPartitionRecords

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
T = TypeVar("T")
RELEASED = ""  # the holder of a released lease
#: how often a write transaction the server rolled back (deadlock victim) runs again
WRITE_ATTEMPTS = 5


#: the tags of a list of runs: one statement, its list bound at execution (not 500 literal
#: parameters coerced and cache-keyed on every call)
_TAGS_OF_RUNS = (select(s.run_tags.c.run_id, s.run_tags.c.key, s.run_tags.c.value)
                 .where(s.run_tags.c.run_id.in_(bindparam("run_ids", expanding=True))))


def _loads(value: str | None, default: Any = None) -> Any:
    return json.loads(value) if value else default


class SqlRunStorage(SqlAccessRecords, SqlBackfillRecords, SqlPartitionRecords, RunStorage):
    """Run storage on a SQLAlchemy engine. Subclasses bring the engine; the dialect's
    :class:`~.dialects.SqlDialect` (registered with :func:`~.dialects.register_dialect`) brings
    everything that differs between databases."""

    def __init__(self, engine: Engine, *, display_url: str | None = None):
        self.engine = engine
        self.display_url = display_url or engine.url.render_as_string(hide_password=True)
        self._pid = os.getpid()
        #: what this storage needs to know about its database (see :mod:`.dialects`)
        self.dialect: SqlDialect = dialect_for(engine.dialect.name)
        event.listen(engine, "connect", self._on_dbapi_connect)

    def _on_dbapi_connect(self, dbapi_connection: Any, _record: Any) -> None:
        self.dialect.on_connect(dbapi_connection)

    # ---- connection handling ---------------------------------------------------------------------
    def _fork_guard(self) -> None:
        # A forked child must not reuse its parent's pooled connections.
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._fork_guard()
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            if self.dialect.is_outage(exc) is None:
                raise
            raise self._unreachable(exc) from exc
        except PoolTimeoutError as exc:
            raise self._pool_busy() from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (``runyard_write``: SQLite takes the write lock at BEGIN)."""
        self._fork_guard()
        try:
            with self.engine.connect() as conn:
                conn.execution_options(runyard_write=True)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            if self.dialect.is_retryable(exc):
                raise _Retry from exc
            if self.dialect.is_outage(exc) is not None:
                raise self._unreachable(exc) from exc
            raise
        except PoolTimeoutError as exc:
            raise self._pool_busy() from exc

    def transact(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction and return its result once committed.

        ``fn`` may run more than once — after the server rolled the transaction back
        (:meth:`SqlDialect.is_retryable`: a deadlock victim), or when a backend retries after a
        dropped connection (the Postgres plugin) — so it must only touch the database through
        ``conn`` and compute its result from what it read there."""
        attempt = 0
        while True:
            try:
                with self._write() as conn:
                    return fn(conn)
            except _Retry as retry:
                attempt += 1
                cause = retry.__cause__
                if attempt >= WRITE_ATTEMPTS:
                    if isinstance(cause, DBAPIError) and self.dialect.is_outage(cause) is not None:
                        raise self._unreachable(cause) from cause
                    raise cause from None
                time.sleep(0.01 * 2 ** attempt)

    def query(self, fn: Callable[[Connection], T]) -> T:
        """Run read-only ``fn`` on a connection; backends may retry it after a dropped connection."""
        with self._read() as conn:
            return fn(conn)

    def _unreachable(self, exc: DBAPIError) -> StorageError:
        """The error for a failure about the database itself: unavailable (a run worker waits it
        out) or permanent, as :meth:`SqlDialect.is_outage` says."""
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        hint = self.dialect.explain(exc)
        error = StorageError if self.dialect.is_outage(exc) is False else StorageUnavailableError
        return error(f"Storage {self.name or 'sql'} at {self.display_url} failed: {detail}"
                     + (f" {hint}" if hint else ""))

    def _pool_busy(self) -> StorageError:
        pool = self.engine.pool
        timeout = pool.timeout() if hasattr(pool, "timeout") else None
        waited = f" for {timeout:g} s (pool_timeout)" if timeout is not None else ""
        return StorageUnavailableError(f"Storage {self.name or 'sql'} at {self.display_url}: every connection of this "
                            f"process's pool stayed busy{waited}; raise pool_size / max_overflow, or "
                            "pool_timeout")

    def dispose(self) -> None:
        self.engine.dispose()

    def describe(self) -> dict[str, Any]:
        return {"storage": self.name, "url": self.display_url, "schema_revision": self.schema_revision()}

    # ---- schema ----------------------------------------------------------------------------------
    def schema_revision(self) -> str | None:
        def op(conn: Connection) -> str | None:
            if not conn.dialect.has_table(conn, "alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

        return self.query(op)

    def check_ready(self, *, create: bool = True) -> None:
        revision = self.schema_revision()
        self.dialect.check_server(self.engine.dialect)  # known once a connection was made
        if revision == s.HEAD_REVISION:
            return
        if revision is None:
            if create:
                self.migrate()
                return
            raise SchemaRevisionError(
                f"Storage at {self.display_url} has no runyard schema; run `runyard instance migrate`.")
        from .migrations import known_revisions

        if revision in known_revisions():
            raise SchemaRevisionError(
                f"Storage at {self.display_url} is at schema revision {revision}, this runyard needs "
                f"{s.HEAD_REVISION}: run `runyard instance migrate`.")
        raise SchemaRevisionError(
            f"Storage at {self.display_url} is at schema revision {revision}, which this runyard "
            f"(newest known: {s.HEAD_REVISION}) does not know: it was written by a newer runyard. "
            "Upgrade runyard; refusing to use it.")

    def migrate(self) -> tuple[str | None, str]:
        from .migrations import known_revisions, upgrade

        before = self.schema_revision()
        if before is not None and before not in known_revisions():
            self.check_ready(create=False)  # raises: written by a newer runyard, refuse to touch it

        # One write transaction under the dialect's schema lock, both on one connection (a pool of
        # one is enough): concurrent first-time openers of an empty database take turns (SQLite:
        # the write lock; PostgreSQL: an advisory lock; MySQL: a named lock, as its DDL commits on
        # its own), and the later ones find the schema at head.
        self._fork_guard()
        try:
            with self.engine.connect() as conn, self.dialect.schema_lock(conn):
                conn.execution_options(runyard_write=True)
                with conn.begin():
                    upgrade(conn)
        except OperationalError as exc:
            raise self._unreachable(exc) from exc
        except PoolTimeoutError as exc:
            raise self._pool_busy() from exc
        return before, self.schema_revision() or ""

    # ---- runs ------------------------------------------------------------------------------------
    @staticmethod
    def _run_row(run: RunRecord) -> dict[str, Any]:
        now = time.time()
        return {
            "run_id": run.run_id,
            "job_name": run.job_name,
            "status": run.status.value,
            "run_config": _dumps(run.run_config),
            "code_pointer": _dumps(run.code_pointer.to_dict()),
            "step_keys_to_execute": (_dumps(run.step_keys_to_execute)
                                     if run.step_keys_to_execute is not None else None),
            "parent_run_id": run.parent_run_id,
            "root_run_id": run.root_run_id,
            "launcher_info": _dumps(run.launcher_info),
            "created_at": run.created_at,
            "updated_at": now,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "priority": run_priority(run.tags),
        }

    @staticmethod
    def _run_from_row(row: Any, tags: dict[str, str]) -> RunRecord:
        return RunRecord(
            run_id=row.run_id,
            job_name=row.job_name,
            status=RunStatus(row.status),
            run_config=_loads(row.run_config, {}),
            tags=tags,
            code_pointer=CodePointer.from_dict(_loads(row.code_pointer, {})),
            step_keys_to_execute=_loads(row.step_keys_to_execute),
            parent_run_id=row.parent_run_id,
            root_run_id=row.root_run_id,
            launcher_info=_loads(row.launcher_info, {}),
            created_at=row.created_at,
            updated_at=row.updated_at,
            start_time=row.start_time,
            end_time=row.end_time,
        )

    def add_run(self, run: RunRecord, events: Sequence[Event] = ()) -> RunRecord:
        row = self._run_row(run)

        def op(conn: Connection) -> None:
            conn.execute(insert(s.runs), [row])
            if run.tags:
                conn.execute(insert(s.run_tags), [
                    {"run_id": run.run_id, "key": k, "value": str(v)} for k, v in run.tags.items()])
            if events:
                self.insert_events(conn, events)
            self.runs_changed(conn, [(run.run_id, run.status.value)])

        self.transact(op)
        return run

    def _tags_for(self, conn: Connection, run_ids: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = run_ids[chunk_start:chunk_start + 500]
            rows = conn.execute(_TAGS_OF_RUNS, {"run_ids": chunk}).all()  # one fetch, not one per row
            for run_id, key, value in rows:
                out[run_id][key] = value
        return out

    def get_run(self, run_id: str) -> RunRecord | None:
        def op(conn: Connection) -> RunRecord | None:
            row = conn.execute(select(s.runs).where(s.runs.c.run_id == run_id)).first()
            if row is None:
                return None
            return self._run_from_row(row, self._tags_for(conn, [run_id])[run_id])

        return self.query(op)

    def _filter_clauses(self, filters: RunFilter | None, *,
                        skip_tags: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
                        statuses: bool = True) -> list[Any]:
        """WHERE clauses of ``filters``, but for the tags in ``skip_tags`` (checked by
        :meth:`_walk_newest`) and, when ``statuses`` is false, the statuses."""
        clauses: list[Any] = []
        if not filters:
            return clauses
        if filters.statuses and statuses:
            clauses.append(s.runs.c.status.in_([RunStatus(x).value for x in filters.statuses]))
        if filters.job_name:
            clauses.append(s.runs.c.job_name == filters.job_name)
        if filters.run_ids:
            clauses.append(s.runs.c.run_id.in_(filters.run_ids))
        if filters.created_before is not None:
            clauses.append(s.runs.c.created_at < filters.created_before)
        if filters.updated_after is not None:
            clauses.append(s.runs.c.updated_at > filters.updated_after)
        if filters.parent_run_id is not None:
            # runs.parent_run_id has no index; every re-execution also carries the parent's id as a
            # reserved tag, whose (key, value) index an uncorrelated IN reads, so this stays a lookup
            # at millions of runs. The column check keeps the answer exact.
            from ...tags import PARENT_RUN_ID_TAG

            clauses.append(s.runs.c.run_id.in_(select(s.run_tags.c.run_id).where(
                s.run_tags.c.key == PARENT_RUN_ID_TAG, s.run_tags.c.value == filters.parent_run_id)))
            clauses.append(s.runs.c.parent_run_id == filters.parent_run_id)
        if filters.created_after is not None:
            clauses.append(s.runs.c.created_at >= filters.created_after)
        # A tag filter is an uncorrelated IN over run_tags, which the planner drives from the
        # (key, value) index; a correlated EXISTS made SQLite visit every run and probe its tags
        # (seconds at a million runs for a tag that one run carries).
        for key, value in (filters.tags or {}).items():
            if (key, str(value)) in skip_tags:
                continue
            clauses.append(s.runs.c.run_id.in_(select(s.run_tags.c.run_id).where(
                s.run_tags.c.key == key, s.run_tags.c.value == str(value))))
        for key in filters.tag_keys or ():
            clauses.append(s.runs.c.run_id.in_(select(s.run_tags.c.run_id).where(s.run_tags.c.key == key)))
        if filters.locations is not None:
            from ...tags import LOCATION_TAG

            clauses.append(s.runs.c.run_id.in_(select(s.run_tags.c.run_id).where(
                s.run_tags.c.key == LOCATION_TAG, s.run_tags.c.value.in_(list(filters.locations)))))
        return clauses

    def get_runs(self, filters: RunFilter | None = None, limit: int | None = None,
                 cursor: str | None = None) -> list[RunRecord]:
        def op(conn: Connection) -> list[RunRecord]:
            page: list[Any] = []
            if cursor:
                anchor = conn.execute(
                    select(s.runs.c.created_at).where(s.runs.c.run_id == cursor)).scalar()
                if anchor is not None:
                    page.append(or_(s.runs.c.created_at < anchor,
                                    and_(s.runs.c.created_at == anchor, s.runs.c.run_id < cursor)))
            common = self._common_tags(conn, filters) if limit else set()
            if common:
                # several statuses are checked on the rows walked: an IN over them sorts them all
                several = filters is not None and len(filters.statuses or ()) > 1
                statuses = {RunStatus(x).value for x in filters.statuses} if several else None
                clauses = self._filter_clauses(filters, skip_tags=common, statuses=not several) + page
                ids = self._walk_newest(conn, clauses, common, limit or 0, statuses)
                found = {r.run_id: r for r in conn.execute(select(s.runs).where(s.runs.c.run_id.in_(ids)))}
                rows = [found[rid] for rid in ids if rid in found]
            else:
                rows = conn.execute(self._page_query(filters, page, limit)).all()
            tags = self._tags_for(conn, [r.run_id for r in rows])
            return [self._run_from_row(r, tags[r.run_id]) for r in rows]

        return self.query(op)

    def _walk_newest(self, conn: Connection, clauses: list[Any], common: set[tuple[str, str]],
                     limit: int, statuses: set[str] | None = None) -> list[str]:
        """The ids of the ``limit`` newest runs under ``clauses`` that carry every tag of ``common``:
        runs are read newest first from the index in growing batches and each batch's tags looked
        up by primary key, until a page is full. A tag on a good share of the runs fills a page
        from the first batch or two; reading every run that carries it and sorting them (the plan
        SQLite picks for an IN over the tag index, having no per-value statistics) took 230 ms for
        a tag on 143,000 of a million runs; PostgreSQL, misjudging a tag's share, 226 ms)."""
        found: list[str] = []
        after: list[Any] = []
        batch = max(4 * limit, 500)
        while len(found) < limit:
            rows = conn.execute(select(s.runs.c.run_id, s.runs.c.created_at, s.runs.c.status).where(*clauses, *after)
                                .order_by(s.runs.c.created_at.desc(), s.runs.c.run_id.desc()).limit(batch)).all()
            if not rows:
                break
            ids = [r.run_id for r in rows if statuses is None or r.status in statuses]
            having = set(ids)
            for key, value in common:
                # key and value wrapped (`|| ''`): looked up by primary key (run_id, key) per run, never
                # by scanning the tag index's entries for the common value
                having &= set(conn.execute(select(s.run_tags.c.run_id).where(
                    s.run_tags.c.run_id.in_(ids), s.run_tags.c.key.concat("") == key,
                    s.run_tags.c.value.concat("") == value)).scalars())
            found.extend(rid for rid in ids if rid in having)
            if len(rows) < batch:
                break
            last = rows[-1]
            after = [or_(s.runs.c.created_at < last.created_at,
                         and_(s.runs.c.created_at == last.created_at, s.runs.c.run_id < last.run_id))]
            batch = min(2 * batch, 8000)
        return found[:limit]

    def _common_tags(self, conn: Connection, filters: RunFilter | None) -> set[tuple[str, str]]:
        """The filter's tags that at least :attr:`SqlDialect.common_tag_runs` runs carry (counted
        in the tag index, up to that many: one index-only read)."""
        threshold = self.dialect.common_tag_runs
        if threshold is None or not filters or not filters.tags:
            return set()
        common = set()
        for key, value in filters.tags.items():
            probe = select(s.run_tags.c.run_id).where(s.run_tags.c.key == key,
                                                      s.run_tags.c.value == str(value)).limit(threshold)
            if conn.execute(select(func.count()).select_from(probe.subquery())).scalar() >= threshold:
                common.add((key, str(value)))
        return common

    def _page_query(self, filters: RunFilter | None, page: list[Any], limit: int | None) -> Any:
        newest_first = (s.runs.c.created_at.desc(), s.runs.c.run_id.desc())
        statuses = filters.statuses if filters else None
        if limit and statuses and len(statuses) > 1:
            # Several statuses, one page: the newest `limit` of each status straight from
            # idx_runs_status (status, created_at), merged. One `status IN (...)` made the planner
            # read and sort every run of those statuses (100 ms for 200,000 of a million runs).
            others = self._filter_clauses(filters, statuses=False) + page
            parts = [select(s.runs).where(*others, s.runs.c.status == RunStatus(st).value)
                     .order_by(*newest_first).limit(limit).subquery() for st in statuses]
            merged = union_all(*(select(p) for p in parts)).subquery()
            return select(merged).order_by(merged.c.created_at.desc(), merged.c.run_id.desc()).limit(limit)
        query = select(s.runs).where(*self._filter_clauses(filters), *page).order_by(*newest_first)
        return query.limit(limit) if limit else query

    def count_runs(self, filters: RunFilter | None = None) -> int:
        query = select(func.count()).select_from(s.runs).where(*self._filter_clauses(filters))
        return self.query(lambda conn: int(conn.execute(query).scalar() or 0))

    def count_runs_by_status(self, filters: RunFilter | None = None) -> dict[RunStatus, int]:
        query = (select(s.runs.c.status, func.count()).select_from(s.runs)
                 .where(*self._filter_clauses(filters)).group_by(s.runs.c.status))
        rows = self.query(lambda conn: conn.execute(query).all())
        return {RunStatus(status): int(n) for status, n in rows if status in RunStatus._value2member_map_}

    def ping(self) -> None:
        self.query(lambda conn: conn.execute(text("SELECT 1")).scalar())

    def delete_run(self, run_id: str) -> bool:
        def op(conn: Connection) -> bool:
            status = conn.execute(select(s.runs.c.status).where(s.runs.c.run_id == run_id)).scalar()
            deleted = conn.execute(delete(s.runs).where(s.runs.c.run_id == run_id)).rowcount
            conn.execute(delete(s.run_tags).where(s.run_tags.c.run_id == run_id))
            conn.execute(delete(s.events).where(s.events.c.run_id == run_id))
            if deleted:
                self.runs_changed(conn, [(run_id, f"DELETED:{status}")])
            return bool(deleted)

        return self.transact(op)

    def transition_run(self, run_id: str, expected: Iterable[RunStatus], new_status: RunStatus,
                       events: Sequence[Event] = (), **fields: Any) -> RunStatus | None:
        values: dict[str, Any] = {"status": RunStatus(new_status).value, "updated_at": time.time()}
        for key in ("start_time", "end_time"):
            if key in fields:
                values[key] = fields.pop(key)
        if "launcher_info" in fields:
            values["launcher_info"] = _dumps(fields.pop("launcher_info"))
        if fields:
            raise TypeError(f"transition_run got unexpected fields: {sorted(fields)}")
        expected_values = [RunStatus(x).value for x in expected]

        def op(conn: Connection) -> RunStatus | None:
            previous = conn.execute(self._status_select(run_id)).scalar()
            if previous not in expected_values:
                return None
            changed = conn.execute(
                update(s.runs)
                .where(s.runs.c.run_id == run_id, s.runs.c.status.in_(expected_values))
                .values(**values)).rowcount
            if changed != 1:  # someone else moved it between our read and our write
                return None
            if events:
                self.insert_events(conn, events)
            self.runs_changed(conn, [(run_id, values["status"])])
            return RunStatus(previous)

        return self.transact(op)

    def _status_select(self, run_id: str) -> Any:
        return self.dialect.lock_rows(select(s.runs.c.status).where(s.runs.c.run_id == run_id))

    def update_run(self, run_id: str, *, launcher_info: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None) -> None:
        def op(conn: Connection) -> None:
            if launcher_info:
                current = conn.execute(
                    select(s.runs.c.launcher_info).where(s.runs.c.run_id == run_id)).scalar()
                merged = {**_loads(current, {}), **launcher_info}
                conn.execute(update(s.runs).where(s.runs.c.run_id == run_id)
                             .values(launcher_info=_dumps(merged), updated_at=time.time()))
            for key, value in (tags or {}).items():
                conn.execute(delete(s.run_tags).where(s.run_tags.c.run_id == run_id,
                                                      s.run_tags.c.key == key))
                conn.execute(insert(s.run_tags).values(run_id=run_id, key=key, value=str(value)))
            if tags and PRIORITY_TAG in tags:
                conn.execute(update(s.runs).where(s.runs.c.run_id == run_id)
                             .values(priority=run_priority(tags), updated_at=time.time()))

        self.transact(op)

    # ---- the run queue ---------------------------------------------------------------------------
    def claim_queued_runs(self, claimer: str, limit: int, *, run_ids: Sequence[str] | None = None,
                          fence: Lease | None = None, limits: ClaimLimits | None = None) -> list[RunRecord]:
        """One transaction: pick QUEUED runs in queue order (:meth:`_claim_select`; Postgres locks
        them ``FOR UPDATE SKIP LOCKED``, SQLite holds the write lock), compare-and-set each to
        STARTING, write their RUN_STARTING events. With ``limits``, limited claims serialize on
        :meth:`_claim_lock` and count the in-progress runs after taking it, in the same transaction."""
        wanted = list(run_ids) if run_ids is not None else None
        if limit <= 0 or wanted == []:
            return []
        queued, starting = RunStatus.QUEUED.value, RunStatus.STARTING.value

        def op(conn: Connection) -> list[RunRecord]:
            if fence is not None:
                row = conn.execute(self._lease_select(fence.name)).first()
                if (row is None or row.holder != fence.holder or row.token != fence.token
                        or row.expires_at < time.time()):
                    return []
            if limits is None:
                ids = [r.run_id for r in conn.execute(self._claim_select(limit, wanted))]
            else:
                self._claim_lock(conn)
                candidates = [r.run_id for r in conn.execute(self._claim_select(None, wanted))]
                if not candidates:
                    return []
                running = [r.run_id for r in conn.execute(select(s.runs.c.run_id).where(
                    s.runs.c.status.in_([st.value for st in IN_PROGRESS_STATUSES])))]
                running_tags = self._tags_for(conn, running)
                candidate_tags = self._tags_for(conn, candidates)
                ids = select_within_limits([(rid, candidate_tags[rid]) for rid in candidates],
                                           [running_tags[rid] for rid in running], limits, limit)
            if not ids:
                return []
            values = {"status": starting, "updated_at": time.time()}
            if conn.dialect.update_returning:
                won = {r.run_id for r in conn.execute(
                    update(s.runs).where(s.runs.c.run_id.in_(ids), s.runs.c.status == queued)
                    .values(**values).returning(s.runs.c.run_id))}
            else:  # MySQL: row by row, in one global order (no deadlocks with event writers)
                won = {rid for rid in sorted(ids) if conn.execute(
                    update(s.runs).where(s.runs.c.run_id == rid, s.runs.c.status == queued)
                    .values(**values)).rowcount == 1}
            claimed = [rid for rid in ids if rid in won]
            if not claimed:
                return []
            self.insert_events(conn, [claim_event(rid, claimer) for rid in claimed])
            self.runs_changed(conn, [(rid, starting) for rid in claimed])
            rows = {r.run_id: r for r in conn.execute(select(s.runs).where(s.runs.c.run_id.in_(claimed)))}
            tags = self._tags_for(conn, claimed)
            return [self._run_from_row(rows[rid], tags[rid]) for rid in claimed]

        return self.transact(op)

    def _claim_select(self, limit: int | None, run_ids: list[str] | None) -> Any:
        """The queued runs to claim, in queue order (all of them when ``limit`` is None), locked;
        rows other claimers locked are skipped where the dialect can (``FOR UPDATE SKIP LOCKED``)."""
        query = select(s.runs.c.run_id).where(s.runs.c.status == RunStatus.QUEUED.value)
        if run_ids is not None:
            query = query.where(s.runs.c.run_id.in_(run_ids))
        return self.dialect.lock_rows(
            query.order_by(s.runs.c.priority.desc(), s.runs.c.created_at, s.runs.c.run_id).limit(limit),
            skip_locked=True)

    def _claim_lock(self, conn: Connection) -> None:
        """Limited claims take turns, so each counts what the previous one committed."""
        self.dialect.serialize(conn, QUEUE_CLAIMS)

    def runs_changed(self, conn: Connection, changes: Sequence[tuple[str, str]]) -> None:
        """Called inside the write transaction that added, moved or deleted runs ((run_id, new
        status) pairs). Backends with notifications announce them here; the default does nothing."""

    def _runs_signature(self) -> Any:
        unfinished = [st.value for st in UNFINISHED_STATUSES]
        query = (select(func.count(), func.max(s.runs.c.updated_at)).select_from(s.runs)
                 .where(s.runs.c.status.in_(unfinished)))
        return self.query(lambda conn: tuple(conn.execute(query).one()))

    # ---- live feeds (see RunStorage) ---------------------------------------------------------------
    #: runs per query of get_events_for_runs / get_run_statuses (bound parameters stay few)
    LIVE_CHUNK = 200

    def get_events_for_runs(self, cursors: Mapping[str, int | None], limit: int | None = None) -> list[Event]:
        # One query per LIVE_CHUNK runs: an OR of (run_id = r AND id > cursor) ranges, each read from
        # idx_events_run (run_id, id), however many events the other runs have.
        items = list(cursors.items())
        events: list[Event] = []
        for start in range(0, len(items), self.LIVE_CHUNK):
            ranges = [s.events.c.run_id == run_id if after is None
                      else and_(s.events.c.run_id == run_id, s.events.c.id > after)
                      for run_id, after in items[start:start + self.LIVE_CHUNK]]
            query = select(s.events).where(or_(*ranges)).order_by(s.events.c.id)
            if limit:
                query = query.limit(limit)
            events.extend(_event_from_row(r) for r in self.query(lambda conn, q=query: conn.execute(q).all()))
        if len(items) > self.LIVE_CHUNK:
            events.sort(key=lambda e: e.id or 0)
            if limit:
                del events[limit:]  # still a prefix of each run's events: every chunk's answer was
        return events

    def get_run_statuses(self, run_ids: Iterable[str] | None = None,
                         statuses: Iterable[RunStatus] | None = None) -> dict[str, tuple[RunStatus, float]]:
        base = select(s.runs.c.run_id, s.runs.c.status, s.runs.c.updated_at)
        if statuses is not None:
            base = base.where(s.runs.c.status.in_([RunStatus(x).value for x in statuses]))
        queries = [base]
        if run_ids is not None:
            ids = list(run_ids)
            queries = [base.where(s.runs.c.run_id.in_(ids[i:i + self.LIVE_CHUNK]))
                       for i in range(0, len(ids), self.LIVE_CHUNK)]
        out: dict[str, tuple[RunStatus, float]] = {}
        for query in queries:
            for row in self.query(lambda conn, q=query: conn.execute(q).all()):
                if row.status in RunStatus._value2member_map_:
                    out[row.run_id] = (RunStatus(row.status), row.updated_at)
        return out

    def get_recent_ticks(self, after_id: int | None, ids: Iterable[int] = (), limit: int = 500) -> list[Tick]:
        t = s.ticks.c
        if after_id is None:
            query = select(s.ticks).order_by(t.id.desc()).limit(1)
        else:
            wanted = [int(i) for i in ids]
            cond = or_(t.id > after_id, t.id.in_(wanted)) if wanted else t.id > after_id
            query = select(s.ticks).where(cond).order_by(t.id).limit(limit)
        rows = self.query(lambda conn: conn.execute(query).all())
        return [self._tick_from_row(r) for r in rows]

    @staticmethod
    def _tick_from_row(r: Any) -> Tick:
        d = _loads(r.data, {})
        return Tick(id=r.id, instigator=r.instigator, tick_time=r.tick_time, status=TickStatus(r.status),
                    run_ids=d.get("run_ids", []), run_keys=d.get("run_keys", []), cursor=d.get("cursor"),
                    skip_reason=d.get("skip_reason"), error=d.get("error"), planned_runs=d.get("planned_runs") or {})

    def ticks_changed(self, conn: Connection, instigator: str) -> None:
        """Called inside the write transaction that created or updated a tick of ``instigator``.
        Backends with notifications announce it here; the default does nothing."""

    # ---- events ----------------------------------------------------------------------------------
    def insert_events(self, conn: Connection, events: Sequence[Event]) -> None:
        """Insert events inside the caller's transaction, after :meth:`SqlDialect.lock_runs` (a
        run's events commit in id order under concurrent writers). Backends may override it to
        notify watchers, calling this."""
        self.dialect.lock_runs(conn, [e.run_id for e in events])
        conn.execute(insert(s.events), [
            {
                "run_id": e.run_id,
                "event_type": str(e.event_type),
                "timestamp": e.timestamp,
                "step_key": e.step_key,
                "level": e.level,
                "message": e.message,
                "data": _dumps(e.data) if e.data else None,
            }
            for e in events
        ])

    def store_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self.transact(lambda conn: self.insert_events(conn, events))

    def get_events(self, run_id: str, after_id: int | None = None, limit: int | None = None,
                   event_types: Iterable[str] | None = None,
                   step_key: str | None = None, before_id: int | None = None) -> list[Event]:
        query = select(s.events).where(s.events.c.run_id == run_id)
        if after_id is not None:
            query = query.where(s.events.c.id > after_id)
        if before_id is not None:
            query = query.where(s.events.c.id < before_id)
        if event_types is not None:
            query = query.where(s.events.c.event_type.in_([str(t) for t in event_types]))
        if step_key is not None:
            query = query.where(s.events.c.step_key == step_key)
        # paging backwards reads the index (run_id, id) downwards from before_id, then puts the page in order
        backwards = before_id is not None and bool(limit)
        # Some kinds of events, all of them: read from idx_events_run_type (run_id, event_type, id), one
        # range per kind, and put in id order here. Asked to order by id, SQLite's planner walks
        # idx_events_run instead, reading every event of the run (100,000 rows for 400 step events).
        by_kind = event_types is not None and not limit
        if not by_kind:
            query = query.order_by(s.events.c.id.desc() if backwards else s.events.c.id)
        if limit:
            query = query.limit(limit)
        rows = self.query(lambda conn: conn.execute(query).all())
        if by_kind:
            rows.sort(key=lambda r: r.id)
        elif backwards:
            rows.reverse()
        return [
            Event(id=r.id, run_id=r.run_id, event_type=_event_type(r.event_type), timestamp=r.timestamp,
                  step_key=r.step_key, level=r.level, message=r.message, data=_loads(r.data, {}))
            for r in rows
        ]

    def get_step_stats(self, run_id: str, step_keys: Iterable[str] | None = None) -> list[StepStats]:
        # Only the step events, without their payloads except for failures' error messages.
        # Read from idx_events_run_type and put in id order here (see get_events).
        query = (select(s.events.c.id, s.events.c.step_key, s.events.c.event_type, s.events.c.timestamp,
                        s.events.c.data)
                 .where(s.events.c.run_id == run_id, s.events.c.step_key.is_not(None),
                        s.events.c.event_type.in_([str(t) for t in STEP_STATUS_EVENTS])))
        if step_keys is not None:
            query = query.where(s.events.c.step_key.in_(list(step_keys)))
        stats: dict[str, StepStats] = {}
        for row in sorted(self.query(lambda conn: conn.execute(query).all()), key=lambda r: r.id):
            error = None
            if row.event_type == "STEP_FAILURE" and row.data:
                error = _loads(row.data, {}).get("error")
            apply_step_event(stats, row.step_key, row.event_type, row.timestamp, error)
        return list(stats.values())

    def get_recent_step_stats(self, job_name: str, runs: int = 20) -> dict[str, list[StepStats]]:
        # One query: the newest runs from idx_runs_job as a derived table (MySQL refuses LIMIT inside
        # IN), joined to their step events through idx_events_run.
        recent = (select(s.runs.c.run_id, s.runs.c.created_at).where(s.runs.c.job_name == job_name)
                  .order_by(s.runs.c.created_at.desc(), s.runs.c.run_id.desc()).limit(max(1, int(runs)))
                  .subquery("recent"))
        query = (select(recent.c.run_id, s.events.c.step_key, s.events.c.event_type, s.events.c.timestamp,
                        s.events.c.data)
                 .select_from(recent.join(s.events, s.events.c.run_id == recent.c.run_id))
                 .where(s.events.c.step_key.is_not(None),
                        s.events.c.event_type.in_([str(t) for t in STEP_STATUS_EVENTS]))
                 .order_by(recent.c.created_at.desc(), recent.c.run_id.desc(), s.events.c.id))
        by_run: dict[str, dict[str, StepStats]] = {}
        for row in self.query(lambda conn: conn.execute(query).all()):
            error = None
            if row.event_type == "STEP_FAILURE" and row.data:
                error = _loads(row.data, {}).get("error")
            apply_step_event(by_run.setdefault(row.run_id, {}), row.step_key, row.event_type, row.timestamp, error)
        return {run_id: list(stats.values()) for run_id, stats in by_run.items()}

    # ---- what the metrics read -------------------------------------------------------------------
    def get_queue_and_event_marks(self) -> tuple[float | None, int | None]:
        oldest = select(func.min(s.runs.c.created_at)).where(s.runs.c.status == RunStatus.QUEUED.value)
        last = select(func.max(s.events.c.id))

        def read(conn: Connection) -> tuple[float | None, int | None]:
            at, event_id = conn.execute(oldest).scalar(), conn.execute(last).scalar()
            return (None if at is None else float(at)), (None if event_id is None else int(event_id))

        return self.query(read)

    def get_finished_runs_between(self, after_id: int, up_to_id: int, limit: int) -> list[tuple[int, str, str]]:
        e = s.events.c
        ends = sorted(str(STATUS_EVENT[status]) for status in FINISHED_STATUSES)
        query = (select(e.id, e.run_id, s.runs.c.job_name).join(s.runs, s.runs.c.run_id == e.run_id)
                 .where(e.id > after_id, e.id <= up_to_id, e.event_type.in_(ends))
                 .order_by(e.id).limit(limit))
        return self.query(lambda conn: [(int(i), str(r), str(j)) for i, r, j in conn.execute(query).all()])

    # ---- schedules and sensors -------------------------------------------------------------------
    def get_instigator_state(self, name: str) -> dict[str, Any] | None:
        query = select(s.instigators).where(s.instigators.c.name == name)
        row = self.query(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return {"name": row.name, "kind": row.kind, "status": row.status,
                "data": _loads(row.data, {}), "updated_at": row.updated_at}

    def get_instigator_states(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(s.instigators).order_by(s.instigators.c.name)
        if kind is not None:
            query = query.where(s.instigators.c.kind == kind)
        return [{"name": row.name, "kind": row.kind, "status": row.status, "data": _loads(row.data, {}),
                 "updated_at": row.updated_at} for row in self.query(lambda conn: conn.execute(query).all())]

    def set_instigator_state(self, name: str, kind: str, status: str,
                             data: dict[str, Any] | None = None) -> None:
        def op(conn: Connection) -> None:
            conn.execute(delete(s.instigators).where(s.instigators.c.name == name))
            conn.execute(insert(s.instigators).values(
                name=name, kind=kind, status=str(status), data=_dumps(data or {}), updated_at=time.time()))

        self.transact(op)

    @staticmethod
    def _tick_data(tick: Tick) -> str:
        return _dumps({"run_ids": tick.run_ids, "run_keys": tick.run_keys, "cursor": tick.cursor,
                       "skip_reason": tick.skip_reason, "error": tick.error, "planned_runs": tick.planned_runs})

    def create_tick(self, tick: Tick) -> Tick | None:
        def op(conn: Connection) -> int:
            result = conn.execute(insert(s.ticks).values(
                instigator=tick.instigator, tick_time=tick.tick_time, status=str(tick.status),
                data=self._tick_data(tick), updated_at=time.time()))
            self.ticks_changed(conn, tick.instigator)
            return int(result.inserted_primary_key[0])

        try:
            tick.id = self.transact(op)
        except IntegrityError:
            return None
        return tick

    def update_tick(self, tick: Tick) -> None:
        def op(conn: Connection) -> None:
            conn.execute(update(s.ticks).where(s.ticks.c.id == tick.id).values(
                status=str(tick.status), data=self._tick_data(tick), updated_at=time.time()))
            self.ticks_changed(conn, tick.instigator)

        self.transact(op)

    def get_ticks(self, instigator: str, limit: int = 20, before_id: int | None = None,
                  after_id: int | None = None) -> list[Tick]:
        t = s.ticks.c
        query = select(s.ticks).where(t.instigator == instigator)
        newer = before_id is None and after_id is not None
        cursor = before_id if before_id is not None else after_id
        if cursor is not None:
            # (tick_time, id) of the cursor tick, compared as a pair: ticks are ordered by time, and
            # the unique (instigator, tick_time) index serves the range. An unknown id pages nothing.
            at = select(t.tick_time).where(t.id == cursor, t.instigator == instigator).scalar_subquery()
            query = query.where(or_(t.tick_time > at, and_(t.tick_time == at, t.id > cursor)) if newer
                                else or_(t.tick_time < at, and_(t.tick_time == at, t.id < cursor)))
        order = (t.tick_time, t.id) if newer else (t.tick_time.desc(), t.id.desc())
        query = query.order_by(*order).limit(limit)
        rows = self.query(lambda conn: conn.execute(query).all())
        if newer:
            rows.reverse()  # read upwards from the cursor, answered newest first like every page
        ticks = []
        for r in rows:
            d = _loads(r.data, {})
            ticks.append(Tick(id=r.id, instigator=r.instigator, tick_time=r.tick_time, status=TickStatus(r.status),
                              run_ids=d.get("run_ids", []), run_keys=d.get("run_keys", []),
                              cursor=d.get("cursor"), skip_reason=d.get("skip_reason"),
                              error=d.get("error"), planned_runs=d.get("planned_runs") or {}))
        return ticks

    def claim_run_key(self, instigator: str, run_key: str, run_id: str) -> bool:
        try:
            self.transact(lambda conn: conn.execute(insert(s.run_keys).values(
                instigator=instigator, run_key=run_key, run_id=run_id)))
        except IntegrityError:
            held = self.query(lambda conn: conn.execute(select(s.run_keys.c.run_id).where(
                s.run_keys.c.instigator == instigator, s.run_keys.c.run_key == run_key)).scalar())
            return held == run_id  # claimed before for this very run: a retried tick's claim
        return True

    # ---- daemon ----------------------------------------------------------------------------------
    def heartbeat(self, daemon_id: str, loop: str, info: dict[str, Any] | None = None) -> None:
        def op(conn: Connection) -> None:
            conn.execute(delete(s.daemon_heartbeats).where(
                s.daemon_heartbeats.c.daemon_id == daemon_id, s.daemon_heartbeats.c.loop == loop))
            conn.execute(insert(s.daemon_heartbeats).values(
                daemon_id=daemon_id, loop=loop, timestamp=time.time(), info=_dumps(info or {})))

        self.transact(op)

    def get_heartbeats(self) -> list[dict[str, Any]]:
        query = select(s.daemon_heartbeats).order_by(s.daemon_heartbeats.c.daemon_id,
                                                     s.daemon_heartbeats.c.loop)
        rows = self.query(lambda conn: conn.execute(query).all())
        return [{"daemon_id": r.daemon_id, "loop": r.loop, "timestamp": r.timestamp,
                 "info": _loads(r.info, {})} for r in rows]

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> Lease | None:
        def op(conn: Connection) -> Lease | None:
            now = time.time()
            row = conn.execute(self._lease_select(name)).first()
            if row is None:
                conn.execute(insert(s.leases).values(name=name, holder=holder, token=1,
                                                     expires_at=now + ttl_seconds))
                return Lease(name, holder, 1, now + ttl_seconds)
            if row.holder == holder and row.expires_at >= now:
                token = row.token
            elif row.expires_at < now:
                token = row.token + 1
            else:
                return None
            changed = conn.execute(
                update(s.leases)
                .where(s.leases.c.name == name, s.leases.c.token == row.token,
                       s.leases.c.holder == row.holder)
                .values(holder=holder, token=token, expires_at=now + ttl_seconds)).rowcount
            if changed != 1:
                return None
            return Lease(name, holder, token, now + ttl_seconds)

        try:
            return self.transact(op)
        except IntegrityError:
            return None

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease | None:
        def op(conn: Connection) -> Lease | None:
            now = time.time()
            changed = conn.execute(
                update(s.leases)
                .where(s.leases.c.name == lease.name, s.leases.c.holder == lease.holder,
                       s.leases.c.token == lease.token, s.leases.c.expires_at >= now)
                .values(expires_at=now + ttl_seconds)).rowcount
            return Lease(lease.name, lease.holder, lease.token, now + ttl_seconds) if changed == 1 else None

        return self.transact(op)

    def _lease_select(self, name: str) -> Any:
        return self.dialect.lock_rows(select(s.leases).where(s.leases.c.name == name))

    def release_lease(self, name: str, holder: str) -> bool:
        # The row stays, expired and without a holder, so the next acquisition still bumps the
        # fencing token: tokens never go backwards, whoever held the lease before.
        return self.transact(lambda conn: bool(conn.execute(
            update(s.leases).where(s.leases.c.name == name, s.leases.c.holder == holder,
                                   s.leases.c.holder != RELEASED)
            .values(holder=RELEASED, expires_at=0.0)).rowcount))

    def get_lease(self, name: str) -> Lease | None:
        query = select(s.leases).where(s.leases.c.name == name, s.leases.c.holder != RELEASED)
        row = self.query(lambda conn: conn.execute(query).first())
        return Lease(row.name, row.holder, row.token, row.expires_at) if row else None

    # ---- key-value -------------------------------------------------------------------------------
    def kv_get(self, key: str) -> str | None:
        query = select(s.kv.c.value).where(s.kv.c.key == key)
        return self.query(lambda conn: conn.execute(query).scalar())

    def kv_set(self, key: str, value: str) -> None:
        def op(conn: Connection) -> None:
            conn.execute(delete(s.kv).where(s.kv.c.key == key))
            conn.execute(insert(s.kv).values(key=key, value=value))

        self.transact(op)


class _Retry(Exception):
    """The server rolled a write transaction back; :meth:`SqlRunStorage.transact` runs it again."""


def _event_from_row(r: Any) -> Event:
    return Event(id=r.id, run_id=r.run_id, event_type=_event_type(r.event_type), timestamp=r.timestamp,
                 step_key=r.step_key, level=r.level, message=r.message, data=_loads(r.data, {}))


def _event_type(value: str) -> EventType | str:
    try:
        return EventType(value)
    except ValueError:  # written by a newer runyard or a plugin
        return value
