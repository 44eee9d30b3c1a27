"""Live updates over real HTTP: server-sent event streams from a real ``runyard webui`` process
(waitress, SQLite) while real runs execute — events and the end of a run, step logs followed from
before the step starts, runs-list and tick notifications, clients that go away, and hundreds of
open streams beside /healthz, a page and GraphQL."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import urllib.parse
from typing import Any

import pytest

from runyard import Instance
from runyard.storage.records import Tick, TickStatus
from runyard.testing import wait_until

WAIT = 60


class SSE:
    """One ``text/event-stream`` response read by a thread: ``messages`` gets ``(event, data, id)``
    for each message (``data`` parsed as JSON), then ``None`` when the server closes."""

    def __init__(self, url: str, path: str, headers: dict[str, str] | None = None, timeout: float = WAIT):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self.messages: queue.Queue[tuple[str, Any, str | None] | None] = queue.Queue()
        self.comments = 0
        self.opened = threading.Event()  # the first bytes (`retry:`): the hub follows this stream
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read().decode()

    def _read(self) -> None:
        event, data, last_id = "message", [], None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        self.messages.put((event, json.loads("\n".join(data)), last_id))
                    event, data = "message", []
                elif line.startswith(":"):
                    self.comments += 1
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("id:"):
                    last_id = line[3:].strip()
                elif line.startswith("retry:"):
                    self.opened.set()
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass  # closed by the test (http.client drops its file under a reading thread)
        self.messages.put(None)

    def next(self, timeout: float = WAIT) -> tuple[str, Any, str | None] | None:
        return self.messages.get(timeout=timeout)

    def until(self, accept, timeout: float = WAIT) -> list[tuple[str, Any, str | None]]:
        """Every message up to and including the first ``accept(msg)`` is true for."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            assert msg is not None, f"the stream closed before the expected message; got {seen}"
            seen.append(msg)
            if accept(msg):
                return seen

    def close(self) -> None:
        try:
            self.response.close()
        finally:
            self.conn.close()


@pytest.fixture
def streams():
    opened: list[SSE] = []

    def open_stream(url: str, path: str, **kwargs: Any) -> SSE:
        s = SSE(url, path, **kwargs)
        opened.append(s)
        return s

    yield open_stream
    for s in opened:
        s.close()


def _events(messages) -> list[dict[str, Any]]:
    return [e for kind, data, _ in messages if kind == "message" for e in data.get("events", [])]


def test_run_events_arrive_then_the_stream_ends(webui, streams):
    run_id = webui.launch("hello", {"ops": {"greet": {"config": {"name": "live"}}}})["run"]["runId"]
    s = streams(webui.url, f"/live/runs/{run_id}/events")
    assert s.status == 200 and s.headers["Content-Type"].startswith("text/event-stream")
    assert s.headers.get("X-Frame-Options") == "DENY"  # the app's headers apply to streams too
    got = s.until(lambda m: m[0] == "end")
    events = _events(got)
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), "events repeated or out of order"
    types = [e["eventType"] for e in events]
    assert types[-1] == "RUN_SUCCESS" and "STEP_SUCCESS" in types
    assert any(e["message"] == "hello live" for e in events)
    last = [data for kind, data, _ in got if kind == "message"][-1]
    assert last["finished"] is True and last["runStatus"] == "SUCCESS" and last["cursor"] == ids[-1]
    assert s.next() is None, "the server did not close the stream after `end`"
    # the stream and the long poll agree, event for event
    _, polled = webui.wait_finished(run_id)
    assert [e["id"] for e in polled] == ids

    # resuming: from a cursor (query or Last-Event-ID, as a reconnecting browser sends) only the rest
    again = streams(webui.url, f"/live/runs/{run_id}/events?after={ids[-3]}")
    assert [e["id"] for e in _events(again.until(lambda m: m[0] == "end"))] == ids[-2:]
    header = streams(webui.url, f"/live/runs/{run_id}/events?after=0", headers={"Last-Event-ID": str(ids[-2])})
    assert [e["id"] for e in _events(header.until(lambda m: m[0] == "end"))] == ids[-1:]


def test_a_running_run_streams_events_as_they_are_stored(webui, streams):
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 3}}}})["run"]["runId"]
    s = streams(webui.url, f"/live/runs/{run_id}/events")
    first = s.until(lambda m: any(e["message"] == "napping" for e in m[1].get("events", [])))
    assert not any(m[0] == "end" for m in first)
    statuses = {m[1]["runStatus"] for m in first if m[0] == "message"}
    assert "STARTED" in statuses
    rest = s.until(lambda m: m[0] == "end")
    assert _events(rest)[-1]["eventType"] == "RUN_SUCCESS"


def test_bad_requests_are_refused_with_a_reason(webui, streams):
    s = streams(webui.url, "/live/runs/no-such-run/events")
    assert s.status == 404 and "no-such-run" in s.body
    run_id = webui.launch("hello")["run"]["runId"]
    s = streams(webui.url, f"/live/runs/{run_id}/events?after=soon")
    assert s.status == 400 and "'after'" in s.body
    s = streams(webui.url, f"/live/runs/{run_id}/steps/greet/logs?stream=stdin")
    assert s.status == 400 and "stdout or stderr" in s.body
    s = streams(webui.url, f"/live/runs/{run_id}/events", headers={"Sec-Fetch-Site": "cross-site"})
    assert s.status == 403


def test_step_logs_opened_before_the_step_starts(webui, streams, tmp_path):
    """The log stream of a step that has not started says so, then carries its output as it is
    printed, then ends when the step does."""
    marker = tmp_path / "hold"
    marker.write_text("")
    run_id = webui.launch("gated", {"ops": {"wait_for_gate": {"config": {"gate": str(marker)}}}})["run"]["runId"]
    s = streams(webui.url, f"/live/runs/{run_id}/steps/printer/logs?stream=stdout")
    kind, first, _ = s.next()
    assert kind == "message" and first["available"] is False and not first["finished"]
    assert "printer" in first["message"]
    marker.unlink()  # the gate opens: the printer step runs and prints
    got = s.until(lambda m: m[0] == "end")
    text = "".join(m[1]["data"] for m in got if m[0] == "message")
    assert "line 1" in text and "line 5" in text
    last = [m[1] for m in got if m[0] == "message"][-1]
    assert last["finished"] is True and last["nextOffset"] == len(text.encode())
    assert s.next() is None


def test_runs_stream_names_the_runs_that_change(webui, streams):
    s = streams(webui.url, "/live/runs")
    assert s.status == 200 and s.opened.wait(WAIT)
    run_id = webui.launch("hello")["run"]["runId"]
    s.until(lambda m: run_id in m[1].get("runIds", []))
    webui.wait_finished(run_id)
    s.until(lambda m: run_id in m[1].get("runIds", []))  # again when it finished


def test_ticks_stream_names_the_instigators_whose_ticks_change(webui, streams):
    only = streams(webui.url, "/live/ticks?instigator=nightly_hello")
    every = streams(webui.url, "/live/ticks")
    assert only.opened.wait(WAIT) and every.opened.wait(WAIT)  # changes from now on are announced
    inst = Instance.open(home=str(webui.home))
    try:
        tick = inst.storage.create_tick(Tick(instigator="some_sensor", tick_time=time.time(),
                                             status=TickStatus.STARTED))
        every.until(lambda m: "some_sensor" in m[1].get("instigators", []))
        inst.storage.create_tick(Tick(instigator="nightly_hello", tick_time=time.time(), status=TickStatus.STARTED))
        got = only.until(lambda m: "nightly_hello" in m[1].get("instigators", []))
        assert all("some_sensor" not in m[1].get("instigators", []) for m in got)
        tick.status = TickStatus.SKIPPED
        inst.storage.update_tick(tick)  # an update of a running tick is news too
        every.until(lambda m: "some_sensor" in m[1].get("instigators", []))
    finally:
        inst.dispose()


def _open_streams(webui) -> int:
    """How many live streams the web UI holds (``/live/status``)."""
    status, text = webui.get("/live/status")
    assert status == 200, text
    return json.loads(text)["openStreams"]


def test_a_client_that_goes_away_is_dropped(webui, streams):
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 30}}}})["run"]["runId"]
    s = streams(webui.url, f"/live/runs/{run_id}/events")
    s.next()
    wait_until(lambda: _open_streams(webui) == 1, timeout=WAIT, what="the stream to be counted")
    s.close()
    wait_until(lambda: _open_streams(webui) == 0, timeout=WAIT, what="the closed stream to be dropped")
    webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok } }""", {"id": run_id})


def test_hundreds_of_open_streams_leave_the_server_answering(webui, streams):
    """200 open live pages on a quiet running run: /healthz, a page and GraphQL still answer, and
    every stream still gets the run's next events."""
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 600}}}})["run"]["runId"]
    open_ = [streams(webui.url, f"/live/runs/{run_id}/events") for _ in range(200)]
    assert all(s.status == 200 for s in open_)
    for s in open_:
        s.until(lambda m: m[0] == "message" and m[1]["events"])
    wait_until(lambda: _open_streams(webui) == 200, timeout=WAIT, what="200 open streams")
    # with every one of them open (the server has 8 request threads):
    for _ in range(5):
        status, text = webui.get("/healthz")
        assert status == 200 and json.loads(text)["status"] == "ok"
    status, page = webui.get("/runs")
    assert status == 200 and run_id[:8] in page
    assert webui.gql("""query($id: ID!) { run(runId: $id) { status } }""", {"id": run_id})["run"]["status"] == "STARTED"
    webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok } }""", {"id": run_id})
    for s in open_:
        s.until(lambda m: m[0] == "end")



def test_live_updates_on_postgres(start_webui, instance_file, streams):
    """The same streams over PostgreSQL, where the hub wakes on LISTEN/NOTIFY."""
    from runyard_storage_postgres.testing import PostgresUnavailable, create_database, drop_database, require_server

    try:
        admin = require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    url = create_database(admin, prefix="runyard_webui_live")
    try:
        instance_file(f"storage:\n  postgres:\n    url: '{url}'\n")
        ui = start_webui()
        runs = streams(ui.url, "/live/runs")
        ticks = streams(ui.url, "/live/ticks")
        assert runs.opened.wait(WAIT) and ticks.opened.wait(WAIT)
        run_id = ui.launch("hello", {"ops": {"greet": {"config": {"name": "pg"}}}})["run"]["runId"]
        s = streams(ui.url, f"/live/runs/{run_id}/events")
        logs = streams(ui.url, f"/live/runs/{run_id}/steps/shout/logs")
        events = _events(s.until(lambda m: m[0] == "end"))
        assert events[-1]["eventType"] == "RUN_SUCCESS" and any(e["message"] == "hello pg" for e in events)
        text = "".join(m[1]["data"] for m in logs.until(lambda m: m[0] == "end") if m[0] == "message")
        assert "SHOUTING HELLO PG" in text
        runs.until(lambda m: run_id in m[1].get("runIds", []))
        inst = Instance.open(home=str(ui.home))
        try:
            inst.storage.create_tick(Tick(instigator="pg_sensor", tick_time=time.time(), status=TickStatus.STARTED))
        finally:
            inst.dispose()
        ticks.until(lambda m: "pg_sensor" in m[1].get("instigators", []))
        for stream in (runs, ticks, s, logs):
            stream.close()
        ui.stop()
    finally:
        drop_database(url, admin)


def test_stopping_the_web_ui_closes_open_streams(webui, streams):
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 30}}}})["run"]["runId"]
    open_ = [streams(webui.url, f"/live/runs/{run_id}/events") for _ in range(5)] + [streams(webui.url, "/live/runs")]
    for s in open_:
        assert s.opened.wait(WAIT)
    assert webui.stop() == 0  # SIGTERM: exits 0 with the streams open, and closes them
    for s in open_:
        while (msg := s.next()) is not None:
            assert msg[0] in ("message", "end")
    inst = Instance.open(home=str(webui.home))
    try:
        inst.terminate_run(run_id)
    finally:
        inst.dispose()


def test_a_long_backlog_comes_in_pages_each_event_once(webui, streams):
    from runyard.storage.records import Event, EventType, RunStatus

    inst = Instance.open(home=str(webui.home))
    try:
        run = inst.create_run(job_name="hello")
        assert inst.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTED)
        for start in range(0, 3000, 500):
            inst.storage.store_events([Event(run_id=run.run_id, event_type=EventType.LOG, message=f"m{i}")
                                       for i in range(start, start + 500)])
        s = streams(webui.url, f"/live/runs/{run.run_id}/events")
        got = s.until(lambda m: any(e["message"] == "m2999" for e in m[1].get("events", [])))
        assert all(len(m[1]["events"]) <= 500 for m in got if m[0] == "message")
        assert inst.transition(run, [RunStatus.STARTED], RunStatus.SUCCESS)  # written after the stream opened
        got += s.until(lambda m: m[0] == "end")
    finally:
        inst.dispose()
    events = _events(got)
    logged = [e["message"] for e in events if e["eventType"] == "LOG"]
    assert logged == [f"m{i}" for i in range(3000)]
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})
    assert events[-1]["eventType"] == "RUN_SUCCESS"
