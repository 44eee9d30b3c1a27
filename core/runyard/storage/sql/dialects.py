"""What the shared SQL storage needs to know about a database dialect: the public extension point
for storage plugins on another SQL database.

:class:`SqlDialect` is a set of small, documented hooks — column types, row locks, locks that
serialize writers, first-time schema creation, errors — each with a default that is right on a
database with transactional DDL, ``SELECT ... FOR UPDATE`` and deterministic (case-sensitive)
comparisons. runyard ships one for SQLite, PostgreSQL and MySQL/MariaDB; a plugin for another
dialect subclasses it, overrides what differs, and registers it once with :func:`register_dialect`
(at import of its storage module). :class:`runyard.storage.sql.SqlRunStorage` and the schema's
column types (:mod:`.types`) look it up by the engine's SQLAlchemy dialect name, so the plugin's
storage class still only builds the engine. docs/plugin-authors.md walks through it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

from sqlalchemy import Double, Float, String, Text, insert, select, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.types import TypeEngine

from ...errors import StorageError

#: :meth:`SqlDialect.serialize` name that limited queue claims take turns on
QUEUE_CLAIMS = "queue-claims"


class SqlDialect:
    """The defaults suit a database with transactional DDL, ``FOR UPDATE`` row locks and exact
    string comparisons. Override what your database does differently; every hook is called from
    the process that uses the storage, many processes at once."""

    #: the SQLAlchemy dialect names (``engine.dialect.name``) this object serves
    names: ClassVar[tuple[str, ...]] = ()
    #: a page of runs filtered by a tag carried by at least this many runs (counted in the tag index,
    #: up to that many) walks the runs newest first and looks each one's tag up; a rarer tag's runs
    #: are read from the tag index. Planners guess wrong here: SQLite has no per-value statistics,
    #: and PostgreSQL multiplies the selectivity of key and value as if they were independent (it
    #: read 20,000 runs of a schedule's tag to show 50 of them). None: leave it to the planner.
    common_tag_runs: ClassVar[int | None] = 5000

    # ---- column types (read by runyard.storage.sql.types when DDL or statements compile) -----------
    def timestamp_type(self, dialect: Dialect) -> TypeEngine[Any]:
        """Epoch seconds: must keep a double's precision (microseconds at today's epoch)."""
        return Double()

    def text_type(self, dialect: Dialect, *, exact: bool) -> TypeEngine[Any]:
        """Unbounded text holding at least 16 MiB. ``exact``: compared with ``=``; case, accents
        and trailing spaces must count (a binary or deterministic collation)."""
        return Text()

    def key_type(self, dialect: Dialect, length: int) -> TypeEngine[Any]:
        """A string of at most ``length`` characters that is indexed or part of a key, compared
        exactly as :meth:`text_type` with ``exact``; indexable at that length."""
        return String(length)

    # ---- connections -----------------------------------------------------------------------------
    def on_connect(self, dbapi_connection: Any) -> None:
        """Called once for every new DBAPI connection: session settings (isolation level, SQL mode).
        The shared storage needs READ COMMITTED or stronger with per-statement snapshots: a
        statement after a lock must see what the lock's previous holder committed."""

    def check_server(self, dialect: Dialect) -> None:
        """Raise :class:`runyard.errors.StorageError` when the server (``dialect.server_version_info``,
        known after the first connection) lacks something the storage needs."""

    def explain(self, exc: DBAPIError) -> str | None:
        """A hint appended to a failed connection's message (what to check, what to create)."""
        return None

    def is_outage(self, exc: DBAPIError) -> bool | None:
        """What a failed connection or statement says about the database. ``True``: it is unavailable
        and may come back (unreachable, restarting, out of connections): reported as
        :class:`~runyard.errors.StorageUnavailableError`, which a run worker waits out. ``False``: it
        cannot serve runyard until someone acts (the database, its tables or the account are gone or
        wrong): a :class:`~runyard.errors.StorageError` reported at once. ``None``: not about the
        database (the statement's own error, raised as it is). Default: ``True`` for
        ``OperationalError``, else ``None``."""
        return True if isinstance(exc, OperationalError) else None

    def is_retryable(self, exc: DBAPIError) -> bool:
        """Whether a write transaction that failed with ``exc`` was rolled back by the server and may
        simply run again (deadlock victim, serialization failure). Default: SQLSTATE 40001/40P01."""
        orig = getattr(exc, "orig", None)
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return state in ("40001", "40P01")

    # ---- locks -------------------------------------------------------------------------------------
    @contextmanager
    def schema_lock(self, conn: Connection) -> Iterator[None]:
        """Held while a process creates or migrates the schema (read the revision, run the
        migrations, commit), so concurrent first openers of an empty database take turns and the
        later ones find it at head. ``conn`` is the connection the migration then runs on, outside
        any transaction: take a session-level lock on it, commit what that began, and release the
        lock after the ``yield`` (the migration has committed by then). Default: nothing, for
        databases whose DDL runs inside the migration transaction and blocks a second creator until
        the first commits. Databases whose DDL commits on its own (MySQL) or races on catalog rows
        (PostgreSQL) take a named or advisory lock here."""
        yield

    def lock_rows(self, query: Any, *, skip_locked: bool = False) -> Any:
        """``query`` (a SELECT of rows about to be compare-and-set) with row locks until commit.
        ``skip_locked``: the caller (a queue claim) would rather skip rows others locked than wait;
        return a plain ``FOR UPDATE`` when the database cannot skip."""
        return query.with_for_update()

    def lock_runs(self, conn: Connection, run_ids: Sequence[str]) -> None:
        """Before events of ``run_ids`` are inserted: make other writers of those runs wait until
        this transaction ends, so a run's events commit in id order and a reader following a run by
        ``after_id`` never skips one that commits late. Default: lock the runs' rows, in one global
        order (no deadlocks)."""
        from . import schema as s

        ids = sorted(set(run_ids))
        conn.execute(select(s.runs.c.run_id).where(s.runs.c.run_id.in_(ids))
                     .order_by(s.runs.c.run_id).with_for_update()).all()

    def serialize(self, conn: Connection, name: str) -> None:
        """Until this transaction ends, no other transaction gets past ``serialize`` with the same
        ``name`` (limited queue claims, which count what the previous claim committed). Default:
        a row lock on a ``runyard/lock/<name>`` row of the key-value table, created on first use."""
        from . import schema as s

        key = f"runyard/lock/{name}"
        lock = select(s.kv.c.key).where(s.kv.c.key == key).with_for_update()
        if conn.execute(lock).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(s.kv).values(key=key, value=""))
            except IntegrityError:  # another transaction made it first: wait for its lock below
                pass
            conn.execute(lock).first()

    def after_copy(self, conn: Connection) -> None:
        """After :mod:`.transfer` copied rows in with their ids: move id generators past them.
        Default: nothing (auto-increment columns that follow explicit inserts)."""


class SqliteDialect(SqlDialect):
    """One writer at a time (``BEGIN IMMEDIATE``, see runyard-storage-sqlite): every lock is the
    database's write lock already."""

    names = ("sqlite",)

    def timestamp_type(self, dialect: Dialect) -> TypeEngine[Any]:
        return Float()  # REAL: already 8 bytes; the DDL existing databases were created with

    def lock_rows(self, query: Any, *, skip_locked: bool = False) -> Any:
        return query

    def lock_runs(self, conn: Connection, run_ids: Sequence[str]) -> None:
        pass

    def serialize(self, conn: Connection, name: str) -> None:
        pass

    def explain(self, exc: DBAPIError) -> str | None:
        return sqlite_hint(str(getattr(exc, "orig", None) or exc))


def sqlite_hint(message: str) -> str | None:
    """What the OS is saying behind SQLite's terse messages (SQLITE_FULL, _READONLY, _CANTOPEN)."""
    low = message.lower()
    if "disk is full" in low or "disk i/o error" in low:
        return "(No space left on device: free space on the disk holding the database and its -wal file.)"
    if "readonly database" in low or "read-only" in low:
        return ("(Read-only: the database file, its directory or the file system is not writable by this "
                "process.)")
    if "unable to open database" in low:
        return "(Check that the directory exists and is writable by this process.)"
    return None


#: first key of every PostgreSQL advisory lock runyard takes ("ry")
PG_LOCK_NAMESPACE = 0x7279
_PG_SCHEMA_KEY = 0


def pg_lock_key(name: str) -> int:
    """Second key of the advisory lock named ``name`` (a run id, or a :meth:`SqlDialect.serialize`
    name in namespace + 1)."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big", signed=True)


class PostgresDialect(SqlDialect):
    """Advisory locks (cheaper than row locks, no table rows), ``FOR UPDATE SKIP LOCKED``."""

    names = ("postgresql",)

    def timestamp_type(self, dialect: Dialect) -> TypeEngine[Any]:
        return Float()  # FLOAT is float8 (double precision); the DDL existing databases have

    @contextmanager
    def schema_lock(self, conn: Connection) -> Iterator[None]:
        # Concurrent CREATE TABLEs race on catalog rows (a duplicate-key error in pg_type), even in
        # transactions: a session-level advisory lock, released after the migration committed.
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({PG_LOCK_NAMESPACE}, {_PG_SCHEMA_KEY})")
        conn.commit()
        try:
            yield
        finally:
            with suppress(DBAPIError):  # a lost session released it; keep the first error
                conn.rollback()
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({PG_LOCK_NAMESPACE}, {_PG_SCHEMA_KEY})")
                conn.commit()

    def lock_rows(self, query: Any, *, skip_locked: bool = False) -> Any:
        return query.with_for_update(skip_locked=skip_locked)

    def run_locks_sql(self, run_ids: Sequence[str]) -> str:
        """One statement taking the transaction-scoped advisory lock of each run, in one global order."""
        keys = sorted({pg_lock_key(r) for r in run_ids})
        return "SELECT " + ", ".join(f"pg_advisory_xact_lock({PG_LOCK_NAMESPACE}, {k})" for k in keys)

    def lock_runs(self, conn: Connection, run_ids: Sequence[str]) -> None:
        conn.exec_driver_sql(self.run_locks_sql(run_ids))

    def serialize(self, conn: Connection, name: str) -> None:
        key = 0 if name == QUEUE_CLAIMS else pg_lock_key(name)  # 0: what earlier releases used
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_NAMESPACE + 1}, {key})")

    def after_copy(self, conn: Connection) -> None:
        from . import schema as s

        for table in (s.events, s.ticks, s.audit_log):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)")


# MySQL/MariaDB server error numbers
_MY_DEADLOCK, _MY_LOCK_WAIT_TIMEOUT = 1213, 1205
# Failures no wait fixes: access denied (to the database; for the user, with or without a password;
# from this host), unknown database, a runyard table gone (its database was dropped under an open
# session), an auth method the client lacks. Refused or lost connections, "too many connections"
# and a server shutting down stay outages.
_MY_PERMANENT = frozenset({1044, 1045, 1049, 1130, 1146, 1251, 1698})
_MY_HINTS = {
    1045: "Check user and password.",
    1044: "Grant the user rights on that database (GRANT ALL ON db.* TO user).",
    1049: "Create the database first: CREATE DATABASE name CHARACTER SET utf8mb4.",
    2003: "Is the server running on that host and port, and accepting TCP connections?",
    2005: "Check the host name.",
}


class MysqlDialect(SqlDialect):
    """MySQL 8.0.17+ and MariaDB 10.6+ (``SKIP LOCKED``; ``NO PAD`` binary collations).

    * ``DOUBLE`` timestamps, ``LONGTEXT`` text (``TEXT`` stops at 64 KiB), every string column
      ``utf8mb4`` with a binary ``NO PAD`` collation: comparisons are exact, as on the other
      databases (the default ``utf8mb4_general_ci`` makes ``File_A.csv`` equal ``file_a.csv``).
    * READ COMMITTED and strict SQL mode on every connection (a statement after a lock sees the
      previous holder's commit; an oversized value is an error, never silently cut).
    * DDL commits on its own: schema creation takes a named lock (``GET_LOCK``) per database.
    """

    names = ("mysql", "mariadb")
    schema_lock_timeout = 300

    @staticmethod
    def binary_collation(dialect: Dialect) -> str:
        if getattr(dialect, "is_mariadb", False):
            return "utf8mb4_nopad_bin"
        version = tuple(getattr(dialect, "server_version_info", None) or (8, 0, 17))
        return "utf8mb4_0900_bin" if version >= (8, 0, 17) else "utf8mb4_bin"

    def timestamp_type(self, dialect: Dialect) -> TypeEngine[Any]:
        from sqlalchemy.dialects.mysql import DOUBLE

        return DOUBLE(asdecimal=False)

    def text_type(self, dialect: Dialect, *, exact: bool) -> TypeEngine[Any]:
        from sqlalchemy.dialects.mysql import LONGTEXT

        return LONGTEXT(charset="utf8mb4", collation=self.binary_collation(dialect))

    def key_type(self, dialect: Dialect, length: int) -> TypeEngine[Any]:
        from sqlalchemy.dialects.mysql import VARCHAR

        return VARCHAR(length, charset="utf8mb4", collation=self.binary_collation(dialect))

    def on_connect(self, dbapi_connection: Any) -> None:
        cur = dbapi_connection.cursor()
        try:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')")
        finally:
            cur.close()

    def check_server(self, dialect: Dialect) -> None:
        version = tuple(getattr(dialect, "server_version_info", None) or ())
        if not version:
            return
        mariadb = getattr(dialect, "is_mariadb", False)
        needed = (10, 6) if mariadb else (8, 0, 17)
        if version < needed:
            server = "MariaDB" if mariadb else "MySQL"
            raise StorageError(f"{server} {'.'.join(map(str, version))} is too old for runyard: it needs "
                               f"{server} {'.'.join(map(str, needed))} or newer (SKIP LOCKED, NO PAD collations).")

    def explain(self, exc: DBAPIError) -> str | None:
        errno = _mysql_errno(exc)
        if errno == 2003 and ("Name or service not known" in str(exc.orig) or "[Errno -" in str(exc.orig)):
            errno = 2005  # PyMySQL reports an unknown host name as "can't connect"
        return _MY_HINTS.get(errno)

    def is_outage(self, exc: DBAPIError) -> bool | None:
        errno = _mysql_errno(exc)
        if errno in _MY_PERMANENT:
            return False
        return super().is_outage(exc)

    def is_retryable(self, exc: DBAPIError) -> bool:
        return _mysql_errno(exc) in (_MY_DEADLOCK, _MY_LOCK_WAIT_TIMEOUT)

    @contextmanager
    def schema_lock(self, conn: Connection) -> Iterator[None]:
        # GET_LOCK names are server-wide: one per database. Held by the session, so it outlives the
        # implicit commits of DDL and is released after the migration committed.
        database = conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
        name = "runyard.schema." + hashlib.sha1(database.encode()).hexdigest()[:40]
        got = conn.execute(text("SELECT GET_LOCK(:name, :timeout)"),
                           {"name": name, "timeout": self.schema_lock_timeout}).scalar()
        conn.commit()
        if got != 1:
            raise StorageError(f"another process has been creating or migrating the schema of "
                               f"database {database!r} for {self.schema_lock_timeout} s; giving up")
        try:
            yield
        finally:
            with suppress(DBAPIError):  # a lost session released it; keep the first error
                conn.rollback()
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                conn.commit()

    def lock_rows(self, query: Any, *, skip_locked: bool = False) -> Any:
        return query.with_for_update(skip_locked=skip_locked)


def _mysql_errno(exc: DBAPIError) -> int | None:
    args = getattr(getattr(exc, "orig", None), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


_registry: dict[str, SqlDialect] = {}
_lock = threading.Lock()


def register_dialect(dialect: SqlDialect) -> None:
    """Make ``dialect`` serve every SQLAlchemy dialect name in ``dialect.names`` (replacing what
    served them, runyard's own included). Call it once, when your storage module is imported."""
    if not dialect.names:
        raise ValueError(f"{type(dialect).__name__}.names is empty: list the SQLAlchemy dialect names it serves")
    with _lock:
        for name in dialect.names:
            _registry[name] = dialect


def dialect_for(name: str) -> SqlDialect:
    """The :class:`SqlDialect` registered for SQLAlchemy dialect ``name`` (the defaults if none)."""
    found = _registry.get(name)
    if found is None:
        with _lock:
            found = _registry.setdefault(name, SqlDialect())
    return found


for _builtin in (SqliteDialect(), PostgresDialect(), MysqlDialect()):
    register_dialect(_builtin)
