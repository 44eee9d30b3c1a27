"""The run page in Chromium (Playwright, Debian's chromium): filtering the event log, the timeline
(click a step to filter, shift-click to select it), pending steps turning to SUCCESS live, loading
older events, re-executing selected steps, terminating through the confirmation dialog and the
tags as links. Every state visited is saved with ``shot``."""

from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import expect

from runyard import Instance
from runyard.storage.records import Event, EventType, RunRecord, RunStatus

PACED = ["warm_up", "slow_step", "flaky", "wrap_up"]


def finished_paced(webui, seconds: float = 0.2, **kwargs) -> str:
    run_id = webui.launch("paced", {"ops": {"slow_step": {"config": {"seconds": seconds}}}}, **kwargs)["run"]["runId"]
    assert webui.wait_finished(run_id)[0] == "SUCCESS"
    return run_id


def visible_rows(page):
    return page.locator("#events tbody tr:visible")


def test_filter_the_event_log_by_level_step_type_and_text(webui, page, shot):
    run_id = finished_paced(webui)
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS")
    total = page.locator("#events tbody tr").count()
    shot(page, "unfiltered")

    filters = page.locator("#event-filters")
    filters.get_by_label("Level").select_option("WARNING")
    expect(visible_rows(page)).to_have_count(page.locator("#events tbody tr[data-level='WARNING']").count()
                                             + page.locator("#events tbody tr[data-level='ERROR']").count())
    expect(visible_rows(page).first).to_contain_text("slow step done")
    assert "level=WARNING" in page.url
    shot(page, "level-warning")

    filters.get_by_label("Level").select_option("")
    filters.locator("select[name='step']").select_option("flaky")
    rows = visible_rows(page)
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.step)")) == {"flaky"}
    filters.locator("select[name='type']").select_option("STEP_UP_FOR_RETRY")
    expect(visible_rows(page)).to_have_count(1)
    expect(visible_rows(page)).to_contain_text("flaky fails its first attempt")
    shot(page, "step-and-type")

    # the filters are in the URL: a reload (or a shared link) keeps them
    page.reload()
    expect(page.locator("#event-filters select[name='type']")).to_have_value("STEP_UP_FOR_RETRY")
    expect(visible_rows(page)).to_have_count(1)

    page.locator("#clear-filters").click()
    expect(visible_rows(page)).to_have_count(total)
    filters.get_by_label("Text").fill("passed on its RETRY")
    expect(visible_rows(page)).to_have_count(1)
    expect(visible_rows(page)).to_contain_text("flaky passed on its retry")
    assert "q=passed" in page.url
    filters.get_by_label("Text").fill("no such text anywhere")
    expect(page.locator("#no-events-match")).to_be_visible()
    shot(page, "no-match")


def test_click_a_step_in_the_timeline_to_filter_the_log_and_see_its_output(webui, page, shot):
    run_id = finished_paced(webui)
    page.goto(f"{webui.url}/runs/{run_id}")
    timeline = page.locator("#timeline svg")
    expect(timeline.locator("g.row")).to_have_count(4)
    # the retried step: two bars, the first one a retry
    bars = timeline.locator("g.row[data-step='flaky'] rect.bar")
    expect(bars).to_have_count(2)
    classes = bars.evaluate_all("bs => bs.map(b => b.getAttribute('class'))")
    assert classes == ["bar outcome-retry", "bar outcome-success"]
    expect(timeline.locator(".axis text").first).to_be_visible()
    shot(page, "timeline")

    timeline.locator("g.row[data-step='wrap_up']").click()
    expect(page.locator("#event-filters select[name='step']")).to_have_value("wrap_up")
    assert set(visible_rows(page).evaluate_all("rs => rs.map(r => r.dataset.step)")) == {"wrap_up"}
    expect(timeline.locator("g.row.focused")).to_have_attribute("data-step", "wrap_up")
    output = page.locator("#step-output")
    expect(output).to_be_visible()
    expect(output.locator("#step-output-text")).to_contain_text("wrapped up 3")
    expect(output.locator("[data-output-state]")).to_have_text("finished")
    shot(page, "step-focused-stdout")
    output.get_by_role("tab", name="stderr").click()
    expect(output.locator("#step-output-text")).not_to_contain_text("wrapped up")
    shot(page, "step-focused-stderr")

    timeline.locator("g.row[data-step='wrap_up']").click()  # again: the filter is removed
    expect(page.locator("#event-filters select[name='step']")).to_have_value("")
    expect(output).to_be_hidden()
    assert len(set(visible_rows(page).evaluate_all("rs => rs.map(r => r.dataset.step)"))) > 2

    page.locator("#steps").get_by_role("button", name="flaky").click()  # the step list does the same
    expect(page.locator("#event-filters select[name='step']")).to_have_value("flaky")


def test_pending_steps_turn_to_success_as_the_run_proceeds_live(webui, page, shot):
    run_id = webui.launch("paced", {"ops": {"slow_step": {"config": {"seconds": 5}}}})["run"]["runId"]
    page.goto(f"{webui.url}/runs/{run_id}")
    steps = page.locator("#steps tbody tr")
    expect(steps).to_have_count(4)
    assert steps.evaluate_all("rs => rs.map(r => r.dataset.step)") == PACED
    expect(page.locator("#steps tr[data-step='wrap_up'] [data-status]")).to_have_text("PENDING")
    expect(page.locator("#steps tr[data-step='slow_step'] [data-status]")).to_have_text("STARTED", timeout=30_000)
    expect(page.locator("#timeline g.row[data-step='slow_step'] rect.outcome-running")).to_have_count(1)
    expect(page.locator("#steps tr[data-step='flaky'] [data-status]")).to_have_text("PENDING")
    shot(page, "running")

    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    for key in PACED:
        expect(page.locator(f"#steps tr[data-step='{key}'] [data-status]")).to_have_text("SUCCESS")
    expect(page.locator("#timeline rect.outcome-running")).to_have_count(0)
    expect(page.locator("#steps tr[data-step='flaky'] td").nth(3)).to_have_text("2")  # attempts
    expect(page.locator("#events")).to_contain_text("RUN_SUCCESS")
    duration = page.locator("[data-duration]").inner_text()
    assert re.fullmatch(r"\d+\.\d\d s", duration) and float(duration.split()[0]) >= 5
    shot(page, "finished")


def test_load_older_events_up_to_the_first(webui, page, shot):
    inst = Instance.open(home=str(webui.home))
    try:
        run = inst.storage.add_run(RunRecord(run_id=uuid.uuid4().hex, job_name="hello", status=RunStatus.SUCCESS,
                                             start_time=time.time() - 10, end_time=time.time()))
        inst.storage.store_events([Event(run_id=run.run_id, event_type=EventType.LOG, message=f"line {i}",
                                         level="ERROR" if i == 3 else "INFO") for i in range(1200)])
    finally:
        inst.dispose()
    page.goto(f"{webui.url}/runs/{run.run_id}")
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(500)
    expect(rows.first).to_contain_text("line 700")
    page.locator("#event-filters").get_by_label("Level").select_option("ERROR")
    expect(visible_rows(page)).to_have_count(0)
    shot(page, "newest-500")
    page.get_by_role("button", name="Load older events").click()
    expect(rows).to_have_count(1000)
    page.get_by_role("button", name="Load older events").click()
    expect(rows).to_have_count(1200)
    expect(page.locator("#older")).to_be_hidden()
    expect(rows.first).to_contain_text("line 0")
    expect(visible_rows(page)).to_have_count(1)  # the filter applies to older events as they come
    expect(visible_rows(page)).to_contain_text("line 3")
    shot(page, "all-loaded")


def test_reexecute_selected_steps(webui, page, shot):
    parent = finished_paced(webui)
    page.goto(f"{webui.url}/runs/{parent}")
    button = page.locator("[data-reexecute='selected']")
    expect(button).to_be_disabled()
    page.locator("#steps").get_by_label("select flaky").check()
    page.locator("#timeline g.row[data-step='wrap_up']").click(modifiers=["Shift"])  # shift-click selects
    expect(page.locator("#steps").get_by_label("select wrap_up")).to_be_checked()
    expect(page.locator("#timeline g.row.selected")).to_have_count(2)
    expect(button).to_be_enabled()
    expect(button).to_contain_text("(2)")
    expect(page.locator("#event-filters select[name='step']")).to_have_value("")  # shift-click does not filter
    shot(page, "selected")
    button.click()
    page.wait_for_url(re.compile(r"/runs/(?!" + parent + r")[0-9a-f]{32}$"), timeout=30_000)
    child = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    steps = page.locator("#steps tbody tr")
    expect(steps).to_have_count(2)
    assert steps.evaluate_all("rs => rs.map(r => r.dataset.step)") == ["flaky", "wrap_up"]
    expect(page.locator("[data-parent]")).to_contain_text(parent[:8])
    shot(page, "child")
    run = webui.gql("""query($id: ID!) { run(runId: $id) { stepKeysToExecute parentRunId } }""", {"id": child})["run"]
    assert run == {"stepKeysToExecute": ["flaky", "wrap_up"], "parentRunId": parent}
    page.goto(f"{webui.url}/runs/{parent}")
    expect(page.locator(f"#children [data-child='{child}']")).to_be_visible()
    shot(page, "parent-with-child")


def test_terminate_asks_for_confirmation(webui, page, shot):
    run_id = webui.launch("sleepy")["run"]["runId"]
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("#events")).to_contain_text("napping", timeout=30_000)
    expect(page.locator("#steps tr[data-step='nap'] [data-status]")).to_have_text("STARTED")
    dialog = page.locator("#terminate-dialog")
    page.get_by_role("button", name="Terminate", exact=True).click()
    expect(dialog).to_be_visible()
    shot(page, "dialog")
    dialog.get_by_role("button", name="Keep running").click()
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)  # nothing may happen: give a wrong mutation a moment to show
    assert webui.gql("""query($id: ID!) { run(runId: $id) { status } }""", {"id": run_id})["run"]["status"] == "STARTED"
    expect(page.locator("#run h1 [data-status]")).to_have_text("STARTED")

    page.get_by_role("button", name="Terminate", exact=True).click()
    dialog.get_by_role("button", name="Terminate run").click()
    expect(page.locator("#run h1 [data-status]")).to_have_text("CANCELED", timeout=30_000)
    expect(page.locator("#terminate")).to_be_hidden()
    expect(page.locator("#events")).to_contain_text("RUN_CANCELED")
    expect(page.locator("#steps tr[data-step='nap'] [data-status]")).to_have_text("FAILURE")  # re-read
    expect(page.locator("[data-end] time")).to_be_visible()
    shot(page, "canceled")


def test_tags_open_the_filtered_runs_list(webui, page, shot):
    run_id = webui.launch("hello", tags=[{"key": "team", "value": "web"}])["run"]["runId"]
    webui.wait_finished(run_id)
    page.goto(f"{webui.url}/runs/{run_id}")
    expect(page.locator("[data-launched-by]")).to_contain_text("user")
    expect(page.locator("#edit-config")).to_have_attribute(
        "href", f"/locations/defs_webui/jobs/hello/launchpad?from_run={run_id}")
    shot(page, "tags")
    page.locator("#run .tags").get_by_role("link", name="team=web").click()
    page.wait_for_url(re.compile(r"/runs\?tag=team%3Dweb$"))
    expect(page.locator("h1")).to_be_visible()
    shot(page, "runs-by-tag")
