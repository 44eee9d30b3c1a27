"""The runs list in a real browser (issue 14, item 4): filtering by two statuses and a tag through
the page, the URL keeping them across a reload and the back button, the status chips' counts,
selecting runs and bulk-terminating them behind a confirmation, and a bulk delete that refuses the
runs that have not finished. Screenshots of each state go to test-results/screenshots/.

Debian's Chromium through Playwright, a real ``runyard webui`` over SQLite with defs_webui.py's
code server; the finished runs are written into the same storage by this process.
Needs: /usr/bin/chromium (or RUNYARD_TEST_CHROMIUM)."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from runyard.instance.instance import Instance
from runyard.storage.records import RunRecord, RunStatus
from runyard.testing import wait_until

T0 = 1_700_000_000.0


def _seed(webui) -> list[str]:
    """8 finished runs of hello: i % 4 -> SUCCESS, FAILURE, CANCELED, SUCCESS; team a (even) / b (odd)."""
    inst = Instance.open(home=str(webui.home))
    statuses = [RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED, RunStatus.SUCCESS]
    ids = []
    try:
        for i in range(8):
            run_id = str(uuid.uuid4())
            inst.storage.add_run(RunRecord(run_id=run_id, job_name="hello", status=statuses[i % 4],
                                           tags={"team": "b" if i % 2 else "a"}, created_at=T0 + 60 * i,
                                           start_time=T0 + 60 * i, end_time=T0 + 60 * i + 2))
            ids.append(run_id)
    finally:
        inst.storage.dispose()
    return ids


def _shown(page) -> list[str]:
    return page.locator("#runs tbody tr[data-run-id]").evaluate_all("rows => rows.map(r => r.dataset.runId)")


def test_filter_by_two_statuses_and_a_tag_kept_in_the_url(webui, page, shot):
    ids = _seed(webui)
    page.goto(webui.url + "/runs")
    expect(page.locator("#status-chips [data-chip='SUCCESS'] .n")).to_have_text("4")
    expect(page.locator("#status-chips [data-chip='FAILURE'] .n")).to_have_text("2")
    expect(page.locator("#status-chips [data-chip='CANCELED'] .n")).to_have_text("2")
    shot(page, "all")
    page.locator("#status-chips [data-chip='FAILURE']").click()
    page.wait_for_url(re.compile(r"status=FAILURE"))
    page.locator("#status-chips [data-chip='CANCELED']").click()
    page.wait_for_url(re.compile(r"status=FAILURE&status=CANCELED"))
    assert sorted(_shown(page)) == sorted(ids[i] for i in (1, 2, 5, 6))
    shot(page, "two-statuses")
    page.locator("#run-filters input[name=tag]").first.fill("team=b")
    page.locator("#apply-filters").click()
    page.wait_for_url(re.compile(r"tag=team%3Db"))
    assert "status=FAILURE" in page.url and "status=CANCELED" in page.url
    assert _shown(page) == [ids[5], ids[1]]
    expect(page.locator("#run-count")).to_have_text("2")
    # the chips now count team b's runs only
    expect(page.locator("#status-chips [data-chip='SUCCESS'] .n")).to_have_text("2")
    shot(page, "two-statuses-and-a-tag")
    url = page.url
    page.reload()
    assert page.url == url and _shown(page) == [ids[5], ids[1]]
    expect(page.locator("#active-filters [data-filter-tag='team=b']")).to_be_visible()
    # back goes to the two statuses without the tag
    page.go_back()
    page.wait_for_url(re.compile(r"status=CANCELED$"))
    assert sorted(_shown(page)) == sorted(ids[i] for i in (1, 2, 5, 6))
    # a tag in a row opens the list filtered by it alone
    page.goto(webui.url + "/runs")
    page.locator(f"#runs tr[data-run-id='{ids[0]}'] a.tag").click()
    page.wait_for_url(re.compile(r"/runs\?tag=team%3Da$"))
    assert sorted(_shown(page)) == sorted(ids[i] for i in (0, 2, 4, 6))
    shot(page, "tag-clicked")


def test_bulk_terminate_with_confirmation(webui, page, shot):
    ids = [webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 60}}}})["run"]["runId"] for _ in range(2)]
    page.goto(webui.url + "/runs")
    for run_id in ids:
        expect(page.locator(f"#runs tr[data-run-id='{run_id}'] [data-status]")).to_have_text("STARTED",
                                                                                           timeout=30_000)
    for run_id in ids:
        page.locator(f"#runs tr[data-run-id='{run_id}'] [data-select]").check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    shot(page, "selected")
    page.locator("[data-bulk='terminate']").click()
    dialog = page.locator("#bulk-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#bulk-title")).to_have_text("Terminate 2 runs?")
    expect(dialog).to_contain_text("CANCELING now, CANCELED once its worker has stopped")
    shot(page, "confirm-terminate")
    # cancel does nothing
    dialog.locator("#bulk-cancel").click()
    expect(dialog).to_be_hidden()
    inst = Instance.open(home=str(webui.home))
    try:
        assert all(inst.storage.get_run(r).status == RunStatus.STARTED for r in ids)
        page.locator("[data-bulk='terminate']").click()
        dialog.locator("#bulk-confirm").click()
        expect(page.locator("#bulk-results")).to_contain_text("2 of 2 run(s) terminated.")
        for run_id in ids:  # the list follows the runs to CANCELED by itself
            expect(page.locator(f"#runs tr[data-run-id='{run_id}'] [data-status]")).to_have_text("CANCELED",
                                                                                               timeout=30_000)
        wait_until(lambda: all(inst.storage.get_run(r).status == RunStatus.CANCELED for r in ids), 30,
                   what="the runs to be CANCELED in storage")
    finally:
        inst.storage.dispose()
    expect(page.locator("#status-chips [data-chip='CANCELED'] .n")).to_have_text("2")
    shot(page, "terminated")


def test_bulk_delete_refuses_unfinished_runs(webui, page, shot):
    ids = _seed(webui)
    running = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 60}}}})["run"]["runId"]
    page.goto(webui.url + "/runs")
    expect(page.locator(f"#runs tr[data-run-id='{running}']")).to_be_visible()
    for run_id in (running, ids[7], ids[6]):
        page.locator(f"#runs tr[data-run-id='{run_id}'] [data-select]").check()
    page.locator("[data-bulk='delete']").click()
    expect(page.locator("#bulk-title")).to_have_text("Delete 3 runs?")
    expect(page.locator("#bulk-dialog")).to_contain_text("Runs that have not finished cannot be deleted")
    shot(page, "confirm-delete")
    page.locator("#bulk-confirm").click()
    results = page.locator("#bulk-results")
    expect(results).to_contain_text("2 of 3 run(s) deleted.")
    expect(results.locator(f"[data-refused='{running}']")).to_contain_text("terminate it before deleting it")
    expect(page.locator(f"#runs tr[data-run-id='{ids[7]}']")).to_have_count(0, timeout=15_000)
    expect(page.locator(f"#runs tr[data-run-id='{running}']")).to_have_count(1)
    shot(page, "delete-refusals")
    webui.gql("mutation($id: ID!) { terminateRun(runId: $id) { ok } }", {"id": running})
    inst = Instance.open(home=str(webui.home))
    try:
        wait_until(lambda: inst.storage.get_run(running).status.is_finished, 30, what="the sleepy run to stop")
    finally:
        inst.storage.dispose()


def test_time_range_pickers_read_and_write_the_pages_zone(webui, browser, shot):
    """The pickers speak the zone chosen in "Times in" (here Asia/Kolkata, +05:30), not the browser's
    (America/New_York): a wall time typed there becomes the right UTC instant in the URL, and a
    reload shows the same wall time back."""
    ids = _seed(webui)
    context = browser.new_context(timezone_id="America/New_York")
    context.add_cookies([{"name": "runyard_tz", "value": "Asia/Kolkata", "url": webui.url}])
    pg = context.new_page()
    try:
        pg.goto(webui.url + "/runs")
        after = pg.locator("[data-time-for='after']")
        after.fill("2023-11-15T03:46:20")  # T0 + 180 s, in +05:30
        with pg.expect_navigation():
            pg.locator("#apply-filters").click()
        assert "after=2023-11-14T22%3A16%3A20Z" in pg.url or "after=2023-11-14T22:16:20Z" in pg.url, pg.url
        expect(pg.locator("[data-time-for='after']")).to_have_value("2023-11-15T03:46:20")
        shown = set(_shown(pg))
        assert set(ids[4:]) <= shown <= set(ids[3:]), (shown, ids)
        shot(pg, "time-range")
    finally:
        context.close()
