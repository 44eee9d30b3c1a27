"""PostgresRunStorage: the shared SQL storage on PostgreSQL, for many processes on many machines.

What it adds to :class:`runyard.storage.sql.SqlRunStorage`:

* **A bounded pool per process.** SQLAlchemy ``QueuePool`` with ``pool_size`` + ``max_overflow``
  connections at most (plus one ``LISTEN`` connection while something waits for notifications);
  a caller that finds them all busy waits ``pool_timeout`` seconds, then gets a clear error.
* **Retries after a dropped connection.** Every write is one transaction (``transact``); if the
  connection drops, the pool is invalidated and the transaction runs again with backoff for up to
  ``reconnect_timeout`` seconds. If the drop happened during ``COMMIT`` the outcome is looked up
  first: the old session is ended if it still exists (``pg_terminate_backend``), then
  ``txid_status(xid)`` (or, for the one-statement event write, the batch's last row) says whether the
  transaction committed — so a write is applied exactly once or reported, never doubled or halved.
  Reads retry the same way. Errors that retrying cannot fix (wrong password, missing database,
  statement timeout) are reported at once.
* **Ordered event ids per run.** Writers to one run serialize on a transaction-scoped advisory
  lock, so a run's events commit in id order and a reader following ``after_id`` never skips one
  that commits late (ids come from a sequence, which alone would not guarantee that).
* **LISTEN/NOTIFY.** Event writes ``pg_notify`` a per-run channel and run changes the
  ``runyard_runs`` channel, each with a small pointer payload (an event id; ``run_id STATUS``), in
  the writing transaction (delivered on commit). Writers always notify (NOTIFY works through any
  connection pooler); ``notifications`` only decides whether this process LISTENs:
  :meth:`wait_for_events` and :meth:`wait_for_runs` sleep on the channels (see :mod:`.listener`) and
  poll every ``poll_interval`` when ``notifications: false`` or while the listener is down.
* **Row locks.** Status compare-and-sets and leases read their row ``FOR UPDATE``; queue claims use
  ``FOR UPDATE SKIP LOCKED`` so competing claimers never wait for one another.
* **Migrations under an advisory lock**, so concurrent first openers of an empty database do not
  race on ``CREATE TABLE``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from runyard.component import ComponentContext
from runyard.errors import StorageError, StorageUnavailableError
from runyard.storage.base import ALL_CHANGES, CHANGE_EVENTS, CHANGE_RUNS, CHANGE_TICKS, NO_CHANGES, ChangeSignal
from runyard.storage.records import Event
from runyard.storage.sql import SqlRunStorage
from runyard.storage.sql import schema as s
from runyard.storage.sql.server import pooled_engine
from runyard.storage.sql.storage import _dumps

from .config import PostgresStorageConfig, build_url, libpq_options
from .listener import Listener

log = logging.getLogger("runyard.storage.postgres")
T = TypeVar("T")

RUNS_CHANNEL = "runyard_runs"
#: every event write and every tick write also notify one channel each, for readers that follow many
#: runs at once (the web UI's live hub, :class:`ListenerSignal`)
EVENTS_CHANNEL = "runyard_events"
TICKS_CHANNEL = "runyard_ticks"
BACKEND_KEY = "runyard_backend"  # (pid, backend_start, postmaster_start) in the pool record's info

_EVENT_COLUMNS = ("run_id", "event_type", "timestamp", "step_key", "level", "message", "data")
_INSERT_EVENTS = f"INSERT INTO {s.events.name} ({', '.join(_EVENT_COLUMNS)}) VALUES "
_ROW_TEMPLATE = "(" + ",".join("%s" for _ in _EVENT_COLUMNS) + ")"

# Connection failures no retry can fix (and no outage tolerance either: the database, role or
# password is wrong, not away).
_FATAL_CONNECT = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
                  "authentication failed", "no password supplied", "permission denied",
                  "ssl is not enabled", "could not translate host name")
# invalid_authorization_specification / invalid_password (class 28), invalid_catalog_name (a
# database that does not exist), insufficient_privilege
_FATAL_CODES = ("28000", "28P01", "3D000", "42501")
# Server errors after which a statement certainly did not commit: safe to run the transaction again.
_ABORTED_CODES = ("40001", "40P01")
# Errors that end the session: the transaction may or may not have committed if COMMIT was under way.
_SESSION_LOST_CODES = ("57P01", "57P02", "57P03")


def events_channel(run_id: str) -> str:
    """The NOTIFY channel of one run's events (a valid identifier, whatever the run id)."""
    return "runyard_ev_" + hashlib.sha1(run_id.encode()).hexdigest()[:40]


class _Attempt:
    """What one try of a write knew when it failed (to look up an ambiguous COMMIT)."""

    __slots__ = ("backend", "xid", "committing", "result")

    def __init__(self) -> None:
        self.backend: tuple | None = None
        self.xid: int | None = None
        self.committing = False
        self.result: Any = None


class PostgresRunStorage(SqlRunStorage):
    config_model = PostgresStorageConfig
    supports_notifications = True

    def __init__(self, config: PostgresStorageConfig):
        self.config = config
        url = build_url(config)
        self._connect_args = libpq_options(config, url)
        engine = pooled_engine(url, config, self._connect_args)
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "do_connect", self._cap_connect_timeout)
        display = url.set(drivername="postgresql").render_as_string(hide_password=True)
        super().__init__(engine, display_url=display)
        self._url = url
        self.poll_interval = config.poll_interval
        self.supports_notifications = config.notifications  # type: ignore[misc] - per instance
        self._ever_connected = False
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def from_config(cls, config: PostgresStorageConfig, context: ComponentContext) -> PostgresRunStorage:
        return cls(config)

    # ---- connections -----------------------------------------------------------------------------
    def _cap_connect_timeout(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        """A process that caps its waits (``max_wait_seconds``: the web UI) does not wait the full
        ``connect_timeout`` for a server that does not answer (libpq's least is 2 s)."""
        if self.max_wait_seconds is not None and "connect_timeout" in cparams:
            cap = math.ceil(self.max_wait_seconds)
            cparams["connect_timeout"] = max(2, min(int(cparams["connect_timeout"]), cap))

    def _on_connect(self, dbapi_conn: Any, record: Any) -> None:
        """Remember which server session this connection is, to settle an interrupted COMMIT."""
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), extract(epoch FROM backend_start)::float8, "
                        "extract(epoch FROM pg_postmaster_start_time())::float8 "
                        "FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            record.info[BACKEND_KEY] = cur.fetchone()
        dbapi_conn.commit()
        self._ever_connected = True

    def _fork_guard(self) -> None:
        import os

        if os.getpid() != self._pid:
            if self._listener is not None:
                self._listener.abandon()
                self._listener = None
            self._local = threading.local()
        super()._fork_guard()

    def dispose(self) -> None:
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.engine.dispose()

    @property
    def max_connections(self) -> int:
        """The most connections this process opens: the pool, plus the LISTEN connection."""
        return self.config.pool_size + self.config.max_overflow + (1 if self.config.notifications else 0)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        cfg = self.config
        info["pool"] = (f"{cfg.pool_size} + {cfg.max_overflow} overflow per process, recycle "
                        f"{cfg.pool_recycle:g}s, statement timeout "
                        + (f"{cfg.statement_timeout_ms} ms" if cfg.statement_timeout_ms else "none"))
        info["notifications"] = ("LISTEN/NOTIFY" if cfg.notifications
                                 else f"off (polling every {cfg.poll_interval:g}s)")
        return info

    # ---- errors and retries ----------------------------------------------------------------------
    def _is_transient(self, exc: BaseException, disconnect: bool = False) -> bool:
        """Whether running the operation again can succeed (the server went away, or aborted us)."""
        import psycopg2

        orig = getattr(exc, "orig", None) or exc
        code = getattr(orig, "pgcode", None)
        if code in _ABORTED_CODES or code in _SESSION_LOST_CODES or (code or "").startswith("08"):
            return True
        if disconnect or getattr(exc, "connection_invalidated", False):
            return True
        if code is None and isinstance(orig, (psycopg2.OperationalError, psycopg2.InterfaceError)):
            message = str(orig).lower()
            if _is_permanent(orig):
                return False
            if "starting up" in message or "shutting down" in message or "recovery mode" in message:
                return True
            # Refused / timed out / closed: retry only once we know the server exists (a process
            # that never got through reports at once; one that lost its server waits for it).
            return self._ever_connected
        return False

    @staticmethod
    def _maybe_committed(exc: BaseException) -> bool:
        """After an error during COMMIT: could the transaction have committed anyway?"""
        orig = getattr(exc, "orig", None) or exc
        code = getattr(orig, "pgcode", None)
        return code is None or code in _SESSION_LOST_CODES or code.startswith("08")

    def _unreachable(self, exc: BaseException) -> StorageError:
        """The error to raise for a failure the retries did not fix: :class:`StorageUnavailableError`
        (a run worker waits it out) unless waiting cannot help (:func:`_is_permanent`)."""
        detail = _first_line(exc)
        low = detail.lower()
        hint = ""
        if "database" in low and "does not exist" in low:
            hint = (f" Create the database first (e.g. `createdb -h HOST -U USER {self._url.database}`): "
                    "runyard creates its tables, not the database.")
        elif "password authentication failed" in low or "no password supplied" in low:
            hint = " Check user and password (keep the password in an {env: ...} reference)."
        elif "statement timeout" in low:
            hint = (f" The statement ran longer than statement_timeout_ms "
                    f"({self.config.statement_timeout_ms}); raise it in the storage config.")
        elif "refused" in low or "timeout expired" in low or "could not connect" in low \
                or "could not translate host name" in low:
            hint = " Is the server running and reachable from this machine?"
        error = StorageError if _is_permanent(exc) else StorageUnavailableError
        return error(f"Storage {self.name or 'postgres'} at {self.display_url} failed: "
                     f"{detail.rstrip('.')}.{hint}")

    def _pool_exhausted(self) -> StorageError:
        cfg = self.config
        return StorageUnavailableError(
            f"Storage {self.name or 'postgres'} at {self.display_url}: all {cfg.pool_size + cfg.max_overflow} "
            f"connections of this process's pool (pool_size {cfg.pool_size} + max_overflow "
            f"{cfg.max_overflow}) stayed busy for pool_timeout={cfg.pool_timeout:g}s.")

    def _pause(self, exc: BaseException, attempt: int, deadline: float | None) -> float:
        """Sleep before the next try; raise when ``reconnect_timeout`` is used up. Returns the deadline."""
        now = time.monotonic()
        if deadline is None:
            deadline = now + self._reconnect_window()
        if now >= deadline:
            err = self._unreachable(exc)
            window = self._reconnect_window()
            setting = ("reconnect_timeout" if window == self.config.reconnect_timeout
                       else "this process's limit")
            raise StorageUnavailableError(f"{err} Gave up after retrying for {window:g}s "
                               f"({setting}); the operation was not applied.") from exc
        delay = min(0.05 * (2 ** attempt), 2.0, max(0.0, deadline - now))
        if attempt % 5 == 0:
            log.warning("storage %s: %s; retrying for up to %.0fs", self.display_url, _first_line(exc),
                        deadline - now)
        time.sleep(delay)
        return deadline

    def _reconnect_window(self) -> float:
        """How long one operation retries after losing the server (``max_wait_seconds`` caps it)."""
        window = self.config.reconnect_timeout
        return window if self.max_wait_seconds is None else min(window, self.max_wait_seconds)

    def _invalidate_pool(self, raw: Any, exc: BaseException) -> None:
        """The server dropped us: connections opened before now are stale too."""
        pool = self.engine.pool
        invalidate_all = getattr(pool, "_invalidate", None)
        if invalidate_all is not None:
            invalidate_all(raw, exc)
        else:  # pragma: no cover - older SQLAlchemy
            raw.invalidate(exc)

    # ---- transactions ----------------------------------------------------------------------------
    def transact(self, fn: Callable[[Connection], T]) -> T:
        self._fork_guard()
        attempt, deadline = 0, None
        while True:
            state = _Attempt()
            try:
                with self.engine.connect() as conn:
                    state.backend = conn.connection.info.get(BACKEND_KEY)
                    with conn.begin():
                        state.xid = conn.exec_driver_sql("SELECT txid_current()").scalar()
                        state.result = fn(conn)
                        state.committing = True
                return state.result
            except PoolTimeoutError as exc:
                raise self._pool_exhausted() from exc
            except DBAPIError as exc:
                if not self._is_transient(exc):
                    if isinstance(exc.orig, _connection_error_types()):
                        raise self._unreachable(exc) from exc
                    raise
                if state.committing and self._maybe_committed(exc):
                    deadline = deadline or time.monotonic() + self._reconnect_window()
                    if self._committed_xid(state, deadline):
                        return state.result
                deadline = self._pause(exc, attempt, deadline)
                attempt += 1

    def query(self, fn: Callable[[Connection], T]) -> T:
        self._fork_guard()
        attempt, deadline = 0, None
        while True:
            try:
                with self.engine.connect() as conn:
                    # One snapshot per statement either way (READ COMMITTED); autocommit saves the
                    # BEGIN and ROLLBACK round trips around a read.
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    return fn(conn)
            except PoolTimeoutError as exc:
                raise self._pool_exhausted() from exc
            except DBAPIError as exc:
                if not self._is_transient(exc):
                    if isinstance(exc.orig, _connection_error_types()):
                        raise self._unreachable(exc) from exc
                    raise
                deadline = self._pause(exc, attempt, deadline)
                attempt += 1

    def _look_up(self, deadline: float, fn: Callable[[Connection], T]) -> T:
        """Run a read on a fresh connection, retrying until ``deadline`` (after a failed COMMIT)."""
        attempt = 0
        while True:
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    return fn(conn)
            except DBAPIError as exc:
                if not self._is_transient(exc) or time.monotonic() >= deadline:
                    err = self._unreachable(exc)
                    raise type(err)(f"{err} A write was interrupted during COMMIT and whether it "
                                    "was applied could not be looked up; check before repeating it.") from exc
                self._pause(exc, attempt, deadline)
                attempt += 1

    @staticmethod
    def _settle(conn: Connection, backend: tuple | None) -> None:
        """Make sure the session that ran an interrupted COMMIT is gone, so its outcome is final."""
        if backend is None:
            return
        pid, started, postmaster = backend
        now_postmaster = conn.exec_driver_sql(
            "SELECT extract(epoch FROM pg_postmaster_start_time())::float8").scalar()
        if now_postmaster != postmaster:
            return  # the server restarted: every old session is gone
        for i in range(100):
            alive = conn.exec_driver_sql(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %(pid)s "
                "AND extract(epoch FROM backend_start)::float8 = %(started)s",
                {"pid": pid, "started": started}).scalar()
            if not alive:
                return
            if i == 0:
                conn.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})
            time.sleep(0.05)
        raise StorageError(f"the database session {pid} that was committing a write did not end")

    def _committed_xid(self, state: _Attempt, deadline: float) -> bool:
        def look(conn: Connection) -> bool:
            self._settle(conn, state.backend)
            while True:
                status = conn.exec_driver_sql("SELECT txid_status(%(x)s)", {"x": state.xid}).scalar()
                if status != "in progress":
                    return status == "committed"
                time.sleep(0.05)

        committed = self._look_up(deadline, look)
        log.warning("storage %s: connection lost during COMMIT; the write %s", self.display_url,
                    "had committed" if committed else "had not committed and is retried")
        return committed

    # ---- notifications (row locks, advisory locks, the schema lock and sequences after a copy come
    # from runyard.storage.sql.dialects.PostgresDialect, as for any engine on PostgreSQL) ----------
    def _notify_events_sql(self, run_ids: Sequence[str]) -> str:
        # lastval(): the id of the last event this statement inserted (a pointer; waiters re-read)
        return "SELECT " + ", ".join([f"pg_notify('{events_channel(r)}', lastval()::text)"
                                      for r in sorted(set(run_ids))] + [f"pg_notify('{EVENTS_CHANNEL}', '')"])

    def insert_events(self, conn: Connection, events: Sequence[Event]) -> None:
        run_ids = [e.run_id for e in events]
        super().insert_events(conn, events)  # takes the runs' advisory locks first
        conn.exec_driver_sql(self._notify_events_sql(run_ids))

    def ticks_changed(self, conn: Connection, instigator: str) -> None:
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": TICKS_CHANNEL})

    def runs_changed(self, conn: Connection, changes: Sequence[tuple[str, str]]) -> None:
        if changes:
            conn.execute(text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
                         {"channel": RUNS_CHANNEL, "payloads": [f"{rid} {status}" for rid, status in changes]})

    # ---- events: the hot path --------------------------------------------------------------------
    def store_events(self, events: Sequence[Event]) -> None:
        """Append events with one round trip: lock the run(s), insert every row, notify — one
        implicit transaction (a multi-statement simple query), straight through psycopg2."""
        if not events:
            return
        import psycopg2

        rows = [(e.run_id, str(e.event_type), e.timestamp, e.step_key, e.level, e.message,
                 _dumps(e.data) if e.data else None) for e in events]
        run_ids = [e.run_id for e in events]
        self._fork_guard()
        attempt, deadline = 0, None
        sql: bytes | None = None
        while True:
            try:
                raw = self.engine.raw_connection()
            except PoolTimeoutError as exc:
                raise self._pool_exhausted() from exc
            except DBAPIError as exc:
                if not self._is_transient(exc):
                    raise self._unreachable(exc) from exc
                deadline = self._pause(exc, attempt, deadline)
                attempt += 1
                continue
            backend = raw.info.get(BACKEND_KEY)
            dbapi = raw.driver_connection
            sent = False
            failure: BaseException | None = None
            try:
                with dbapi.cursor() as cur:
                    if sql is None:
                        values = b",".join(cur.mogrify(_ROW_TEMPLATE, row) for row in rows)
                        sql = b"; ".join([self.dialect.run_locks_sql(run_ids).encode(),
                                          _INSERT_EVENTS.encode() + values,
                                          self._notify_events_sql(run_ids).encode()])
                    dbapi.autocommit = True  # the server runs the statements as one implicit transaction
                    try:
                        sent = True
                        cur.execute(sql)
                    finally:
                        if not dbapi.closed:
                            dbapi.autocommit = False
                return
            except psycopg2.Error as exc:
                failure = exc
                disconnect = bool(dbapi.closed) or self.engine.dialect.is_disconnect(exc, dbapi, None)
                if disconnect:
                    self._invalidate_pool(raw, exc)
                if not self._is_transient(exc, disconnect):
                    if isinstance(exc, _connection_error_types()):
                        raise self._unreachable(exc) from exc
                    raise StorageError(f"Storage {self.name or 'postgres'} at {self.display_url} could not "
                                       f"store events: {_first_line(exc)}") from exc
            finally:
                raw.close()
            assert failure is not None
            if sent and isinstance(failure, psycopg2.OperationalError) and self._maybe_committed(failure):
                deadline = deadline or time.monotonic() + self._reconnect_window()
                if self._events_committed(events[-1], backend, deadline):
                    return
            deadline = self._pause(failure, attempt, deadline)
            attempt += 1

    def _events_committed(self, last: Event, backend: tuple | None, deadline: float) -> bool:
        """Did an interrupted event write commit? The batch is one transaction, so its last row
        tells (run, type, timestamp and message identify it: timestamps are per event)."""
        def look(conn: Connection) -> bool:
            self._settle(conn, backend)
            query = select(s.events.c.id).where(
                s.events.c.run_id == last.run_id, s.events.c.event_type == str(last.event_type),
                s.events.c.timestamp == last.timestamp, s.events.c.message == last.message).limit(1)
            return conn.execute(query).first() is not None

        committed = self._look_up(deadline, look)
        log.warning("storage %s: connection lost while storing events; the batch %s", self.display_url,
                    "had committed" if committed else "had not committed and is written again")
        return committed

    # ---- notifications ---------------------------------------------------------------------------
    def _get_listener(self) -> Listener | None:
        if not self.config.notifications:
            return None
        self._fork_guard()
        with self._listener_lock:
            if self._listener is None:
                import psycopg2

                cargs, cparams = self.engine.dialect.create_connect_args(self._url)
                params = {**cparams, **self._connect_args}
                self._listener = Listener(lambda: psycopg2.connect(*cargs, **params))
            return self._listener

    def change_signal(self) -> ChangeSignal:
        return ListenerSignal(self)

    def wait_for_events(self, run_id: str, after_id: int | None, timeout: float) -> bool:
        listener = self._get_listener()
        if listener is None:
            return super().wait_for_events(run_id, after_id, timeout)
        deadline = time.monotonic() + max(0.0, timeout)
        channel = events_channel(run_id)

        def present() -> bool:
            return bool(self.get_events(run_id, after_id=after_id, limit=1))

        while True:
            token = listener.subscribe(channel, timeout=min(5.0, max(0.0, deadline - time.monotonic())))
            if present():  # checked after LISTEN took effect: a later commit cannot be missed
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if token is None:  # listener down: poll
                time.sleep(min(self.poll_interval, left))
                continue
            # Wake on a notification; re-read at least every few seconds whatever happens.
            listener.wait(channel, token, min(left, max(5.0, self.poll_interval)))

    def wait_for_runs(self, timeout: float) -> bool:
        listener = self._get_listener()
        if listener is None:
            return super().wait_for_runs(timeout)
        seen = getattr(self._local, "runs_token", None)
        # The first call in a thread starts watching: give LISTEN a moment to take effect even when
        # called with timeout=0, so that changes from now on are seen by the next call.
        token = listener.subscribe(RUNS_CHANNEL, timeout=5.0 if seen is None else min(5.0, max(0.0, timeout)))
        if token is None:
            return super().wait_for_runs(timeout)
        if seen is None:
            seen = token
        changed = token != seen or listener.wait(RUNS_CHANNEL, seen, timeout)
        self._local.runs_token = listener.token(RUNS_CHANNEL)
        return changed


class ListenerSignal(ChangeSignal):
    """:class:`~runyard.storage.base.ChangeSignal` from this process's notification listener: a
    look compares the tokens of the events, runs and ticks channels (memory only, no query), so it
    says which kind changed. With ``notifications: false``, or while the listener is down, it says
    "everything" every ``poll_interval`` (polling)."""

    CHANNELS = {CHANGE_EVENTS: EVENTS_CHANNEL, CHANGE_RUNS: RUNS_CHANNEL, CHANGE_TICKS: TICKS_CHANNEL}
    INTERVAL = 0.002
    #: how often the channels are subscribed again, so the listener never drops them as idle
    RESUBSCRIBE_SECONDS = 5.0

    def __init__(self, storage: PostgresRunStorage):
        super().__init__(self.INTERVAL)
        self._storage = storage
        self._seen: dict[str, Any] = {}
        self._subscribed = 0.0
        self._next_poll = 0.0

    def changed(self) -> frozenset[str]:
        listener = self._storage._get_listener()
        now = time.monotonic()
        if listener is not None and (not self._seen or now - self._subscribed >= self.RESUBSCRIBE_SECONDS):
            # LISTEN in effect before the caller reads: later commits cannot be missed
            tokens = {kind: listener.subscribe(channel, timeout=5.0 if not self._seen else 0.0)
                      for kind, channel in self.CHANNELS.items()}
            self._subscribed = now
        elif listener is not None and listener.up:
            tokens = {kind: listener.token(channel) for kind, channel in self.CHANNELS.items()}
        else:
            tokens = {}
        if listener is None or not tokens or any(t is None for t in tokens.values()):
            self._seen = {}
            if now < self._next_poll:
                return NO_CHANGES
            self._next_poll = now + self._storage.poll_interval
            return ALL_CHANGES
        changed = frozenset(kind for kind, token in tokens.items() if self._seen.get(kind) != token)
        self._seen = tokens
        return changed


def _first_line(exc: BaseException) -> str:
    """The driver's message without the SQLAlchemy wrapping, on one line."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return " ".join((lines[0] if lines else type(orig).__name__).split())


def _is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` says the database, role or password is wrong — which no wait fixes — rather
    than that the server is away (refused, reset, shutting down, starting up, timed out)."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "pgcode", None) in _FATAL_CODES:
        return True
    message = str(orig).lower()
    return any(m in message for m in _FATAL_CONNECT)


def _connection_error_types() -> tuple[type, ...]:
    import psycopg2

    return (psycopg2.OperationalError, psycopg2.InterfaceError)
