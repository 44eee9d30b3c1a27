"""SqliteRunStorage: the shared SQL storage on one SQLite file, safe for many processes.

* WAL journal: readers never block the writer and the writer never blocks readers.
* Write transactions start with ``BEGIN IMMEDIATE``: a writer takes the write lock before it reads,
  so two processes can never both read-then-write and deadlock on lock upgrade (the classic
  ``database is locked`` that a busy timeout cannot fix). Waiting writers sleep in SQLite's busy
  handler up to ``busy_timeout_ms``.
* ``synchronous=NORMAL`` in WAL mode: a commit survives a process crash; only an OS crash can lose
  the last transactions, never corrupt the file.
* Events, the hot write path, go to the driver directly (see :meth:`SqliteRunStorage.store_events`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool, QueuePool

from runyard.component import ComponentContext
from runyard.errors import StorageError, StorageUnavailableError
from runyard.private_files import create_private_file, make_private_dirs
from runyard.storage.base import ALL_CHANGES, NO_CHANGES, ChangeSignal
from runyard.storage.records import Event
from runyard.storage.sql import SqlRunStorage
from runyard.storage.sql import schema as s
from runyard.storage.sql.dialects import sqlite_hint

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode  # as the shared SQL storage
_EVENT_COLUMNS = ("run_id", "event_type", "timestamp", "step_key", "level", "message", "data")
_INSERT_EVENTS = (f"INSERT INTO {s.events.name} ({', '.join(_EVENT_COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})")


def _enable_wal(cur: sqlite3.Cursor, timeout: float) -> None:
    """Switch to WAL, waiting out other processes like the busy timeout would. Switching a new
    database takes an exclusive lock and fails at once with "database is locked" (the busy handler
    is not consulted) while another process opening it at the same moment holds a lock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


class DataVersionSignal(ChangeSignal):
    """:class:`~runyard.storage.base.ChangeSignal` for one SQLite file. ``PRAGMA data_version``
    changes whenever another connection (of any process) commits; it is per connection, so the
    signal keeps one, used only from the thread that calls :meth:`changed`. It cannot tell what was
    written: any commit answers "everything"."""

    #: seconds between looks: a look costs a few microseconds (about 2 % of a core at this pace)
    INTERVAL = 0.002

    def __init__(self, path: str):
        super().__init__(self.INTERVAL)
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None

    def changed(self) -> frozenset[str]:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, timeout=1.0, isolation_level=None,
                                             check_same_thread=False)
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            self.close()  # opened again next time; meanwhile every look says "changed" (polling)
            return ALL_CHANGES
        if version == self._seen:
            return NO_CHANGES
        self._seen = version
        return ALL_CHANGES

    def close(self) -> None:
        conn, self._conn, self._seen = self._conn, None, None
        if conn is not None:
            conn.close()


class SqliteStorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="Database file; default <home>/runyard.db. Relative "
                                               "paths are relative to the instance home.")
    busy_timeout_ms: int = Field(30_000, ge=0, description="How long a writer waits for the lock.")
    synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"
    pool_size: int = Field(4, ge=1, description="Connections kept open per process.")


class SqliteRunStorage(SqlRunStorage):
    config_model = SqliteStorageConfig

    def __init__(self, path: str, config: SqliteStorageConfig | None = None):
        self.config = config or SqliteStorageConfig()
        self.path = os.path.abspath(path)
        self._create_private()
        engine = create_engine(
            f"sqlite:///{self.path}",
            poolclass=QueuePool if self.config.pool_size else NullPool,
            pool_size=self.config.pool_size,
            max_overflow=8,
            connect_args={"timeout": self.config.busy_timeout_ms / 1000, "check_same_thread": False},
        )
        self._install_pragmas(engine)
        super().__init__(engine, display_url=f"sqlite:///{self.path}")

    def _create_private(self) -> None:
        """Create the directory and an empty database file readable by this user only: SQLite gives
        the -wal and -shm files the database file's mode (docs/plugins/storage_sqlite.md)."""
        try:
            make_private_dirs(os.path.dirname(self.path))
            if not os.path.exists(self.path):
                create_private_file(self.path)
        except OSError as exc:
            where = exc.filename or self.path
            raise StorageUnavailableError(f"Storage sqlite at {self.path}: cannot create {where}: "
                               f"{exc.strerror or exc}") from None

    @classmethod
    def from_config(cls, config: SqliteStorageConfig, context: ComponentContext) -> SqliteRunStorage:
        path = config.path or "runyard.db"
        return cls(os.path.join(context.home, os.path.expanduser(path)), config)

    def _install_pragmas(self, engine) -> None:
        busy_ms = self.config.busy_timeout_ms
        synchronous = self.config.synchronous

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Take transaction control away from pysqlite so BEGIN is ours to emit.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            _enable_wal(cur, busy_ms / 1000)
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            write = conn.get_execution_options().get("runyard_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def store_events(self, events: Sequence[Event]) -> None:
        """Append events in one ``BEGIN IMMEDIATE ... COMMIT`` through the sqlite3 driver.

        Same rows, order and transaction as the shared SQL implementation; skipping SQLAlchemy's
        connection and statement layers makes a one-event write about 3x cheaper (it cost more than
        the insert and commit themselves), which is what ``store_event`` and every flush pay.
        """
        if not events:
            return
        rows = [(e.run_id, str(e.event_type), e.timestamp, e.step_key, e.level, e.message,
                 _dumps(e.data) if e.data else None) for e in events]
        self._fork_guard()
        try:
            conn = self.engine.raw_connection()  # pooled, with the pragmas set on connect
        except OperationalError as exc:
            raise self._unreachable(exc) from exc
        try:
            cur = conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    cur.executemany(_INSERT_EVENTS, rows)
                    cur.execute("COMMIT")
                except BaseException:
                    try:
                        if conn.dbapi_connection.in_transaction:
                            cur.execute("ROLLBACK")
                    except sqlite3.Error:
                        conn.invalidate()  # state unknown: never hand this connection out again
                    raise
            finally:
                cur.close()
        except sqlite3.Error as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = sqlite_hint(detail)
            # locked, full, read-only, cannot open: may pass; anything else (a constraint) will not
            error = StorageUnavailableError if isinstance(exc, sqlite3.OperationalError) else StorageError
            raise error(f"Storage {self.name or 'sqlite'} at {self.display_url} failed: {detail}"
                        + (f" {hint}" if hint else "")) from exc
        finally:
            conn.close()

    def change_signal(self) -> ChangeSignal:
        """Commits by any process, seen from ``PRAGMA data_version`` on a connection of its own: an
        in-memory read of the WAL index, so the live hub can ask every few milliseconds."""
        return DataVersionSignal(self.path)

    def describe(self):
        info = super().describe()
        info["path"] = self.path
        return info
