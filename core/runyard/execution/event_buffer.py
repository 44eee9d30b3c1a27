"""A run worker's unwritten events: in memory, the oldest spilled to a local file past a bound.

Only an outage fills it: normally the sink writes every batch within ``max_delay`` and the buffer
holds a few events. While storage is unavailable, events keep arriving; past ``max_memory`` the
oldest move to ``<spill_dir>/<run_id>.jsonl`` (JSON lines, private: 0600 in a 0700 directory), so a
long outage costs disk, not memory. The logical order is always *file, then memory*: spilling moves
memory's oldest events to the end of the file, so every event in the file is older than every event
in memory.

Writers :meth:`peek` the oldest events, store them, then :meth:`drop` exactly that many: nothing is
removed before it is stored, and events appended (or spilled) meanwhile keep their place.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from ..private_files import FILE_MODE, create_private_file, make_private_dirs, open_private
from ..storage.records import Event, EventType

log = logging.getLogger("runyard.execution.events")


def event_to_line(event: Event) -> bytes:
    record = event.to_dict()
    del record["id"]
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


def event_from_line(line: bytes) -> Event:
    record: dict[str, Any] = json.loads(line)
    kind = record["event_type"]
    try:
        kind = EventType(kind)
    except ValueError:  # a custom event type is kept as its string
        pass
    return Event(run_id=record["run_id"], event_type=kind, message=record.get("message") or "",
                 step_key=record.get("step_key"), level=record.get("level") or "INFO",
                 data=record.get("data") or {}, timestamp=record["timestamp"])


class EventBuffer:
    """Ordered unwritten events of one run (see the module docstring)."""

    def __init__(self, *, max_memory: int, spill_path: str):
        self.max_memory = max_memory
        self.spill_path = spill_path
        self.lock = threading.Lock()
        self._memory: list[Event] = []
        self._spilled = 0  # events in the file not yet stored
        self._offset = 0  # where the first of them starts
        self._spill_failed = False

    def __len__(self) -> int:
        return self._spilled + len(self._memory)

    @property
    def spilled(self) -> int:
        return self._spilled

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    def append(self, event: Event) -> int:
        """Add ``event``; return how many events are unwritten now."""
        with self.lock:
            self._memory.append(event)
            if len(self._memory) > self.max_memory and not self._spill_failed:
                # move the older half: a spill per max_memory/2 events, not one per event
                self._spill(len(self._memory) - self.max_memory // 2)
            return self._spilled + len(self._memory)

    def peek(self, limit: int | None = None) -> list[Event]:
        """The oldest ``limit`` (default: all) unwritten events, without removing them."""
        with self.lock:
            limit = len(self) if limit is None else limit
            out: list[Event] = []
            if self._spilled:
                with open(self.spill_path, "rb") as f:
                    f.seek(self._offset)
                    while len(out) < min(limit, self._spilled):
                        out.append(event_from_line(f.readline()))
            out.extend(self._memory[:limit - len(out)])
            return out

    def drop(self, count: int) -> None:
        """Forget the oldest ``count`` events: they are stored."""
        with self.lock:
            from_file = min(count, self._spilled)
            if from_file:
                with open(self.spill_path, "rb") as f:
                    f.seek(self._offset)
                    for _ in range(from_file):
                        f.readline()
                    self._offset = f.tell()
                self._spilled -= from_file
                if not self._spilled:  # all written back: the file has done its job
                    os.unlink(self.spill_path)
                    self._offset = 0
            del self._memory[:count - from_file]

    def spill_all(self) -> str:
        """Move every event in memory to the spill file (giving up: the file must hold them all).
        Raises ``OSError`` when the file cannot be written."""
        with self.lock:
            if self._offset:  # the file's head is stored already: keep only what is not
                with open(self.spill_path, "rb") as f:
                    f.seek(self._offset)
                    rest = f.read()
                fd = os.open(self.spill_path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
                try:
                    _write_all(fd, rest)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(self.spill_path + ".tmp", self.spill_path)
                self._offset = 0
            if self._memory:
                self._spill(len(self._memory), strict=True)
            if not self._spilled:  # nothing unwritten; still leave a (empty) file where promised
                make_private_dirs(os.path.dirname(self.spill_path))
                self._set_aside_foreign_file()
                create_private_file(self.spill_path)
            return self.spill_path

    def _set_aside_foreign_file(self) -> None:
        """Before starting a spill file: one already there belongs to another worker of this run
        (one that gave up). Keep it under another name rather than mix its events with ours."""
        if not self._spilled and os.path.exists(self.spill_path):
            os.replace(self.spill_path, f"{self.spill_path}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}")

    def _spill(self, count: int, strict: bool = False) -> None:
        batch = self._memory[:count]
        data = b"".join(event_to_line(e) for e in batch)
        try:
            make_private_dirs(os.path.dirname(self.spill_path))
            self._set_aside_foreign_file()
            fd = open_private(self.spill_path)
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, start)  # no half-written line: the events stay in memory
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            if strict:
                raise
            # The local disk is full or read-only too: keep everything in memory rather than drop it.
            self._spill_failed = True
            log.warning("cannot spill unwritten events to %s (%s); keeping them in memory",
                        self.spill_path, exc.strerror or exc)
            return
        del self._memory[:count]
        self._spilled += count


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
