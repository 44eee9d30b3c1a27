"""The reads of a run page, for the storage plugins' query-plan tests (issue 14: the first view of a
100,000-event run read all its events to fold 400 step events).

:func:`seed_long_runs` stores a few runs with many log events and few step events and the plan
event the run worker writes; :func:`run_page_statements` captures every SELECT the run page's
storage reads send for one run: its plan (:func:`runyard.execution.plan.stored_plan`), its step
events (first view and a later one, :meth:`RunStorage.get_events` by type) and
:meth:`RunStorage.get_step_stats`, and checks what they return. Each plugin's test explains the
statements its own way and asserts they read ``idx_events_run_type``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..execution.plan import PLAN_DATA_KEY, StoredStep, stored_plan
from ..storage.records import STEP_STATUS_EVENTS, Event, EventType, RunRecord, RunStatus

#: step events are 1 in LOGS_PER_STEP + 2 events of a seeded run
LOGS_PER_STEP = 98


def seed_long_runs(storage: Any, runs: int = 3, steps: int = 100) -> list[str]:
    """``runs`` finished runs of ``steps`` steps each: a plan event, then per step a start, LOGS_PER_STEP
    log lines and a success. Returns their ids."""
    ids = []
    for r in range(runs):
        run_id = f"long-run-{r}"
        storage.add_run(RunRecord(run_id=run_id, job_name="long", status=RunStatus.SUCCESS))
        plan = [{"key": f"s{i}", "upstream": [f"s{i - 1}"] if i else []} for i in range(steps)]
        batch = [Event(run_id=run_id, event_type=EventType.ENGINE_EVENT, message="Executing",
                       data={"executor": "in_process", "steps": steps, PLAN_DATA_KEY: plan})]
        for i in range(steps):
            key = f"s{i}"
            batch.append(Event(run_id=run_id, event_type=EventType.STEP_START, step_key=key, message="start"))
            batch.extend(Event(run_id=run_id, event_type=EventType.LOG, step_key=key, message=f"line {j}")
                         for j in range(LOGS_PER_STEP))
            batch.append(Event(run_id=run_id, event_type=EventType.STEP_SUCCESS, step_key=key, message="ok"))
            if len(batch) >= 5000:
                storage.store_events(batch)
                batch = []
        storage.store_events(batch)
        ids.append(run_id)
    return ids


def run_page_statements(storage: Any, run_id: str, steps: int = 100) -> list[tuple[str, Any]]:
    """(statement, parameters) of every SELECT the run page's reads of ``run_id`` send, after
    checking what they return."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    kinds = list(STEP_STATUS_EVENTS)
    event.listen(storage.engine, "before_cursor_execute", capture)
    try:
        plan = stored_plan(storage, run_id)
        first = storage.get_events(run_id, event_types=kinds)
        later = storage.get_events(run_id, after_id=first[steps].id, event_types=kinds)
        stats = storage.get_step_stats(run_id)
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)
    assert plan is not None and plan[1] == StoredStep("s1", ("s0",)) and len(plan) == steps
    assert [(e.event_type, e.step_key) for e in first] == [
        (kind, f"s{i}") for i in range(steps) for kind in (EventType.STEP_START, EventType.STEP_SUCCESS)]
    assert [e.id for e in later] == [e.id for e in first[steps + 1:]]
    assert [s.step_key for s in stats] == [f"s{i}" for i in range(steps)]
    return sent


def check_plans(plans: list[tuple[str, str]], uses_index: Callable[[str], bool]) -> None:
    """Each (statement, its plan as text) reads the events through ``idx_events_run_type``."""
    assert plans, "no statement was captured"
    for sql, plan in plans:
        assert uses_index(plan), f"not read through idx_events_run_type:\n{sql}\n{plan}"


#: the revision before ``idx_events_run_type`` (0003)
BEFORE_EVENTS_TYPE_INDEX = "0002"


def write_revision_0002(engine: Any) -> None:
    """Create the schema at 0002 and store, as a runyard of that revision did (raw SQL, no plan
    event), a finished run ``old-run`` of two steps with log lines between its step events."""
    import json

    from .old_schema import schema_with_old_run

    events = schema_with_old_run(engine, BEFORE_EVENTS_TYPE_INDEX, "FAILURE")
    kinds = [("RUN_START", None), ("ENGINE_EVENT", None), ("STEP_START", "a"), ("LOG", "a"), ("STEP_SUCCESS", "a"),
             ("STEP_START", "b"), ("LOG", "b"), ("STEP_FAILURE", "b"), ("RUN_FAILURE", None)]
    with engine.begin() as conn:
        conn.execute(events.insert(), [
            {"run_id": "old-run", "event_type": kind, "timestamp": 100.0 + i, "step_key": step, "level": "INFO",
             "message": f"old event {i}",
             "data": json.dumps({"error": "boom"} if kind == "STEP_FAILURE" else {"executor": "in_process"})}
            for i, (kind, step) in enumerate(kinds)])


def check_migrated_revision_0002(storage: Any) -> None:
    """What :func:`write_revision_0002` stored reads back at head: the index is there, the run page's
    reads answer from it (no stored plan: the run predates them)."""
    import sqlalchemy as sa

    from ..storage.sql.schema import HEAD_REVISION

    assert storage.schema_revision() == HEAD_REVISION
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(storage.engine).get_indexes("events")}
    assert indexes.get("idx_events_run_type") == ["run_id", "event_type", "id"], indexes
    assert stored_plan(storage, "old-run") is None
    steps = storage.get_events("old-run", event_types=list(STEP_STATUS_EVENTS))
    assert [(e.event_type, e.step_key) for e in steps] == [
        (EventType.STEP_START, "a"), (EventType.STEP_SUCCESS, "a"), (EventType.STEP_START, "b"),
        (EventType.STEP_FAILURE, "b")]
    stats = {s.step_key: s for s in storage.get_step_stats("old-run")}
    assert str(stats["a"].status) == "SUCCESS" and str(stats["b"].status) == "FAILURE"
    assert [e.message for e in storage.get_events("old-run")] == [f"old event {i}" for i in range(9)]
