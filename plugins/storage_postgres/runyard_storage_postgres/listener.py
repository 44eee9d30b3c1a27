"""LISTEN/NOTIFY for one storage object: one dedicated connection read by one daemon thread.

Waiters never read the connection themselves. They :meth:`Listener.subscribe` to a channel (which
returns once ``LISTEN`` is in effect, so a change committed after that cannot be missed), then block
in :meth:`Listener.wait` on a condition variable that the thread signals when a notification for the
channel arrives. Each channel has a *token*: ``(generation, count)``. ``count`` grows with every
notification, ``generation`` with every (re)connection, so a waiter whose token changed knows that
something may have happened (a notification, or an outage during which notifications were lost)
and re-reads storage. Notifications are only hints: storage stays the source of truth.

Channels nobody waited on for :data:`IDLE_UNLISTEN` seconds are dropped (``UNLISTEN``). If the
connection fails, the thread reconnects with backoff and listens again; meanwhile :attr:`up` is
false and callers poll.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("runyard.storage.postgres")

IDLE_UNLISTEN = 60.0
Token = tuple[int, int]


class Listener:
    def __init__(self, connect: Callable[[], Any]):
        self._connect = connect
        self._cond = threading.Condition()  # guards everything below except the connection
        self._counts: dict[str, int] = {}
        self._used: dict[str, float] = {}  # channel -> last time a waiter used it
        self._waiting: dict[str, int] = {}  # channel -> waiters blocked in wait() right now
        self._generation = 0
        self._conn: Any = None
        self._conn_lock = threading.Lock()  # serializes every use of the psycopg2 connection
        self._listening: set[str] = set()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="runyard-pg-listener", daemon=True)
        self._started = False
        self.connections_opened = 0

    # ---- waiter side -----------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._conn is not None

    def token(self, channel: str) -> Token:
        with self._cond:
            return self._generation, self._counts.get(channel, 0)

    def subscribe(self, channel: str, timeout: float = 5.0) -> Token | None:
        """Make sure ``LISTEN channel`` is in effect; return the channel's token, or None when the
        listener is not connected (then poll)."""
        with self._cond:
            self._used[channel] = time.monotonic()
            if not self._started:
                self._started = True
                self._thread.start()
            if self._conn is None:  # the thread may be connecting right now: give it a moment
                self._cond.wait_for(lambda: self._conn is not None or self._closed, timeout=timeout)
            if self._conn is None:
                return None
        if channel not in self._listening:
            with self._conn_lock:
                conn = self._conn
                if conn is None:
                    return None
                try:
                    with conn.cursor() as cur:
                        cur.execute(f'LISTEN "{channel}"')
                    self._listening.add(channel)
                except Exception as exc:  # noqa: BLE001 - the thread reconnects; callers poll meanwhile
                    log.warning("LISTEN %s failed (%s); polling until the listener reconnects", channel, exc)
                    self._drop_connection()
                    return None
            self._wake()  # notifications read while LISTEN ran wait in conn.notifies: let the thread see them
        return self.token(channel)

    def wait(self, channel: str, since: Token, timeout: float) -> bool:
        """Wait until ``channel``'s token differs from ``since`` (True) or ``timeout`` passes (False).
        Also True if the listener closes: the caller must look for itself."""
        with self._cond:
            self._used[channel] = time.monotonic()
            self._waiting[channel] = self._waiting.get(channel, 0) + 1
            try:
                return self._cond.wait_for(
                    lambda: self._closed or (self._generation, self._counts.get(channel, 0)) != since,
                    timeout=max(0.0, timeout))
            finally:
                self._used[channel] = time.monotonic()
                self._waiting[channel] -= 1
                if not self._waiting[channel]:
                    del self._waiting[channel]

    # ---- the thread ------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the thread is due to wake anyway

    def _drop_connection(self) -> None:
        """Forget the connection (caller holds ``_conn_lock``); the thread reconnects."""
        conn, self._conn = self._conn, None
        self._listening.clear()
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
        with self._cond:
            self._cond.notify_all()
        self._wake()

    def _open(self) -> bool:
        try:
            conn = self._connect()
            conn.autocommit = True
        except Exception as exc:  # noqa: BLE001 - retried with backoff
            log.debug("listener connection failed: %s", exc)
            return False
        with self._conn_lock:
            self._conn = conn
            self.connections_opened += 1
            with self._cond:
                channels = [c for c in self._used]
            try:
                with conn.cursor() as cur:
                    for channel in channels:
                        cur.execute(f'LISTEN "{channel}"')
                        self._listening.add(channel)
            except Exception as exc:  # noqa: BLE001
                log.debug("re-LISTEN failed: %s", exc)
                self._drop_connection()
                return False
        with self._cond:
            # Anything may have happened while we were not listening: every waiter re-reads.
            self._generation += 1
            self._cond.notify_all()
        return True

    def _run(self) -> None:
        backoff = 0.05
        while not self._closed:
            if self._conn is None:
                if not self._open():
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.05
            conn = self._conn
            if conn is None:
                continue
            try:
                ready, _, _ = select.select([conn, self._wake_r], [], [], 5.0)
            except (OSError, ValueError):  # the connection was closed under us
                with self._conn_lock:
                    if self._conn is conn:
                        self._drop_connection()
                continue
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            if self._closed:
                break
            with self._conn_lock:
                if self._conn is not conn:
                    continue
                try:
                    conn.poll()
                    notes = list(conn.notifies)
                    conn.notifies.clear()
                    self._unlisten_idle(conn)
                except Exception as exc:  # noqa: BLE001 - connection lost
                    log.warning("notification connection lost (%s); reconnecting, polling meanwhile", exc)
                    self._drop_connection()
                    continue
            if notes:
                with self._cond:
                    for note in notes:
                        self._counts[note.channel] = self._counts.get(note.channel, 0) + 1
                    self._cond.notify_all()

    def _unlisten_idle(self, conn: Any) -> None:
        now = time.monotonic()
        with self._cond:
            idle = [c for c, used in self._used.items()
                    if now - used > IDLE_UNLISTEN and c not in self._waiting]
            for channel in idle:
                del self._used[channel]
                self._counts.pop(channel, None)
        if idle:
            with conn.cursor() as cur:
                for channel in idle:
                    if channel in self._listening:
                        cur.execute(f'UNLISTEN "{channel}"')
                        self._listening.discard(channel)

    # ---- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake()
        if self._started:
            self._thread.join(timeout=5)
        with self._conn_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def abandon(self) -> None:
        """In a forked child: never touch the parent's connection or thread (closing the inherited
        socket would end the parent's session); just let go of them."""
        self._closed = True
        self._conn = None
