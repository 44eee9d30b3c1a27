"""The event sink: where a run's events go on their way to storage.

Events are written by a flusher thread with **group commit**: an event wakes the flusher at once,
which writes everything buffered in one transaction; events that arrive while that write is under
way form the next batch. So a lone event is stored a fraction of a millisecond after it was logged
(what live pages wait for), and a burst is written in batches as large as the rate makes them — one
transaction per batch, not per event, which is what makes event logging cheap — up to
``max_batch``, at which the emitting thread writes the batch itself (backpressure). Order is kept: a
batch is written in the order events arrived, and a status transition first writes everything
buffered before it (in its own transaction).

**Storage outages lose nothing.** When a write fails with a :class:`~runyard.errors.StorageError`
(the server is down, the disk is full or read-only: whatever the storage's own retries did not
ride out), the sink enters an outage: emitters stop writing and only buffer (in memory, the oldest
spilled to ``<spill_dir>/<run_id>.jsonl`` past ``max_buffered_events``, see
:mod:`.event_buffer`), and the flusher retries with backoff. Status transitions
(:meth:`EventSink.write_with`) wait for storage, retrying the same way, for up to
``outage_tolerance_seconds`` of continuous outage; past it they raise
:class:`~runyard.errors.StorageOutageError` naming the spill file, which then holds every event not
written, the status change included. Steps never see the outage.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import StorageError, StorageOutageError, StorageUnavailableError
from ..private_files import make_private_dirs, open_private
from ..retrying import Backoff
from ..storage.base import RunStorage
from ..storage.records import Event, EventType
from .event_buffer import EventBuffer, event_to_line

log = logging.getLogger("runyard.execution.events")


@dataclass(frozen=True, kw_only=True)
class OutagePolicy:
    """How a run worker rides out storage outages (instance file ``run_worker:``)."""

    #: longest continuous outage a status change waits out before the worker gives up
    tolerance_seconds: float = 600.0
    #: unwritten events kept in memory; older ones go to the spill file
    max_buffered_events: int = 10_000
    #: where spill files go
    spill_dir: str = os.path.join(tempfile.gettempdir(), "runyard-spill")


def is_outage(exc: BaseException) -> bool:
    """Whether waiting can fix ``exc``: the database is unavailable (not: it refused the data)."""
    return isinstance(exc, StorageUnavailableError)


class EventEmitter:
    """Anything steps report events to. :class:`EventSink` stores them; an executor that runs steps
    in other processes gives each a subclass that forwards them to the run worker's sink."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def emit(self, event_type: EventType | str, message: str = "", *, step_key: str | None = None,
             level: str = "INFO", data: dict[str, Any] | None = None) -> Event:
        event = Event(run_id=self.run_id, event_type=event_type, message=message, step_key=step_key,
                      level=level, data=data or {})
        self.emit_event(event)
        return event

    def emit_event(self, event: Event) -> None:
        raise NotImplementedError


class EventSink(EventEmitter):
    def __init__(self, storage: RunStorage, run_id: str, *, max_batch: int = 500, max_delay: float = 0.2,
                 outage: OutagePolicy | None = None):
        super().__init__(run_id)
        self.storage = storage
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.outage = outage or OutagePolicy()
        self.listeners: list[Callable[[Event], None]] = []
        self.buffer = EventBuffer(max_memory=self.outage.max_buffered_events,
                                  spill_path=os.path.join(self.outage.spill_dir, f"{run_id}.jsonl"))
        self._flush_lock = threading.Lock()
        self._outage_since: float | None = None  # monotonic time of the first failed write
        self._outage_error: BaseException | None = None
        self._gave_up = False
        self._retry = Backoff()
        self._next_try = 0.0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = threading.Event()  # set by an emit: the flusher has work

    def start(self) -> EventSink:
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, args=(self._closed,),
                                        name="runyard-event-flusher", daemon=True)
        self._thread.start()
        return self

    def _stop_thread(self) -> None:
        self._closed.set()
        self._pending.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the flusher thread for the duration, e.g. so the process can ``fork()`` while it is
        single-threaded and no lock is held by another thread."""
        running = self._thread is not None
        self._stop_thread()
        try:
            yield
        finally:
            if running:
                self.start()

    @property
    def in_outage(self) -> bool:
        return self._outage_since is not None

    def emit_event(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
        if self.buffer.append(event) >= self.max_batch and self._outage_since is None:
            try:
                self.flush()
            except StorageError as exc:
                if not is_outage(exc):
                    raise
                # now an outage: the flusher retries; the step that emitted goes on
        elif not self._pending.is_set():  # cleared by the flusher before it reads the buffer
            self._pending.set()

    def flush(self) -> None:
        """Write everything buffered, batch by batch; raise the storage's error if a write fails
        (the events stay buffered)."""
        with self._flush_lock:  # keeps batches in order when the flusher thread races the caller
            while True:
                batch = self.buffer.peek(self.max_batch)
                if not batch:
                    return
                self._attempt(self.storage.store_events, batch)
                self.buffer.drop(len(batch))

    def write_with(self, write: Callable[[list[Event]], Any], *, pending: list[Event] | None = None) -> Any:
        """Hand everything buffered to ``write`` (e.g. a status transition that stores the events in
        its own transaction), in order with any concurrent flush. While storage is unavailable this
        waits, retrying with backoff, for up to the outage tolerance, then raises
        :class:`StorageOutageError` (see :meth:`give_up`; ``pending``, e.g. the status event
        ``write`` would have stored, goes to the spill file too)."""

        def op() -> Any:
            # Spilled and surplus events first, in batches; the rest ride with ``write``.
            while len(self.buffer) > self.max_batch:
                batch = self.buffer.peek(self.max_batch)
                self._attempt(self.storage.store_events, batch)
                self.buffer.drop(len(batch))
            batch = self.buffer.peek()
            result = self._attempt(write, batch)
            self.buffer.drop(len(batch))
            return result

        with self._flush_lock:
            return self._wait_out(op, pending)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run a storage call the worker cannot go on without (e.g. reading its run back), waiting
        out an outage like :meth:`write_with`."""
        return self._wait_out(lambda: self._attempt(fn), None)

    def _wait_out(self, op: Callable[[], Any], pending: list[Event] | None) -> Any:
        backoff = Backoff()
        while True:
            try:
                return op()
            except StorageError as exc:
                if not is_outage(exc):
                    raise
                if self._outage_expired():
                    raise self.give_up(exc, pending) from exc
                since = self._outage_since or time.monotonic()
                backoff.wait(deadline=since + self.outage.tolerance_seconds)

    def _attempt(self, write: Callable[..., Any], *args: Any) -> Any:
        try:
            result = write(*args)
        except StorageError as exc:
            if is_outage(exc):
                self._outage_began(exc)
            raise
        if self._outage_since is not None:
            self._outage_ended()
        return result

    def _outage_began(self, exc: BaseException) -> None:
        self._outage_error = exc
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            print(f"runyard: storage unavailable, run {self.run_id} keeps its events and retries for up "
                  f"to {self.outage.tolerance_seconds:g}s (run_worker.outage_tolerance_seconds): {exc}",
                  file=sys.stderr, flush=True)

    def _outage_ended(self) -> None:
        took = time.monotonic() - (self._outage_since or time.monotonic())
        self._outage_since = None
        self._outage_error = None
        self._retry.reset()
        print(f"runyard: storage is back after {took:.1f}s; writing run {self.run_id}'s buffered events",
              file=sys.stderr, flush=True)

    def _outage_expired(self) -> bool:
        return (self._outage_since is not None
                and time.monotonic() - self._outage_since >= self.outage.tolerance_seconds)

    def give_up(self, exc: BaseException, pending: list[Event] | None = None) -> StorageOutageError:
        """Put every unwritten event (and ``pending``: e.g. the status event that could not be
        written) in the spill file and return the error that says where it is."""
        for event in pending or []:
            self.buffer.append(event)
        self._gave_up = True
        count = len(self.buffer)
        since = self._outage_since
        waited = f" for {time.monotonic() - since:.0f}s" if since is not None else ""
        try:
            where = f"kept in {self.buffer.spill_all()}"
        except OSError as err:
            # the spill directory is on the failed disk too: the system's temporary directory
            fallback = os.path.join(tempfile.gettempdir(), f"runyard-spill-{os.getuid()}", f"{self.run_id}.jsonl")
            events = self.buffer.peek()
            try:
                make_private_dirs(os.path.dirname(fallback))
                with os.fdopen(open_private(fallback, os.O_WRONLY | os.O_TRUNC), "wb") as f:
                    f.writelines(event_to_line(e) for e in events)
                where = f"kept in {fallback} ({self.buffer.spill_path}: {err.strerror or err})"
            except OSError as err2:  # last resort: stderr, so they are not lost silently
                for event in events:
                    sys.stderr.write(event_to_line(event).decode())
                where = (f"printed to stderr above as JSON lines ({self.buffer.spill_path}: "
                         f"{err.strerror or err}; {fallback}: {err2.strerror or err2})")
        return StorageOutageError(
            f"Storage stayed unavailable{waited}, past run_worker.outage_tolerance_seconds "
            f"({self.outage.tolerance_seconds:g}s): {exc} Run {self.run_id} is left as last stored; its "
            f"{count} unwritten event(s) are {where}.")

    def _flush_loop(self, closed: threading.Event) -> None:
        """Group commit: wait for an event, write everything buffered, repeat. In an outage, retry
        with backoff instead (emits then only buffer). ``max_delay`` bounds a wait in any case, so
        events emitted without waking the flusher (none are) would still go out."""
        while not closed.is_set():
            if self._outage_since is not None:
                closed.wait(max(0.0, min(self._next_try - time.monotonic(), self.max_delay)))
                if closed.is_set() or time.monotonic() < self._next_try:
                    continue
            else:
                self._pending.wait(self.max_delay)
                if closed.is_set():
                    return
            self._pending.clear()  # before reading the buffer: a later emit sets it again
            if not len(self.buffer):
                continue
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - transitions and the final flush report errors
                if is_outage(exc):
                    self._next_try = time.monotonic() + self._retry.next_delay()

    def close(self, *, raise_errors: bool = True) -> None:
        """Stop the flusher and write what is left, waiting out an outage like a status change.
        With ``raise_errors=False`` (the run already failed with an error of its own) an outage
        does not wait: the events go to the spill file and the error is only printed."""
        self._stop_thread()
        if not raise_errors and self._outage_since is not None:
            if self.buffer.in_memory or (len(self.buffer) and not self._gave_up):
                print(f"runyard: {self.give_up(self._outage_error or StorageError('storage unavailable'))}",
                      file=sys.stderr, flush=True)
            return
        if not len(self.buffer):
            return
        try:
            self.write_with(self.storage.store_events)
        except Exception as exc:
            if raise_errors:
                raise
            print(f"runyard: could not write run {self.run_id}'s last events: {exc}", file=sys.stderr,
                  flush=True)
