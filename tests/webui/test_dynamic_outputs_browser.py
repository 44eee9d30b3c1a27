"""Dynamic fan-out in a real browser (Debian's Chromium through Playwright) against a real ``runyard
webui`` process: the job graph marks the dynamic output, the mapped op and the collect edge; a
finished run's page lists every mapped step (``square[a]``...) in its step list and timeline, and
the step skipped because an optional output was not produced.

Needs: Chromium (/usr/bin/chromium or RUNYARD_TEST_CHROMIUM); the web UI fixtures (SQLite, a code server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

DEFS = Path(__file__).with_name("defs_dynamic.py")
MAPPED = ["square[c]", "square[a]", "square[b]"]


@pytest.fixture
def dynamic_webui(start_webui):
    return start_webui("-f", str(DEFS), defs=False)


def test_the_graph_marks_fan_out_and_a_run_lists_its_mapped_steps(dynamic_webui, page, shot):
    webui = dynamic_webui
    page.goto(webui.url + "/locations/defs_dynamic/jobs/fanned")
    page.wait_for_selector("#op-graph-svg .op-node")
    expect(page.locator("#op-graph-svg .op-node.mapped")).to_have_count(1)
    expect(page.locator("#op-graph-svg .op-node.mapped")).to_have_attribute("data-op", "square")
    expect(page.locator("#op-graph-svg .port.out.dynamic")).to_have_count(1)
    expect(page.locator("#op-graph-svg path.edge.mapped")).to_have_count(1)
    expect(page.locator("#op-graph-svg path.edge.collect[data-to='sizes']")).to_have_count(1)
    shot(page, "dynamic-graph")

    data = webui.gql("""mutation { launchRun(location: "defs_dynamic", jobName: "fanned") {
        ok message run { runId } } }""")["launchRun"]
    assert data["ok"], data
    run_id = data["run"]["runId"]
    status, _ = webui.wait_finished(run_id)
    assert status == "SUCCESS"
    page.goto(f"{webui.url}/runs/{run_id}")
    timeline = page.locator("#timeline svg")
    expect(timeline.locator("g.row")).to_have_count(6)
    rows = timeline.locator("g.row").evaluate_all("rs => rs.map(r => r.dataset.step)")
    assert rows == ["split", *MAPPED, "sizes", "on_big"]
    for key in MAPPED:
        expect(timeline.locator(f"g.row[data-step='{key}'] rect.bar.outcome-success")).to_have_count(1)
    shot(page, "dynamic-run")
    page.locator("#steps").get_by_role("button", name="square[a]").click()
    expect(page.locator("#event-filters select[name='step']")).to_have_value("square[a]")
