"""The run page over HTTP and GraphQL, against a real ``runyard webui`` process: a long event log
opens on its newest events and pages back to the first (``runEvents(beforeId:)``), every step of the
plan is listed (pending ones included) with its attempts, re-executions link both ways, and the page
says what launched the run. Long runs are written straight into storage, which is what a run worker
does, only faster."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from runyard import Instance
from runyard.storage.records import Event, EventType, RunFilter, RunRecord, RunStatus
from runyard.tags import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG, SCHEDULE_TAG, SENSOR_TAG
from runyard.testing import wait_until

PAGE_EVENTS = 500  # pages.RUN_PAGE_EVENTS

OLDER = """query($id: ID!, $before: Int, $limit: Int) { runEvents(runId: $id, beforeId: $before, limit: $limit) {
  hasOlder cursor runStatus events { id eventType stepKey message } } }"""
PLAN = """query($id: ID!) { run(runId: $id) { status planKnown
  planSteps { stepKey status duration error attempts { startTime endTime outcome } } } }"""


@pytest.fixture
def storage(webui):
    inst = Instance.open(home=str(webui.home))
    yield inst.storage
    inst.dispose()


def stored_run(storage, job: str = "hello", status: RunStatus = RunStatus.SUCCESS, tags=None, **fields) -> RunRecord:
    now = time.time()
    run = RunRecord(run_id=uuid.uuid4().hex, job_name=job, status=status, tags=dict(tags or {}),
                    start_time=now - 60, end_time=now if status.is_finished else None, **fields)
    return storage.add_run(run)


def event_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-event-id="(\d+)"', html)]


def test_a_100000_event_run_opens_on_its_newest_events_and_pages_back_to_the_first(webui, storage):
    run = stored_run(storage)
    total, batch = 100_000, 5_000
    t0 = time.time() - total / 1000
    for start in range(0, total, batch):
        storage.store_events([Event(run_id=run.run_id, event_type=EventType.LOG, message=f"line {i}",
                                    step_key=f"step_{i % 7}", level="DEBUG" if i % 3 else "INFO",
                                    timestamp=t0 + i / 1000) for i in range(start, start + batch)])
    every = [e.id for e in storage.get_events(run.run_id)]
    assert len(every) == total

    status, html = webui.get(f"/runs/{run.run_id}")
    assert status == 200
    shown = event_ids(html)
    assert shown == every[-PAGE_EVENTS:]  # the newest N, in order, and no more
    assert 'data-has-older="true"' in html and 'id="load-older"' in html
    assert f'data-first-id="{shown[0]}"' in html and f'data-cursor="{shown[-1]}"' in html

    # "Load older", as the page does it, until the first event
    loaded, before = list(shown), shown[0]
    while True:
        page = webui.gql(OLDER, {"id": run.run_id, "before": before, "limit": 5000})["runEvents"]
        ids = [e["id"] for e in page["events"]]
        assert ids == sorted(ids) and all(i < before for i in ids)
        loaded[:0] = ids
        if not page["hasOlder"]:
            break
        before = ids[0]
    assert loaded == every
    assert page["events"][0]["message"] == "line 0" and page["runStatus"] == "SUCCESS"


def test_before_id_in_storage_and_graphql(webui, storage):
    run = stored_run(storage)
    storage.store_events([Event(run_id=run.run_id, event_type=EventType.LOG, message=str(i)) for i in range(10)])
    ids = [e.id for e in storage.get_events(run.run_id)]
    assert [e.id for e in storage.get_events(run.run_id, before_id=ids[5], limit=3)] == ids[2:5]
    assert [e.id for e in storage.get_events(run.run_id, before_id=ids[5])] == ids[:5]
    assert [e.id for e in storage.get_events(run.run_id, after_id=ids[1], before_id=ids[5], limit=10)] == ids[2:5]
    assert storage.get_events(run.run_id, before_id=ids[0], limit=3) == []

    page = webui.gql(OLDER, {"id": run.run_id, "before": ids[5], "limit": 2})["runEvents"]
    assert [e["id"] for e in page["events"]] == ids[3:5] and page["hasOlder"] is True
    page = webui.gql(OLDER, {"id": run.run_id, "before": ids[2], "limit": 2})["runEvents"]
    assert [e["message"] for e in page["events"]] == ["0", "1"] and page["hasOlder"] is False
    missing = webui.gql_raw(OLDER, {"id": "nope", "before": 10, "limit": 2})
    assert "no run with id 'nope'" in missing["errors"][0]["message"]

    status, html = webui.get(f"/runs/{run.run_id}")  # a short run: everything, no "load older"
    assert event_ids(html) == ids and 'data-has-older="false"' in html


def test_every_step_of_the_plan_is_listed_pending_ones_included(webui):
    run_id = webui.launch("paced", {"ops": {"slow_step": {"config": {"seconds": 4}}}})["run"]["runId"]

    def slow_step_running():
        steps = webui.gql(PLAN, {"id": run_id})["run"]["planSteps"]
        return steps if {s["stepKey"]: s["status"] for s in steps}["slow_step"] == "STARTED" else None

    steps = wait_until(slow_step_running, timeout=60, what="slow_step to start")
    assert [s["stepKey"] for s in steps] == ["warm_up", "slow_step", "flaky", "wrap_up"]  # plan order
    status = {s["stepKey"]: s["status"] for s in steps}
    assert status == {"warm_up": "SUCCESS", "slow_step": "STARTED", "flaky": "PENDING", "wrap_up": "PENDING"}
    running = next(s for s in steps if s["stepKey"] == "slow_step")
    assert running["attempts"][0]["outcome"] == "RUNNING" and running["attempts"][0]["endTime"] is None
    assert running["duration"] is None
    _, html = webui.get(f"/runs/{run_id}")
    for key in ("warm_up", "slow_step", "flaky", "wrap_up"):
        assert f'<tr data-step="{key}"' in html
    assert re.search(r'<tr data-step="wrap_up"[^>]*data-step-status="PENDING"', html)

    assert webui.wait_finished(run_id)[0] == "SUCCESS"
    run = webui.gql(PLAN, {"id": run_id})["run"]
    assert run["planKnown"] is True
    steps = {s["stepKey"]: s for s in run["planSteps"]}
    assert {k: s["status"] for k, s in steps.items()} == dict.fromkeys(steps, "SUCCESS")
    # the retried step: two attempts, the first one failed and retried
    assert [a["outcome"] for a in steps["flaky"]["attempts"]] == ["RETRY", "SUCCESS"]
    first, second = steps["flaky"]["attempts"]
    assert first["endTime"] <= second["startTime"]
    assert steps["slow_step"]["duration"] >= 4
    assert steps["flaky"]["duration"] == pytest.approx(second["endTime"] - first["startTime"])


def test_steps_not_run_by_a_failed_run_and_a_selection(webui):
    run_id = webui.launch("broken")["run"]["runId"]
    assert webui.wait_finished(run_id)[0] == "FAILURE"
    steps = {s["stepKey"]: s for s in webui.gql(PLAN, {"id": run_id})["run"]["planSteps"]}
    assert steps["explode"]["status"] == "FAILURE" and "exploded on purpose" in steps["explode"]["error"]
    assert steps["after"]["status"] in ("SKIPPED", "NOT_RUN")  # never pending once the run is over

    only = webui.launch("paced", ops="warm_up")["run"]["runId"]
    assert webui.wait_finished(only)[0] == "SUCCESS"
    assert [s["stepKey"] for s in webui.gql(PLAN, {"id": only})["run"]["planSteps"]] == ["warm_up"]


def test_a_re_executed_run_links_to_its_children_and_back(webui, tmp_path, storage):
    marker = tmp_path / "marker"
    marker.write_text("fail")
    parent = webui.launch("pipeline", {"ops": {"check": {"config": {"fail_marker": str(marker)}}}})["run"]["runId"]
    assert webui.wait_finished(parent)[0] == "FAILURE"
    marker.unlink()
    child = webui.gql("""mutation($id: ID!) { reexecuteRun(runId: $id, mode: "from_failure") { run { runId } } }""",
                      {"id": parent})["reexecuteRun"]["run"]["runId"]
    assert webui.wait_finished(child)[0] == "SUCCESS"
    grandchild = webui.gql("""mutation($id: ID!) { reexecuteRun(runId: $id, mode: "all", ops: "check") {
        run { runId } } }""", {"id": child})["reexecuteRun"]["run"]["runId"]
    webui.wait_finished(grandchild)

    assert [r.run_id for r in storage.get_runs(RunFilter(parent_run_id=parent))] == [child]
    assert storage.count_runs(RunFilter(parent_run_id=child)) == 1
    assert storage.get_runs(RunFilter(parent_run_id=grandchild)) == []

    data = webui.gql("""query($id: ID!) { run(runId: $id) {
        children { runId status } launchedBy { kind name runId } } }""", {"id": parent})["run"]
    assert data["children"] == [{"runId": child, "status": "SUCCESS"}]
    assert data["launchedBy"]["kind"] == "user" and data["launchedBy"]["runId"] is None
    _, html = webui.get(f"/runs/{parent}")
    assert re.search(rf'<dd id="children"\s*>.*href="/runs/{child}"', html)

    _, html = webui.get(f"/runs/{grandchild}")
    assert f'<dd data-parent><a href="/runs/{child}">' in html
    assert f'<dd data-root><a href="/runs/{parent}">' in html  # the root of the chain, too
    launched = webui.gql("""query($id: ID!) { run(runId: $id) { launchedBy { kind runId } planSteps { stepKey } } }""",
                         {"id": grandchild})["run"]
    assert launched["launchedBy"]["runId"] == child
    assert [s["stepKey"] for s in launched["planSteps"]] == ["check"]  # only the selected step
    assert f"re-executing <a href=\"/runs/{child}\">" in html


def test_launched_by_a_schedule_or_a_sensor_and_tags_open_the_filtered_runs_list(webui, storage):
    scheduled = stored_run(storage, tags={SCHEDULE_TAG: "nightly_hello", "team": "data & ml"})
    _, html = webui.get(f"/runs/{scheduled.run_id}")
    assert 'data-launched-by="schedule">schedule <a href="/automation/schedule/nightly_hello">nightly_hello</a>' in html
    assert 'href="/runs?tag=team%3Ddata%20%26%20ml"' in html  # a tag is a link to the runs it filters
    got = webui.gql("""query($id: ID!) { run(runId: $id) { launchedBy { kind name } } }""",
                    {"id": scheduled.run_id})["run"]["launchedBy"]
    assert got == {"kind": "schedule", "name": "nightly_hello"}

    sensed = stored_run(storage, tags={SENSOR_TAG: "file_sensor"})
    _, html = webui.get(f"/runs/{sensed.run_id}")
    assert 'data-launched-by="sensor">sensor <a href="/automation/sensor/file_sensor">file_sensor</a>' in html

    # a re-execution keeps its parent's schedule tag: it says what it re-executes
    again = stored_run(storage, tags={SCHEDULE_TAG: "nightly_hello", PARENT_RUN_ID_TAG: scheduled.run_id,
                                      ROOT_RUN_ID_TAG: scheduled.run_id},
                       parent_run_id=scheduled.run_id, root_run_id=scheduled.run_id)
    _, html = webui.get(f"/runs/{again.run_id}")
    assert f're-executing <a href="/runs/{scheduled.run_id}">' in html
    _, html = webui.get(f"/runs/{scheduled.run_id}")
    assert f'data-child="{again.run_id}"' in html

    unknown = stored_run(storage)
    _, html = webui.get(f"/runs/{unknown.run_id}")
    assert 'data-launched-by="unknown">the CLI or the Python API' in html


def test_the_edit_config_link_and_the_terminate_dialog(webui):
    run_id = webui.launch("hello")["run"]["runId"]
    webui.wait_finished(run_id)
    _, html = webui.get(f"/runs/{run_id}")
    assert f'href="/locations/defs_webui/jobs/hello/launchpad?from_run={run_id}"' in html
    assert '<dialog id="terminate-dialog">' in html
    assert 'data-reexecute="selected"' in html


def test_a_read_only_web_ui_shows_the_run_page_without_actions(start_webui):
    ui = start_webui("--read-only")
    inst = Instance.open(home=str(ui.home))
    try:
        run = stored_run(inst.storage, status=RunStatus.STARTED)
        inst.storage.store_events([Event(run_id=run.run_id, event_type=EventType.STEP_START, step_key="greet")])
    finally:
        inst.dispose()
    status, html = ui.get(f"/runs/{run.run_id}")
    assert status == 200 and '<tr data-step="greet"' in html
    for action in ('id="terminate"', "<dialog", "data-select-step", "data-reexecute", "launchpad?from_run"):
        assert action not in html
    assert 'id="timeline"' in html and 'id="event-filters"' in html
