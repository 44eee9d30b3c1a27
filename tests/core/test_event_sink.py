"""The run worker's event sink writes by group commit (core/runyard/execution/events.py): a lone
event goes to storage at once, without waiting for a timer; events that arrive while a write is
under way form the next batch; a burst reaching ``max_batch`` is written by the emitting thread;
order is kept throughout. Real SQLite storage; outages are covered in test_storage_faults.py."""

from __future__ import annotations

import threading

import pytest

from runyard.execution.events import EventSink
from runyard.storage.records import EventType, RunStatus
from runyard.testing import wait_until

NEVER = 3600.0  # a max_delay no test outlives: what is stored was written because of an emit


@pytest.fixture
def run(instance):
    run = instance.create_run(job_name="j")
    assert instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTED)
    return run


class _Recording:
    """Wraps storage.store_events: records each batch; ``gate`` (when set) holds the first write."""

    def __init__(self, storage, monkeypatch):
        self.batches: list[list[str]] = []
        self.gate: threading.Event | None = None
        self.writing = threading.Event()
        real = storage.store_events

        def store_events(events):
            self.writing.set()
            if self.gate is not None and not self.batches:
                self.gate.wait(60)
            real(events)
            self.batches.append([e.message for e in events])

        monkeypatch.setattr(storage, "store_events", store_events)


def _messages(instance, run_id: str) -> list[str]:
    return [e.message for e in instance.storage.get_events(run_id) if e.message.startswith("e")]


def test_a_lone_event_is_written_at_once(instance, run):
    sink = EventSink(instance.storage, run.run_id, max_delay=NEVER).start()
    try:
        sink.emit(EventType.ENGINE_EVENT, "e0")
        wait_until(lambda: _messages(instance, run.run_id) == ["e0"], timeout=60, what="the event to be stored")
        sink.emit(EventType.ENGINE_EVENT, "e1")  # and the next one, after the flusher went back to waiting
        wait_until(lambda: _messages(instance, run.run_id) == ["e0", "e1"], timeout=60, what="the second event")
    finally:
        sink.close()


def test_events_arriving_during_a_write_form_the_next_batch(instance, run, monkeypatch):
    recording = _Recording(instance.storage, monkeypatch)
    recording.gate = threading.Event()
    sink = EventSink(instance.storage, run.run_id, max_delay=NEVER).start()
    try:
        sink.emit(EventType.ENGINE_EVENT, "e0")
        assert recording.writing.wait(60), "the flusher did not start writing the first event"
        for i in range(1, 11):  # while e0's write is held
            sink.emit(EventType.ENGINE_EVENT, f"e{i}")
        recording.gate.set()
        wait_until(lambda: len(_messages(instance, run.run_id)) == 11, timeout=60, what="every event stored")
        assert recording.batches == [["e0"], [f"e{i}" for i in range(1, 11)]]
    finally:
        sink.close()
    assert _messages(instance, run.run_id) == [f"e{i}" for i in range(11)]


def test_a_burst_is_written_in_batches_of_at_most_max_batch_in_order(instance, run, monkeypatch):
    recording = _Recording(instance.storage, monkeypatch)
    sink = EventSink(instance.storage, run.run_id, max_batch=50, max_delay=NEVER).start()
    for i in range(1000):
        sink.emit(EventType.ENGINE_EVENT, f"e{i}")
    sink.close()
    assert _messages(instance, run.run_id) == [f"e{i}" for i in range(1000)]
    assert all(1 <= len(b) <= 50 for b in recording.batches)
    assert [m for b in recording.batches for m in b] == [f"e{i}" for i in range(1000)]
    assert len(recording.batches) < 1000, "a burst was written one event per transaction"


def test_a_transition_carries_what_is_buffered_and_close_stops_the_flusher(instance, run):
    from runyard.execution.run_worker import _transition

    sink = EventSink(instance.storage, run.run_id, max_delay=NEVER).start()
    thread = sink._thread
    for i in range(5):
        sink.emit(EventType.ENGINE_EVENT, f"e{i}")
    assert _transition(instance, run, sink, [RunStatus.STARTED], RunStatus.SUCCESS, "done")
    sink.close()
    assert not thread.is_alive()
    events = instance.storage.get_events(run.run_id)
    assert [e.message for e in events if e.message.startswith("e")] == [f"e{i}" for i in range(5)]
    assert str(events[-1].event_type) == "RUN_SUCCESS"
