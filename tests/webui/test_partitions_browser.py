"""Partitions in a real Chromium (Playwright, Debian's chromium) against a real ``runyard webui`` and
code server (docs/partitions.md): the job page's partitions grid coloured by each partition's last
run, selecting a partition and launching it (the run page follows it to SUCCESS and the grid then
shows it), several selected with Ctrl-click, and the launchpad's partition picker filling the run
config from the code location. Every state is saved with ``shot``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

DEFS = Path(__file__).with_name("defs_partitions.py")
JOB_PAGE = "/locations/defs_partitions/jobs/regions"


@pytest.fixture
def ui(start_webui):
    return start_webui("-f", str(DEFS), defs=False)


def test_partition_grid_select_and_launch(ui, page, shot):
    page.goto(ui.url + JOB_PAGE)
    grid = page.locator("#partition-grid")
    expect(grid.locator(".partition-cell")).to_have_count(4)
    expect(grid.locator(".partition-cell[data-status=MISSING]")).to_have_count(4)
    launch = page.locator("#launch-partition")
    expect(launch).to_be_disabled()
    shot(page, "all-missing")

    cell = grid.locator(".partition-cell[data-partition-key=us]")
    cell.click()
    expect(cell).to_have_attribute("aria-selected", "true")
    expect(page.locator("#partition-selection")).to_contain_text("us")
    expect(page.locator("#partition-selection")).to_contain_text("never run")
    expect(page.locator("#partitions")).to_have_attribute("data-selected-keys", "us")
    expect(page.locator("#partition-launchpad")).to_have_attribute("href", re.compile(r"launchpad\?partition=us$"))
    expect(launch).to_be_enabled()
    shot(page, "selected")
    launch.click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"), timeout=30_000)
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    expect(page.locator("body")).to_contain_text("runyard/partition")

    page.goto(ui.url + JOB_PAGE)
    done = grid.locator(".partition-cell[data-partition-key=us]")
    expect(done).to_have_attribute("data-status", "SUCCESS")
    expect(done).to_have_class(re.compile(r"\bstatus-success\b"))
    color = done.evaluate("(c) => getComputedStyle(c).backgroundColor")
    missing_color = grid.locator(".partition-cell[data-partition-key=eu]").evaluate(
        "(c) => getComputedStyle(c).backgroundColor")
    assert color != missing_color
    done.click()
    expect(page.locator("#partition-last-run")).to_have_attribute("href", f"/runs/{run_id}")
    # several partitions: Ctrl-click adds; launching needs exactly one
    grid.locator(".partition-cell[data-partition-key=eu]").click(modifiers=["Control"])
    expect(page.locator("#partitions")).to_have_attribute("data-selected-keys", re.compile(r"^(us,eu|eu,us)$"))
    expect(page.locator("#partition-selection")).to_contain_text("2 partitions selected")
    expect(launch).to_be_disabled()
    shot(page, "two-selected")


def test_launchpad_partition_picker_fills_the_run_config(ui, page, shot):
    page.goto(ui.url + JOB_PAGE + "/launchpad?partition=asia")
    editor = page.locator("#run-config")
    expect(editor).to_have_value(re.compile(r"region: asia"), timeout=15_000)
    expect(page.locator("#validation-status")).to_have_attribute("data-state", "valid", timeout=15_000)
    shot(page, "prefilled")

    picker = page.locator("#partition")
    picker.fill("nowhere")
    picker.dispatch_event("change")
    expect(page.locator("#partition-status")).to_contain_text("no partition 'nowhere'")
    picker.fill("eu")
    picker.dispatch_event("change")
    expect(editor).to_have_value(re.compile(r"region: eu"))
    expect(page.locator("#validation-status")).to_have_attribute("data-state", "valid", timeout=15_000)
    expect(page.locator("#launch")).to_be_enabled()
    shot(page, "picked-eu")
    page.locator("#launch").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"), timeout=30_000)
    expect(page.locator("#run h1 [data-status]")).to_have_text("SUCCESS", timeout=60_000)
    expect(page.locator("body")).to_contain_text("loading eu for partition eu", timeout=30_000)


def test_launchpad_from_a_partition_run_keeps_its_partition(ui, page):
    run = ui.gql("""mutation { launchRun(location: "defs_partitions", jobName: "regions", partitionKey: "us",
                   runConfig: {tags: {note: "first"}}) { ok run { runId } } }""")["launchRun"]
    assert ui.wait_finished(run["run"]["runId"])[0] == "SUCCESS"
    page.goto(ui.url + JOB_PAGE + f"/launchpad?from_run={run['run']['runId']}")
    expect(page.locator("#partition")).to_have_value("us")
    editor = page.locator("#run-config")
    expect(editor).to_have_value(re.compile(r"note: first"))  # the run's config, not replaced
    expect(page.locator("#validation-status")).to_have_attribute("data-state", "valid", timeout=15_000)
    page.locator("#launch").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"), timeout=30_000)
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != run["run"]["runId"]
    tags = {t["key"]: t["value"] for t in ui.gql("query($id: ID!) { run(runId: $id) { tags { key value } } }",
                                                   {"id": new_id})["run"]["tags"]}
    assert tags["runyard/partition"] == "us" and tags["note"] == "first"
