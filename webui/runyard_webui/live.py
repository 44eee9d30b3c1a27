"""Live updates: run events, step logs, the runs list and ticks pushed to the pages by server-sent
events (``text/event-stream``), with no request thread held per open page.

Two halves:

* **The endpoints** (the ``live`` blueprint, ``/live/...``) are ordinary Flask views, so the Host
  check, authentication (a stream of a run outside the principal's code locations is refused
  with 404; the runs and ticks feeds carry only what it sees) and the security headers apply to
  them like to any page. A view checks its arguments, then answers ``200 text/event-stream`` with
  no body and leaves a :class:`Stream` in the WSGI environ. The web server (:mod:`.server`) writes
  the headers, finishes the request thread and hands the connection to the hub; from then on the
  stream's bytes are written by waitress's own event-loop thread, which already watches every
  connection. Under another WSGI server the view streams from its request thread instead
  (correct, but one thread per open page).
* **The hub** (:class:`LiveHub`) is one thread that reads storage for every open stream at once.
  It asks the storage's :class:`~runyard.storage.base.ChangeSignal` every few milliseconds whether
  anything was written (SQLite: ``PRAGMA data_version``; Postgres: ``LISTEN/NOTIFY``; otherwise it
  polls) and then reads what the streams need: one query for the new events of every followed run
  (each run after its own cursor), one for the statuses of unfinished runs, one for new or running
  ticks, and the size of each followed step-log file. So a stored event reaches the page within
  milliseconds, and a hundred open pages cost one query per change, not a hundred.

Every message is one ``data:`` line of JSON (docs/webui.md, "Live updates"). Event and log
messages carry an ``id:`` (the event cursor, the log offset), so a browser that reconnects on its
own resumes where it was (``Last-Event-ID``). A stream that has nothing more to say (the run
finished and every event was sent; the step's output is complete) sends ``event: end`` and closes.
Comment lines (``: ping``) every ``webui.live_heartbeat_seconds`` keep quiet connections open
through proxies and the idle timeout, and find clients that went away.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, request

from runyard.storage.base import ALL_CHANGES, CHANGE_EVENTS, CHANGE_RUNS, CHANGE_TICKS
from runyard.storage.records import UNFINISHED_STATUSES, Event, EventType, RunStatus, TickStatus

from .context import NOT_FOUND, WebError

if TYPE_CHECKING:  # pragma: no cover
    from runyard.storage.base import ChangeSignal

    from .context import WebContext

log = logging.getLogger("runyard.webui.live")

#: WSGI environ keys shared with :mod:`.server`: the server can take a stream over (set by its task)
DETACH_KEY = "runyard.live.detach"
#: ... and the stream this response opens (set by the view when the server can)
STREAM_KEY = "runyard.live.stream"
#: where :func:`register` keeps the app's hub
EXTENSION = "runyard_live"

#: events per message, and per catch-up read of a stream that starts behind
PAGE = 500
#: events per read of the feed (every followed run at once); a full answer is read on at once
FEED_LIMIT = 2000
#: bytes of step output per log message
LOG_CHUNK = 256 * 1024
#: a stream whose client has not taken this many bytes yet is closed; it resumes from its cursor
#: when the browser reconnects
MAX_BACKLOG = 8 << 20
#: a stream that starts behind is fed only while its client keeps up with this little unsent
CATCH_UP_BACKLOG = 1 << 20
#: what is read again without any change signal (a missed notification, a storage that cannot tell)
SAFETY_SECONDS = 1.0
#: the statuses of followed runs are read again this often whatever happened
STATUS_REFRESH_SECONDS = 2.0
#: the unfinished runs and the ticks are read at most this often (SQLite signals every commit)
RUNS_MIN_SECONDS, TICKS_MIN_SECONDS = 0.05, 0.1
#: a step-log file's size is looked at this often; its step's events make it read at once
LOG_STAT_SECONDS = 0.05
#: runs-list and tick messages go out at most this often per stream (each makes the page re-query)
NOTIFY_MIN_SECONDS = 0.25
#: a tick still STARTED after this long is no longer watched for updates
OPEN_TICK_SECONDS = 3600.0
#: after a storage error the hub tries again this much later; streams stay open meanwhile
ERROR_BACKOFF_SECONDS = 1.0
#: how soon a browser reconnects after the connection dropped (the SSE ``retry:`` field)
RETRY_MS = 1000

_RUN_STATUS_EVENTS = frozenset(str(t) for t in (
    EventType.RUN_ENQUEUED, EventType.RUN_STARTING, EventType.RUN_START, EventType.RUN_SUCCESS,
    EventType.RUN_FAILURE, EventType.RUN_CANCELING, EventType.RUN_CANCELED))

_dumps = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False).encode


def sse(data: Any, *, event: str | None = None, event_id: Any = None) -> bytes:
    """One server-sent-events message: ``data`` as one line of JSON."""
    head = (f"event: {event}\n" if event else "") + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + _dumps(data).encode() + b"\n\n"


HEARTBEAT = b": ping\n\n"
END = sse({}, event="end")


# ---- where a stream's bytes go ---------------------------------------------------------------------
class Sink:
    """One open connection, seen from the hub. :meth:`send` never blocks; :attr:`gone` turns true
    when the client went away; :attr:`backlog` is what it has not taken yet."""

    gone = False

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def end(self) -> None:
        """Close once everything sent has gone out."""
        raise NotImplementedError

    @property
    def backlog(self) -> int:
        return 0


class QueueSink(Sink):
    """For a WSGI server that cannot take connections over: the request thread's response body
    reads the queue (:func:`_blocking_body`)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._queued = 0

    def send(self, data: bytes) -> None:
        self._queued += len(data)
        self.queue.put(data)

    def end(self) -> None:
        self.queue.put(None)

    def taken(self, data: bytes) -> None:
        self._queued -= len(data)

    @property
    def backlog(self) -> int:
        return self._queued


# ---- streams ---------------------------------------------------------------------------------------
class Stream:
    """One open live page's subscription. The hub thread alone touches it once attached."""

    kind = ""

    def __init__(self) -> None:
        self.sink: Sink | None = None
        self.last_write = 0.0
        self.done = False

    def write(self, data: bytes) -> None:
        if self.sink is not None and not self.done:
            self.sink.send(data)
            self.last_write = time.monotonic()

    def finish(self) -> None:
        """``event: end``, then close."""
        if not self.done:
            self.write(END)
            self.done = True
            if self.sink is not None:
                self.sink.end()

    @property
    def closed(self) -> bool:
        return self.done or self.sink is None or self.sink.gone


class RunEventsStream(Stream):
    """``/live/runs/<id>/events``: the run's events after ``cursor``, then ``end`` once it finished."""

    kind = "events"

    def __init__(self, run_id: str, cursor: int | None):
        super().__init__()
        self.run_id, self.cursor = run_id, cursor
        self.live = False  # caught up with its run's watch: fed by the shared feed read

    def deliver(self, events: list[Event], status: RunStatus | None, finished: bool = False) -> None:
        fresh = [e for e in events if self.cursor is None or (e.id or 0) > self.cursor]
        for start in range(0, len(fresh), PAGE) if fresh else ():
            chunk = fresh[start:start + PAGE]
            self.cursor = chunk[-1].id
            last = start + PAGE >= len(fresh)
            self.write(sse({"events": [event_json(e) for e in chunk], "cursor": self.cursor,
                            "runStatus": str(status) if status else None, "finished": finished and last},
                           event_id=self.cursor))
        if finished:
            if not fresh:
                self.write(sse({"events": [], "cursor": self.cursor, "runStatus": str(status) if status else None,
                                "finished": True}, event_id=self.cursor))
            self.finish()


class StepLogsStream(Stream):
    """``/live/runs/<id>/steps/<key>/logs``: a step's captured output from ``offset``, also when it
    has not started yet; ``end`` once the step ended and everything was sent."""

    kind = "logs"

    def __init__(self, run_id: str, step_key: str, stream: str, offset: int):
        super().__init__()
        self.run_id, self.step_key, self.stream, self.offset = run_id, step_key, stream, offset
        self.dirty = True  # read at the next pass
        self.path: str | None = None  # the file, once output was captured
        self.next_stat = 0.0
        self.last_state: tuple[Any, ...] | None = None

    def touched_by(self, events: list[Event]) -> bool:
        """Whether these new events of the run may change what the log shows."""
        return any(e.step_key == self.step_key or (e.step_key is None and str(e.event_type) in _RUN_STATUS_EVENTS)
                   for e in events)


class RunsStream(Stream):
    """``/live/runs``: ``{runIds}`` of runs added or moved to another status."""

    kind = "runs"

    def __init__(self, locations: frozenset[str] | None = None) -> None:
        super().__init__()
        self.pending: set[str] = set()
        self.last_message = 0.0
        #: the code locations its principal sees (None: all): only their runs are announced
        self.locations = locations


class TicksStream(Stream):
    """``/live/ticks``: ``{instigators}`` whose ticks were created or updated (only ``names`` when given)."""

    kind = "ticks"

    def __init__(self, names: frozenset[str], visible: frozenset[str] | None = None):
        super().__init__()
        self.names = names
        self.pending: set[str] = set()
        self.last_message = 0.0
        #: the schedules and sensors its principal sees (None: all)
        self.visible = visible


def event_json(e: Event) -> dict[str, Any]:
    """An event as the pages read it (the fields of GraphQL's ``Event``)."""
    return {"id": e.id, "eventType": str(e.event_type), "timestamp": e.timestamp, "stepKey": e.step_key,
            "level": e.level, "message": e.message, "data": e.data or {}}


class _RunWatch:
    """What the hub knows of one followed run: its status and the last event id it read."""

    __slots__ = ("run_id", "status", "cursor", "new_events")

    def __init__(self, run_id: str, status: RunStatus | None, cursor: int | None):
        self.run_id, self.status, self.cursor = run_id, status, cursor
        self.new_events: list[Event] = []  # read in this pass

    @property
    def finished(self) -> bool:
        return self.status is None or self.status.is_finished  # None: the run was deleted


# ---- the hub ---------------------------------------------------------------------------------------
class LiveHub:
    """One thread feeding every open stream of one web UI process (see the module docstring)."""

    def __init__(self, web: WebContext):
        self._web = web
        settings = web.settings
        # beats often enough that the idle-connection timeout never closes a live page
        self.heartbeat = min(settings.live_heartbeat_seconds, settings.channel_timeout_seconds / 2)
        self.max_streams = settings.max_live_streams
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._incoming: list[Stream] = []
        self._streams: list[Stream] = []
        self._count = 0  # streams attached and not yet dropped (read by the views for the cap)
        self._watches: dict[str, _RunWatch] = {}
        self._locations_of_runs: dict[str, str | None] = {}
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._signal: ChangeSignal | None = None
        # what the last reads saw
        self._unfinished: dict[str, tuple[RunStatus, float]] | None = None
        self._tick_cursor: int | None = None
        self._open_ticks: dict[int, float] = {}
        self._ticks_supported = True
        # pending kinds of change, and when each is next read
        self._dirty: set[str] = set(ALL_CHANGES)
        self._due = {CHANGE_EVENTS: 0.0, CHANGE_RUNS: 0.0, CHANGE_TICKS: 0.0, "status": 0.0}
        self._not_before = {CHANGE_RUNS: 0.0, CHANGE_TICKS: 0.0}
        # a look that finds nothing changed costs only the signal: passes, heartbeats and the search
        # for closed streams run when something happened or when they are due
        self._next_pass = 0.0
        self._next_beat = 0.0
        self._look_for_gone = False

    # ---- any thread ------------------------------------------------------------------------------
    @property
    def open_streams(self) -> int:
        return self._count

    def attach(self, stream: Stream, sink: Sink) -> None:
        """Start feeding ``stream`` into ``sink`` (from any thread)."""
        stream.sink = sink
        with self._lock:
            if self._stopped:
                sink.end()
                return
            self._count += 1
            self._incoming.append(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runyard-live-hub", daemon=True)
                self._thread.start()
        self._wake.set()

    def wake(self) -> None:
        """Look at the streams now (a client went away)."""
        self._look_for_gone = True
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    # ---- the hub thread --------------------------------------------------------------------------
    def _run(self) -> None:
        again = False
        retry_at = 0.0
        try:
            while not self._stopped:
                busy = bool(self._streams or self._incoming)
                interval = self._signal.interval if self._signal is not None else 0.005
                self._wake.wait(0 if again else interval if busy else self.heartbeat)
                self._wake.clear()
                with self._lock:
                    incoming, self._incoming = self._incoming, []
                now = time.monotonic()
                passed, again = False, False
                if now >= retry_at:
                    try:
                        if self._signal is None and (self._streams or incoming):
                            self._signal = self._web.storage.change_signal()
                        self._dirty |= self._signal.changed() if self._signal is not None else ALL_CHANGES
                        for stream in incoming:
                            self._open(stream, now)
                        if incoming or self._dirty or now >= self._next_pass:
                            passed = True
                            again = self._pass(now)
                    except Exception as exc:  # noqa: BLE001 - storage down: streams stay open, retried
                        log.warning("live updates: reading storage failed (%s: %s); retrying in %gs",
                                    type(exc).__name__, exc, ERROR_BACKOFF_SECONDS)
                        retry_at = now + ERROR_BACKOFF_SECONDS
                        self._dirty |= ALL_CHANGES
                        # streams that were not opened yet are opened at the next try
                        self._incoming_retry([s for s in incoming if s not in self._streams])
                else:
                    self._incoming_retry(incoming)
                if now >= self._next_beat:
                    self._next_beat = now + 1.0
                    self._beat(now)
                    passed = True
                if passed or self._look_for_gone:
                    self._look_for_gone = False
                    self._drop_closed()
        finally:
            for stream in self._streams + self._incoming:
                if not stream.closed and stream.sink is not None:
                    stream.sink.end()  # shutting down: the browser reconnects to the next process
            if self._signal is not None:
                self._signal.close()

    def _incoming_retry(self, streams: list[Stream]) -> None:
        if streams:
            with self._lock:
                self._incoming[:0] = streams

    def _open(self, stream: Stream, now: float) -> None:
        """A stream's first look: its run's watch, or what runs and ticks are now, so that every
        change after its first bytes (``retry:``) is announced."""
        storage = self._web.storage
        if isinstance(stream, RunEventsStream | StepLogsStream):
            self._watch(stream.run_id)
        elif isinstance(stream, RunsStream) and self._unfinished is None:
            self._unfinished = storage.get_run_statuses(statuses=UNFINISHED_STATUSES)
            self._due[CHANGE_RUNS] = now + SAFETY_SECONDS
        elif isinstance(stream, TicksStream) and self._tick_cursor is None and self._ticks_supported:
            self._read_ticks(now, [], baseline=True)
        stream.write(f"retry: {RETRY_MS}\n\n".encode())
        self._streams.append(stream)

    def _watch(self, run_id: str) -> _RunWatch:
        watch = self._watches.get(run_id)
        if watch is None:
            storage = self._web.storage
            # the status first, then the newest event: a run seen finished here has every event it
            # will have at or below that cursor (its finishing event is written with the status)
            status = storage.get_run_statuses(run_ids=[run_id]).get(run_id, (None, 0.0))[0]
            newest = storage.get_events(run_id, before_id=1 << 62, limit=1)
            watch = self._watches[run_id] = _RunWatch(run_id, status, newest[-1].id if newest else None)
        return watch

    def _pass(self, now: float) -> bool:
        """Read what changed and feed the streams; True when more is waiting to be read at once."""
        streams = [s for s in self._streams if not s.closed]
        kinds = {s.kind for s in streams}
        again = False
        if self._watches or "runs" in kinds:
            self._read_runs(now, streams)
        if self._watches:
            again |= self._read_events(now, streams)
        if "logs" in kinds:
            again |= self._read_logs(now, streams)
        if "ticks" in kinds:
            self._read_ticks(now, streams)
        self._notify(now, streams)
        for watch in self._watches.values():
            watch.new_events = []
        # changes nobody here reads are forgotten; what is due comes back by the clock
        if not self._watches:
            self._dirty.discard(CHANGE_EVENTS)
            if "runs" not in kinds:
                self._dirty.discard(CHANGE_RUNS)
        if "ticks" not in kinds:
            self._dirty.discard(CHANGE_TICKS)
        pending = any(isinstance(s, RunsStream | TicksStream) and s.pending for s in streams)
        self._next_pass = now + (LOG_STAT_SECONDS if "logs" in kinds or pending else NOTIFY_MIN_SECONDS)
        return again

    def _due_now(self, kind: str, now: float) -> bool:
        if now >= self._due[kind]:
            return True
        return kind in self._dirty and now >= self._not_before.get(kind, 0.0)

    def _read_runs(self, now: float, streams: list[Stream]) -> None:
        """The unfinished runs (a short list, read from the status index) against the last read:
        a run that appeared, left or changed there was added or moved on."""
        if not self._due_now(CHANGE_RUNS, now):
            return
        self._dirty.discard(CHANGE_RUNS)
        self._due[CHANGE_RUNS] = now + SAFETY_SECONDS
        self._not_before[CHANGE_RUNS] = now + RUNS_MIN_SECONDS
        storage = self._web.storage
        current = storage.get_run_statuses(statuses=UNFINISHED_STATUSES)
        before, self._unfinished = self._unfinished, current
        changed: set[str] = set()
        if before is not None:
            changed = {rid for rid in current.keys() | before.keys() if current.get(rid) != before.get(rid)}
        scoped = [s for s in streams if isinstance(s, RunsStream) and s.locations is not None]
        where = self._run_locations(changed) if scoped and changed else {}
        for stream in streams:
            if isinstance(stream, RunsStream):
                stream.pending |= changed if stream.locations is None else \
                    {rid for rid in changed if where.get(rid) in stream.locations}
        refresh = [rid for rid in changed if rid in self._watches]
        if now >= self._due["status"]:
            self._due["status"] = now + STATUS_REFRESH_SECONDS
            refresh = list(self._watches)
        if refresh:
            statuses = storage.get_run_statuses(run_ids=refresh)
            for rid in refresh:
                self._watches[rid].status = statuses.get(rid, (None, 0.0))[0]

    def _run_locations(self, run_ids: set[str]) -> dict[str, str | None]:
        """The code location of each run (kept: a run never moves), for streams limited to some."""
        from runyard.storage.records import RunFilter
        from runyard.tags import LOCATION_TAG

        known = self._locations_of_runs
        missing = [rid for rid in run_ids if rid not in known]
        if missing:
            if len(known) > 100_000:
                known.clear()
            for run in self._web.storage.get_runs(RunFilter(run_ids=missing)):
                known[run.run_id] = run.tags.get(LOCATION_TAG)
        return {rid: known.get(rid) for rid in run_ids}

    def _read_events(self, now: float, streams: list[Stream]) -> bool:
        """New events of every followed run in one read (each run after its own cursor); streams
        that start behind first catch up on their own, a page per pass."""
        events_streams = [s for s in streams if isinstance(s, RunEventsStream)]
        behind = [s for s in events_streams if not s.live]
        feed = self._due_now(CHANGE_EVENTS, now)
        if not (behind or feed):
            return False
        storage = self._web.storage
        # what counts as finished is what was known before this pass's read (see _watch)
        finished_before = {rid for rid, w in self._watches.items() if w.finished}
        again = False
        for stream in behind:
            watch = self._watches[stream.run_id]
            if stream.sink is not None and stream.sink.backlog > CATCH_UP_BACKLOG:
                continue  # its client is slow: looked at again next pass, without a read
            upto = watch.cursor
            if upto is None or (stream.cursor is not None and stream.cursor >= upto):
                stream.live = feed = True
                continue
            page = storage.get_events(stream.run_id, after_id=stream.cursor, limit=PAGE)
            stream.deliver([e for e in page if (e.id or 0) <= upto], watch.status)
            if len(page) < PAGE or (page and (page[-1].id or 0) >= upto):
                stream.cursor = max(stream.cursor or 0, upto)
                stream.live = feed = True  # the feed read below brings it the rest (or its end)
            else:
                again = True
        if not feed:
            return again
        self._dirty.discard(CHANGE_EVENTS)
        self._due[CHANGE_EVENTS] = now + SAFETY_SECONDS
        rows = storage.get_events_for_runs({rid: w.cursor for rid, w in self._watches.items()}, limit=FEED_LIMIT)
        truncated = len(rows) >= FEED_LIMIT
        for event in rows:
            watch = self._watches[event.run_id]
            watch.new_events.append(event)
            watch.cursor = event.id
        status_events = [rid for rid, w in self._watches.items()
                         if any(e.step_key is None and str(e.event_type) in _RUN_STATUS_EVENTS for e in w.new_events)]
        for stream in events_streams:
            if not stream.live or stream.closed:
                continue
            watch = self._watches[stream.run_id]
            done = stream.run_id in finished_before and not truncated
            if watch.new_events or done:
                stream.deliver(watch.new_events, watch.status, finished=done)
            if stream.sink is not None and stream.sink.backlog > MAX_BACKLOG:
                log.info("live updates: closing a stream of run %s whose client is %d bytes behind",
                         stream.run_id, stream.sink.backlog)
                stream.done = True
                stream.sink.end()
        if status_events:
            # the status moved with these events: read it now, and look again at once, so a run
            # that finished ends its streams without waiting for the next change
            statuses = storage.get_run_statuses(run_ids=status_events)
            for rid in status_events:
                self._watches[rid].status = statuses.get(rid, (None, 0.0))[0]
            again = True
        return again or truncated

    def _read_logs(self, now: float, streams: list[Stream]) -> bool:
        from runyard.execution.compute_logs import captured_steps, read_chunk, step_log_files
        from runyard.operations.step_logs import decode_whole_chars, read_step_output

        web = self._web
        again = False
        for stream in streams:
            if not isinstance(stream, StepLogsStream):
                continue
            watch = self._watches.get(stream.run_id)
            if watch is not None and stream.touched_by(watch.new_events):
                stream.dirty = True
                if stream.path is not None and any(
                        e.step_key == stream.step_key and str(e.event_type) == str(EventType.LOGS_CAPTURED)
                        for e in watch.new_events):
                    # a new attempt writes a new file (it starts with its own header line): follow
                    # that one from its start, after what the page shows of the previous attempt
                    stream.path, stream.offset = None, 0
            if stream.dirty:
                stream.dirty = False
                try:
                    chunk = read_step_output(web.instance, stream.run_id, stream.step_key, stream.stream,
                                             offset=stream.offset, max_bytes=LOG_CHUNK)
                except Exception as exc:  # noqa: BLE001 - e.g. the run was deleted: say so and end
                    from runyard.errors import StorageError

                    if isinstance(exc, StorageError):
                        raise
                    stream.write(sse({"data": "", "nextOffset": stream.offset, "finished": True, "available": False,
                                      "message": str(exc)}, event_id=stream.offset))
                    stream.finish()
                    continue
                if chunk.available and stream.path is None:
                    event = captured_steps(web.storage, stream.run_id).get(stream.step_key)
                    if event is not None:
                        stream.path = os.path.realpath(step_log_files(event).path(stream.stream))
                self._send_log(stream, chunk.text, chunk.next_offset, chunk.finished, chunk.available, chunk.message)
                if chunk.available and chunk.next_offset - stream.offset >= LOG_CHUNK // 2:
                    stream.dirty = again = True  # more is waiting
                stream.offset = chunk.next_offset
                if chunk.finished:
                    stream.finish()
            elif stream.path is not None and now >= stream.next_stat:
                stream.next_stat = now + LOG_STAT_SECONDS
                try:
                    size = os.stat(stream.path).st_size
                except OSError:
                    continue
                if size > stream.offset:
                    text, used = decode_whole_chars(read_chunk(stream.path, stream.offset, LOG_CHUNK))
                    if used:
                        self._send_log(stream, text, stream.offset + used, False, True, None)
                        stream.offset += used
                        again |= size > stream.offset
        return again

    @staticmethod
    def _send_log(stream: StepLogsStream, text: str, next_offset: int, finished: bool, available: bool,
                  message: str | None) -> None:
        state = (available, message, finished)
        if text or state != stream.last_state:
            stream.last_state = state
            stream.write(sse({"data": text, "nextOffset": next_offset, "finished": finished, "available": available,
                              "message": message}, event_id=next_offset))

    def _read_ticks(self, now: float, streams: list[Stream], baseline: bool = False) -> None:
        """New ticks (ids above the last one seen) and updates of the ticks still running."""
        if not self._ticks_supported or not (baseline or self._due_now(CHANGE_TICKS, now)):
            return
        self._dirty.discard(CHANGE_TICKS)
        self._due[CHANGE_TICKS] = now + SAFETY_SECONDS
        self._not_before[CHANGE_TICKS] = now + TICKS_MIN_SECONDS
        storage = self._web.storage
        try:
            ticks = storage.get_recent_ticks(self._tick_cursor, ids=list(self._open_ticks))
        except NotImplementedError as exc:
            log.warning("live updates: no tick updates (%s)", exc)
            self._ticks_supported = False
            return
        if self._tick_cursor is None:  # where to start from
            self._tick_cursor = ticks[-1].id if ticks else 0
            return
        changed: set[str] = set()
        for tick in ticks:
            changed.add(tick.instigator)
            self._tick_cursor = max(self._tick_cursor, tick.id or 0)
            if tick.status == TickStatus.STARTED:
                self._open_ticks.setdefault(tick.id, now)
            else:
                self._open_ticks.pop(tick.id, None)
        for tick_id, seen in list(self._open_ticks.items()):
            if now - seen > OPEN_TICK_SECONDS:
                del self._open_ticks[tick_id]
        for stream in streams:
            if isinstance(stream, TicksStream):
                mine = changed if stream.visible is None else changed & stream.visible
                stream.pending |= mine if not stream.names else mine & stream.names

    def _notify(self, now: float, streams: list[Stream]) -> None:
        for stream in streams:
            if isinstance(stream, RunsStream | TicksStream) and stream.pending and \
                    now - stream.last_message >= NOTIFY_MIN_SECONDS:
                key = "runIds" if isinstance(stream, RunsStream) else "instigators"
                stream.write(sse({key: sorted(stream.pending)}))
                stream.pending.clear()
                stream.last_message = now

    def _beat(self, now: float) -> None:
        for stream in self._streams:
            if not stream.closed and now - stream.last_write >= self.heartbeat:
                stream.write(HEARTBEAT)

    def _drop_closed(self) -> None:
        keep = [s for s in self._streams if not s.closed]
        dropped = len(self._streams) - len(keep)
        if not dropped:
            return
        for stream in self._streams:
            if stream.closed and not stream.done and stream.sink is not None:
                stream.done = True
        self._streams = keep
        followed = {s.run_id for s in keep if isinstance(s, RunEventsStream | StepLogsStream)}
        for rid in [rid for rid in self._watches if rid not in followed]:
            del self._watches[rid]
        # what nobody follows any more goes stale: the next stream starts from a fresh read
        if not self._watches and not any(isinstance(s, RunsStream) for s in keep):
            self._unfinished = None
        if not any(isinstance(s, TicksStream) for s in keep):
            self._tick_cursor = None
            self._open_ticks.clear()
        with self._lock:
            self._count -= dropped


# ---- the endpoints ---------------------------------------------------------------------------------
live = Blueprint("live", __name__)


def register(app: Flask, web: WebContext) -> LiveHub:
    """Serve ``/live/...`` on ``app``; the hub starts with the first stream."""
    hub = LiveHub(web)
    app.extensions[EXTENSION] = hub
    app.register_blueprint(live)
    return hub


def _refuse(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", code, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


def _int_arg(name: str, *, header: bool = False) -> int | None:
    """A non-negative integer query argument. With ``header``, where the stream resumes wins: the
    ``Last-Event-ID`` a reconnecting browser sends, or ``lastEventId`` (what ``runyard.subscribe``
    passes when it opens a refused stream again)."""
    raw = (request.headers.get("Last-Event-ID") or request.args.get("lastEventId")) if header else None
    if not raw:
        raw = request.args.get(name)
    if raw is None or raw == "" or raw == "null":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise WebError(f"'{name}' must be a whole number, not '{raw[:40]}'") from None
    if value < 0:
        raise WebError(f"'{name}' must not be negative ({value})")
    return value


def _open(stream: Stream) -> Response:
    """Answer with the stream: handed to the web server when it can take it over, else streamed
    from this request thread."""
    hub: LiveHub = current_app.extensions[EXTENSION]
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return _refuse(403, "live updates are served to the web UI's own pages only")
    if hub.open_streams >= hub.max_streams:
        return _refuse(503, f"too many live pages open at once (webui.max_live_streams = {hub.max_streams}); "
                            "the page tries again shortly", {"Retry-After": "5"})
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache, no-store",
               "X-Accel-Buffering": "no"}  # proxies that buffer responses (nginx) pass this one through
    environ = request.environ
    if environ.get(DETACH_KEY):
        environ[STREAM_KEY] = (hub, stream)
        return Response(iter(()), 200, headers)
    return Response(_blocking_body(hub, stream), 200, headers)


def _blocking_body(hub: LiveHub, stream: Stream) -> Iterator[bytes]:
    sink = QueueSink()
    hub.attach(stream, sink)
    try:
        while True:
            try:
                data = sink.queue.get(timeout=hub.heartbeat * 2)
            except queue.Empty:
                continue
            if data is None:
                return
            sink.taken(data)
            yield data
    finally:
        sink.gone = True
        hub.wake()


def _web() -> WebContext:
    return current_app.config["RUNYARD_WEB"]


def _answer(fn):
    """Refusals as plain-text answers (404 for an unknown run, 400 for a bad argument)."""
    def view(**kwargs: Any) -> Response:
        try:
            return fn(**kwargs)
        except WebError as exc:
            return _refuse(404 if exc.code == NOT_FOUND else 400, exc.message)

    view.__name__ = fn.__name__
    view.__doc__ = fn.__doc__
    return view


@live.get("/live/runs/<run_id>/events")
@_answer
def run_events(run_id: str) -> Response:
    """A run's events after ``after`` (an event id; none: from its first event)."""
    after = _int_arg("after", header=True)
    _web().get_run(run_id)
    return _open(RunEventsStream(run_id, after))


@live.get("/live/runs/<run_id>/steps/<step_key>/logs")
@_answer
def step_logs(run_id: str, step_key: str) -> Response:
    """A step's stdout or stderr from byte ``offset``, also before the step starts."""
    from runyard.operations.step_logs import STREAMS

    name = request.args.get("stream", "stdout")
    if name not in STREAMS:
        raise WebError(f"'stream' must be stdout or stderr, not '{name[:40]}'")
    offset = _int_arg("offset", header=True) or 0
    _web().get_run(run_id)
    return _open(StepLogsStream(run_id, step_key, name, offset))


@live.get("/live/runs")
@_answer
def runs() -> Response:
    """Run ids whenever runs are added or change status (of the code locations its principal sees)."""
    from .auth import current_principal

    return _open(RunsStream(current_principal().locations))


@live.get("/live/ticks")
@_answer
def ticks() -> Response:
    """Schedule and sensor names whenever one of their ticks is created or updated (``instigator``,
    repeatable, keeps to those)."""
    from .auth import current_principal

    names = frozenset(n for n in request.args.getlist("instigator") if n)
    visible = None
    if current_principal().locations is not None:
        visible = frozenset(row["name"] for row in _web().automation_rows())
    return _open(TicksStream(names, visible))


@live.get("/live/status")
def status() -> Response:
    """How many live streams this process holds open: for monitoring, and the tests."""
    from flask import jsonify

    hub: LiveHub = current_app.extensions[EXTENSION]
    return jsonify(openStreams=hub.open_streams, maxStreams=hub.max_streams)
