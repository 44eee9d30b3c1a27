"""The event sink: where a run's events go on their way to storage.

Events are buffered and written in batches — one transaction per batch, not per event — which is
what makes event logging cheap. Order is kept: a batch is written in the order events arrived, and
a status transition first writes everything buffered before it (in its own transaction). A flusher
thread writes buffered events at least every ``max_delay`` seconds so a slow step's logs still
show up live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..storage.base import RunStorage
from ..storage.records import Event, EventType


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
    def __init__(self, storage: RunStorage, run_id: str, *, max_batch: int = 500, max_delay: float = 0.2):
        super().__init__(run_id)
        self.storage = storage
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.listeners: list[Callable[[Event], None]] = []
        self._buffer: list[Event] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._oldest = 0.0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventSink:
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, args=(self._closed,),
                                        name="runyard-event-flusher", daemon=True)
        self._thread.start()
        return self

    def _stop_thread(self) -> None:
        self._closed.set()
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

    def emit_event(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
        with self._lock:
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(event)
            full = len(self._buffer) >= self.max_batch
        if full:
            self.flush()

    def take(self) -> list[Event]:
        """Remove and return everything buffered (for a caller that writes it in its own transaction)."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        return batch

    def flush(self) -> None:
        with self._flush_lock:  # keeps batches in order when the flusher thread races the caller
            batch = self.take()
            if batch:
                self._write(batch, self.storage.store_events)

    def write_with(self, write: Callable[[list[Event]], Any]) -> Any:
        """Hand everything buffered to ``write`` (e.g. a status transition that stores the events in
        its own transaction), in order with any concurrent flush."""
        with self._flush_lock:
            return self._write(self.take(), write)

    def _write(self, batch: list[Event], write: Callable[[list[Event]], Any]) -> Any:
        try:
            return write(batch)
        except BaseException:
            with self._lock:  # nothing lost: put the batch back in front for the next attempt
                self._buffer[:0] = batch
            raise

    def _flush_loop(self, closed: threading.Event) -> None:
        while not closed.wait(self.max_delay / 2):
            with self._lock:
                due = self._buffer and time.monotonic() - self._oldest >= self.max_delay
            if due:
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - the final flush reports storage errors
                    pass

    def close(self) -> None:
        self._stop_thread()
        self.flush()
