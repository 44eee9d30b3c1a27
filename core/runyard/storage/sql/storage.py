"""SqlRunStorage: one implementation of the storage interface for every SQL backend."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ...errors import SchemaRevisionError, StorageError
from ..base import RunStorage, apply_step_event
from ..records import (
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
)
from . import schema as s

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _loads(value: str | None, default: Any = None) -> Any:
    return json.loads(value) if value else default


class SqlRunStorage(RunStorage):
    """Run storage on a SQLAlchemy engine. Subclasses bring the engine and dialect tweaks."""

    def __init__(self, engine: Engine, *, display_url: str | None = None):
        self.engine = engine
        self.display_url = display_url or engine.url.render_as_string(hide_password=True)
        self._pid = os.getpid()

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
        except OperationalError as exc:
            raise self._unreachable(exc) from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; backends override :meth:`_begin_write` to take the write lock early."""
        self._fork_guard()
        try:
            with self.engine.connect() as conn:
                conn.execution_options(runyard_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: DBAPIError) -> StorageError:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return StorageError(f"Storage {self.name or 'sql'} at {self.display_url} failed: {detail}")

    def dispose(self) -> None:
        self.engine.dispose()

    def describe(self) -> dict[str, Any]:
        return {"storage": self.name, "url": self.display_url, "schema_revision": self.schema_revision()}

    # ---- schema ----------------------------------------------------------------------------------
    def schema_revision(self) -> str | None:
        with self._read() as conn:
            if not conn.dialect.has_table(conn, "alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def check_ready(self, *, create: bool = True) -> None:
        revision = self.schema_revision()
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
        from .migrations import upgrade

        before = self.schema_revision()
        # One write transaction: concurrent first-time openers of an empty database serialize on it,
        # and the later ones find the schema already at head.
        with self._write() as conn:
            upgrade(conn)
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
        with self._write() as conn:
            conn.execute(insert(s.runs), [self._run_row(run)])
            if run.tags:
                conn.execute(insert(s.run_tags), [
                    {"run_id": run.run_id, "key": k, "value": str(v)} for k, v in run.tags.items()])
            if events:
                self._insert_events(conn, events)
        return run

    def _tags_for(self, conn: Connection, run_ids: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = run_ids[chunk_start:chunk_start + 500]
            rows = conn.execute(select(s.run_tags).where(s.run_tags.c.run_id.in_(chunk)))
            for row in rows:
                out[row.run_id][row.key] = row.value
        return out

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read() as conn:
            row = conn.execute(select(s.runs).where(s.runs.c.run_id == run_id)).first()
            if row is None:
                return None
            return self._run_from_row(row, self._tags_for(conn, [run_id])[run_id])

    def _filter_clauses(self, filters: RunFilter | None) -> list[Any]:
        clauses: list[Any] = []
        if not filters:
            return clauses
        if filters.statuses:
            clauses.append(s.runs.c.status.in_([RunStatus(x).value for x in filters.statuses]))
        if filters.job_name:
            clauses.append(s.runs.c.job_name == filters.job_name)
        if filters.run_ids:
            clauses.append(s.runs.c.run_id.in_(filters.run_ids))
        for key, value in (filters.tags or {}).items():
            clauses.append(exists().where(and_(
                s.run_tags.c.run_id == s.runs.c.run_id,
                s.run_tags.c.key == key, s.run_tags.c.value == str(value))))
        return clauses

    def get_runs(self, filters: RunFilter | None = None, limit: int | None = None,
                 cursor: str | None = None) -> list[RunRecord]:
        clauses = self._filter_clauses(filters)
        with self._read() as conn:
            if cursor:
                anchor = conn.execute(
                    select(s.runs.c.created_at).where(s.runs.c.run_id == cursor)).scalar()
                if anchor is not None:
                    clauses.append(or_(s.runs.c.created_at < anchor,
                                       and_(s.runs.c.created_at == anchor, s.runs.c.run_id < cursor)))
            query = (select(s.runs).where(*clauses)
                     .order_by(s.runs.c.created_at.desc(), s.runs.c.run_id.desc()))
            if limit:
                query = query.limit(limit)
            rows = conn.execute(query).all()
            tags = self._tags_for(conn, [r.run_id for r in rows])
            return [self._run_from_row(r, tags[r.run_id]) for r in rows]

    def count_runs(self, filters: RunFilter | None = None) -> int:
        with self._read() as conn:
            query = select(func.count()).select_from(s.runs).where(*self._filter_clauses(filters))
            return int(conn.execute(query).scalar() or 0)

    def delete_run(self, run_id: str) -> bool:
        with self._write() as conn:
            deleted = conn.execute(delete(s.runs).where(s.runs.c.run_id == run_id)).rowcount
            conn.execute(delete(s.run_tags).where(s.run_tags.c.run_id == run_id))
            conn.execute(delete(s.events).where(s.events.c.run_id == run_id))
        return bool(deleted)

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
        with self._write() as conn:
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
                self._insert_events(conn, events)
        return RunStatus(previous)

    def _status_select(self, run_id: str) -> Any:
        """Backends that can lock the row (``FOR UPDATE``) override this."""
        return select(s.runs.c.status).where(s.runs.c.run_id == run_id)

    def update_run(self, run_id: str, *, launcher_info: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None) -> None:
        with self._write() as conn:
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

    # ---- events ----------------------------------------------------------------------------------
    @staticmethod
    def _insert_events(conn: Connection, events: Sequence[Event]) -> None:
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
        with self._write() as conn:
            self._insert_events(conn, events)

    def get_events(self, run_id: str, after_id: int | None = None, limit: int | None = None,
                   event_types: Iterable[str] | None = None,
                   step_key: str | None = None) -> list[Event]:
        query = select(s.events).where(s.events.c.run_id == run_id)
        if after_id is not None:
            query = query.where(s.events.c.id > after_id)
        if event_types is not None:
            query = query.where(s.events.c.event_type.in_([str(t) for t in event_types]))
        if step_key is not None:
            query = query.where(s.events.c.step_key == step_key)
        query = query.order_by(s.events.c.id)
        if limit:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            Event(id=r.id, run_id=r.run_id, event_type=_event_type(r.event_type), timestamp=r.timestamp,
                  step_key=r.step_key, level=r.level, message=r.message, data=_loads(r.data, {}))
            for r in rows
        ]

    def get_step_stats(self, run_id: str, step_keys: Iterable[str] | None = None) -> list[StepStats]:
        # Only the step events, without their payloads except for failures' error messages.
        query = (select(s.events.c.step_key, s.events.c.event_type, s.events.c.timestamp, s.events.c.data)
                 .where(s.events.c.run_id == run_id, s.events.c.step_key.is_not(None),
                        s.events.c.event_type.in_(list(STEP_STATUS_EVENTS)))
                 .order_by(s.events.c.id))
        if step_keys is not None:
            query = query.where(s.events.c.step_key.in_(list(step_keys)))
        stats: dict[str, StepStats] = {}
        with self._read() as conn:
            for row in conn.execute(query):
                error = None
                if row.event_type == "STEP_FAILURE" and row.data:
                    error = _loads(row.data, {}).get("error")
                apply_step_event(stats, row.step_key, row.event_type, row.timestamp, error)
        return list(stats.values())

    # ---- schedules and sensors -------------------------------------------------------------------
    def get_instigator_state(self, name: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(s.instigators).where(s.instigators.c.name == name)).first()
        if row is None:
            return None
        return {"name": row.name, "kind": row.kind, "status": row.status,
                "data": _loads(row.data, {}), "updated_at": row.updated_at}

    def set_instigator_state(self, name: str, kind: str, status: str,
                             data: dict[str, Any] | None = None) -> None:
        with self._write() as conn:
            conn.execute(delete(s.instigators).where(s.instigators.c.name == name))
            conn.execute(insert(s.instigators).values(
                name=name, kind=kind, status=status, data=_dumps(data or {}), updated_at=time.time()))

    @staticmethod
    def _tick_data(tick: Tick) -> str:
        return _dumps({"run_ids": tick.run_ids, "run_keys": tick.run_keys, "cursor": tick.cursor,
                       "skip_reason": tick.skip_reason, "error": tick.error})

    def create_tick(self, tick: Tick) -> Tick | None:
        try:
            with self._write() as conn:
                result = conn.execute(insert(s.ticks).values(
                    instigator=tick.instigator, tick_time=tick.tick_time, status=tick.status,
                    data=self._tick_data(tick), updated_at=time.time()))
                tick.id = int(result.inserted_primary_key[0])
        except IntegrityError:
            return None
        return tick

    def update_tick(self, tick: Tick) -> None:
        with self._write() as conn:
            conn.execute(update(s.ticks).where(s.ticks.c.id == tick.id).values(
                status=tick.status, data=self._tick_data(tick), updated_at=time.time()))

    def get_ticks(self, instigator: str, limit: int = 20) -> list[Tick]:
        with self._read() as conn:
            rows = conn.execute(select(s.ticks).where(s.ticks.c.instigator == instigator)
                                .order_by(s.ticks.c.tick_time.desc()).limit(limit)).all()
        ticks = []
        for r in rows:
            d = _loads(r.data, {})
            ticks.append(Tick(id=r.id, instigator=r.instigator, tick_time=r.tick_time, status=r.status,
                              run_ids=d.get("run_ids", []), run_keys=d.get("run_keys", []),
                              cursor=d.get("cursor"), skip_reason=d.get("skip_reason"),
                              error=d.get("error")))
        return ticks

    def claim_run_key(self, instigator: str, run_key: str, run_id: str) -> bool:
        try:
            with self._write() as conn:
                conn.execute(insert(s.run_keys).values(instigator=instigator, run_key=run_key,
                                                       run_id=run_id))
        except IntegrityError:
            return False
        return True

    # ---- daemon ----------------------------------------------------------------------------------
    def heartbeat(self, daemon_id: str, loop: str, info: dict[str, Any] | None = None) -> None:
        with self._write() as conn:
            conn.execute(delete(s.daemon_heartbeats).where(
                s.daemon_heartbeats.c.daemon_id == daemon_id, s.daemon_heartbeats.c.loop == loop))
            conn.execute(insert(s.daemon_heartbeats).values(
                daemon_id=daemon_id, loop=loop, timestamp=time.time(), info=_dumps(info or {})))

    def get_heartbeats(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(s.daemon_heartbeats)
                                .order_by(s.daemon_heartbeats.c.daemon_id, s.daemon_heartbeats.c.loop))
            return [{"daemon_id": r.daemon_id, "loop": r.loop, "timestamp": r.timestamp,
                     "info": _loads(r.info, {})} for r in rows]

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> Lease | None:
        now = time.time()
        try:
            with self._write() as conn:
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
        except IntegrityError:
            return None

    def _lease_select(self, name: str) -> Any:
        """Backends that can lock the row (``FOR UPDATE``) override this."""
        return select(s.leases).where(s.leases.c.name == name)

    def release_lease(self, name: str, holder: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(delete(s.leases).where(s.leases.c.name == name,
                                                            s.leases.c.holder == holder)).rowcount)

    def get_lease(self, name: str) -> Lease | None:
        with self._read() as conn:
            row = conn.execute(select(s.leases).where(s.leases.c.name == name)).first()
        return Lease(row.name, row.holder, row.token, row.expires_at) if row else None

    # ---- key-value -------------------------------------------------------------------------------
    def kv_get(self, key: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(s.kv.c.value).where(s.kv.c.key == key)).scalar()

    def kv_set(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(delete(s.kv).where(s.kv.c.key == key))
            conn.execute(insert(s.kv).values(key=key, value=value))


def _event_type(value: str) -> EventType | str:
    try:
        return EventType(value)
    except ValueError:  # written by a newer runyard or a plugin
        return value
