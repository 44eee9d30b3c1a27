"""A run's page lists the plan its run worker stored with it, not the job as its code location
defines it now: after the job changed, and while the location is down, a run still lists its own
steps in plan order with their upstream steps (in_process and multiprocess executors, a re-execution
of selected steps). A run stored without a plan (before runyard kept
plans) falls back to the job's snapshot, and says the plan is unknown when there is none.

Real components: a ``runyard webui`` process over SQLite with its code server for
``defs_plan_change.py``, whose job changes when the test rewrites its mode file and reloads the
location; runs launched through GraphQL and executed by real run workers; the page in Chromium
(Playwright, Debian's chromium) with a screenshot of it."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from runyard import Instance
from runyard.storage.records import Event, EventType, RunRecord, RunStatus
from runyard.tags import LOCATION_TAG
from runyard.testing import wait_until

DEFS = Path(__file__).with_name("defs_plan_change.py")
LOCATION = "defs_plan_change"
PLAN = """query($id: ID!) { run(runId: $id) { status planKnown planSource
  planSteps { stepKey status upstream } } }"""
MULTIPROCESS = {"execution": {"multiprocess": {"max_concurrent": 2}}}
V1 = [("extract", "SUCCESS", []), ("clean", "SUCCESS", ["extract"]), ("count", "SUCCESS", ["extract"]),
      ("publish", "SUCCESS", ["clean", "count"])]


@pytest.fixture
def mode(tmp_path):
    path = tmp_path / "plan-mode"
    path.write_text("v1")
    return path


@pytest.fixture
def ui(start_webui, mode):
    return start_webui("-f", str(DEFS), env={"PLAN_CHANGE_MODE_FILE": str(mode)}, defs=False)


def launch(ui, ops: str | None = None, config: dict | None = None) -> str:
    data = ui.gql("""mutation($ops: String, $cfg: GenericScalar) {
        launchRun(location: "defs_plan_change", jobName: "evolving", ops: $ops, runConfig: $cfg) {
        ok message run { runId } } }""", {"ops": ops, "cfg": config})["launchRun"]
    assert data["ok"], data["message"]
    return data["run"]["runId"]


def switch(ui, mode: Path, version: str) -> dict:
    mode.write_text(version)
    return ui.gql(f'mutation {{ reloadLocation(name: "{LOCATION}") {{ ok status message }} }}')["reloadLocation"]


def steps(ui, run_id: str) -> tuple[dict, list[tuple[str, str, list[str]]]]:
    run = ui.gql(PLAN, {"id": run_id})["run"]
    return run, [(s["stepKey"], s["status"], s["upstream"]) for s in run["planSteps"]]


def listed_rows(ui, run_id: str) -> list[str]:
    status, html = ui.get(f"/runs/{run_id}")
    assert status == 200
    return re.findall(r'<tr data-step="([^"]+)"', html)


def test_a_run_lists_its_own_plan_after_its_job_changed_and_while_its_location_is_down(ui, mode, home):
    full = launch(ui)
    assert ui.wait_finished(full)[0] == "SUCCESS"
    selected = launch(ui, ops="extract,count", config=MULTIPROCESS)
    assert ui.wait_finished(selected)[0] == "SUCCESS"
    again = ui.gql("""mutation($id: ID!) { reexecuteRun(runId: $id, mode: "all", ops: "clean*") {
        ok message run { runId } } }""", {"id": full})["reexecuteRun"]
    assert again["ok"], again["message"]
    again = again["run"]["runId"]
    assert ui.wait_finished(again)[0] == "SUCCESS"
    # a run executed before runyard stored plans: step events only, no plan event
    inst = Instance.open(home=str(home))
    try:
        old = RunRecord(run_id=uuid.uuid4().hex, job_name="evolving", status=RunStatus.SUCCESS,
                        tags={LOCATION_TAG: LOCATION}, start_time=time.time() - 5, end_time=time.time())
        inst.storage.add_run(old, events=[Event(run_id=old.run_id, event_type=kind, step_key="extract", message="")
                                          for kind in (EventType.STEP_START, EventType.STEP_SUCCESS)])
    finally:
        inst.dispose()

    run, listed = steps(ui, full)
    assert (run["planSource"], run["planKnown"], listed) == ("RUN", True, V1)
    run, listed = steps(ui, selected)  # a selection stores the selected steps, upstream within them
    assert run["planSource"] == "RUN" and listed == [("extract", "SUCCESS", []), ("count", "SUCCESS", ["extract"])]
    run, listed = steps(ui, again)  # a re-execution of selected steps: their plan, the rest read from the parent
    assert run["planSource"] == "RUN" and listed == [("clean", "SUCCESS", []), ("publish", "SUCCESS", ["clean"])]
    run, listed = steps(ui, old.run_id)
    assert run["planSource"] == "SNAPSHOT" and [s[0] for s in listed] == ["extract", "clean", "count", "publish"]

    # the job changes to one step: the runs keep their own plans, the plan-less one follows the job
    assert switch(ui, mode, "v2")["ok"]
    wait_until(lambda: steps(ui, old.run_id)[0]["planSource"] == "SNAPSHOT"
               and steps(ui, old.run_id)[1][0][0] == "summarise", timeout=15, what="the new snapshot")
    _, listed = steps(ui, old.run_id)
    assert listed == [("summarise", "NOT_RUN", []), ("extract", "SUCCESS", [])]  # extract: seen in its events
    assert steps(ui, full)[1] == V1
    assert listed_rows(ui, full) == ["extract", "clean", "count", "publish"]
    assert [k for k, _, _ in steps(ui, again)[1]] == ["clean", "publish"]

    # the location is down: the runs still list their plans; the plan-less run's plan is unknown
    reload = switch(ui, mode, "broken")
    assert not reload["ok"] and "down on purpose" in reload["message"]
    wait_until(lambda: not steps(ui, old.run_id)[0]["planKnown"], timeout=15, what="the location to be down")
    run, listed = steps(ui, full)
    assert (run["planSource"], run["planKnown"], listed) == ("RUN", True, V1)
    status, html = ui.get(f"/runs/{full}")
    assert status == 200 and re.findall(r'<tr data-step="([^"]+)"', html) == ["extract", "clean", "count", "publish"]
    assert 'data-plan-source="RUN"' in html and 'data-upstream="clean count"' in html
    assert 'id="plan-note"' not in html
    run, listed = steps(ui, old.run_id)
    assert run["planSource"] == "EVENTS" and listed == [("extract", "SUCCESS", [])]
    status, html = ui.get(f"/runs/{old.run_id}")
    assert status == 200 and 'id="plan-note"' in html and "the plan is unknown" in html


def test_a_queued_run_lists_the_snapshots_plan_until_its_worker_stores_one(ui, home):
    """Before its worker started, a run has no stored plan: the page lists the job's snapshot."""
    inst = Instance.open(home=str(home))
    try:
        queued = RunRecord(run_id=uuid.uuid4().hex, job_name="evolving", status=RunStatus.QUEUED,
                           tags={LOCATION_TAG: LOCATION})
        inst.storage.add_run(queued)
    finally:
        inst.dispose()
    run, listed = steps(ui, queued.run_id)
    assert run["planSource"] == "SNAPSHOT" and [(k, s) for k, s, _ in listed] == [
        ("extract", "PENDING"), ("clean", "PENDING"), ("count", "PENDING"), ("publish", "PENDING")]


def test_the_live_page_in_chromium_keeps_the_runs_plan_while_its_location_is_down(ui, mode, page, shot):
    """In the browser: the page of a running run re-reads its steps through GraphQL as events come
    (static/run.js); with the location down since the run started they are still the run's own."""
    hold = mode.with_name("hold")
    hold.write_text("")
    run_id = launch(ui)
    wait_until(lambda: dict((k, s) for k, s, _ in steps(ui, run_id)[1]).get("extract") == "STARTED", timeout=60,
               what="extract to start")
    assert not switch(ui, mode, "broken")["ok"]  # the worker imported the code already: the run goes on
    page.goto(f"{ui.url}/runs/{run_id}")
    expect(page.locator("#steps tbody tr[data-step='publish'] [data-status]")).to_have_text("PENDING")
    expect(page.locator("#plan-note")).to_have_count(0)
    shot(page, "held")
    hold.unlink()
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    rows = page.locator("#steps tbody tr")
    # the rows run.js drew from the GraphQL answer (the server-rendered ones carry data-attempts)
    expect(page.locator("#steps tbody tr[data-attempts]")).to_have_count(0)
    expect(rows).to_have_count(4)
    assert [rows.nth(i).get_attribute("data-step") for i in range(4)] == [k for k, _, _ in V1]
    expect(page.locator("#steps tbody tr[data-step='publish'] [data-status]")).to_have_text("SUCCESS")
    expect(page.locator("#steps tbody tr[data-step='publish']")).to_have_attribute("data-upstream", "clean count")
    shot(page, "finished")
