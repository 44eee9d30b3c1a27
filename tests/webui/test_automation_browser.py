"""Schedules & sensors, code locations and status in Chromium (issue 14, items 5, 6 and 10): toggling
a schedule, dry-running sensors and seeing what they would launch, paging a tick history and a new
tick appearing without a reload, and a broken code location shown with its traceback, then fixed
and reloaded. Screenshots of every page state go to test-results/screenshots/ (the ``shot`` fixture).

Needs: Debian's Chromium (Playwright drives it), Python and SQLite; the web UI and its code server
are real processes (definitions: defs_automation.py)."""

from __future__ import annotations

import time

from automation_support import LOCATION, add_ticks, start_automation_ui, storage_of
from playwright.sync_api import expect


def test_toggle_a_schedule_on_its_page_and_in_the_list(start_webui, page, shot):
    ui = start_automation_ui(start_webui)
    page.goto(ui.url + "/automation")
    row = page.locator("tr[data-instigator='kolkata_morning']")
    expect(row.locator("[data-status]")).to_have_text("STOPPED")
    expect(row.locator("[data-next-tick]")).to_contain_text("06:30:00 +05:30 Asia/Kolkata")
    shot(page, "list")
    row.get_by_role("link", name="kolkata_morning").click()
    root = page.locator("#instigator")
    expect(root.locator("h1 [data-status]")).to_have_text("STOPPED")
    expect(page.locator("#next-ticks li")).to_have_count(5)
    expect(page.locator("#next-ticks li").first).to_contain_text("06:30:00 +05:30 Asia/Kolkata")
    root.get_by_role("button", name="Turn on").click()
    expect(root.locator("h1 [data-status]")).to_have_text("RUNNING")
    expect(root.get_by_role("button", name="Turn off")).to_be_visible()
    shot(page, "turned-on")
    page.goto(ui.url + "/automation")
    row = page.locator("tr[data-instigator='kolkata_morning']")
    expect(row.locator("[data-status]")).to_have_text("RUNNING")
    row.get_by_role("button", name="Turn off").click()
    expect(row.locator("[data-status]")).to_have_text("STOPPED")
    page.reload()
    expect(page.locator("tr[data-instigator='kolkata_morning'] [data-status]")).to_have_text("STOPPED")
    assert ui.gql("{ schedules { status } }")["schedules"] == [{"status": "STOPPED"}]


def test_dry_run_sensors_and_see_what_they_would_do(start_webui, page, shot, home):
    ui = start_automation_ui(start_webui)
    page.goto(ui.url + "/automation")
    row = page.locator("tr[data-instigator='new_files']")
    row.get_by_role("button", name="Dry run").click()
    result = page.locator("tr[data-dry-run-for='new_files'] [data-dry-run-result]")
    expect(result.locator("[data-dry-run-outcome='runs']")).to_have_text("It would launch 2 runs:")
    expect(result.locator("tr[data-run-request='file-a.csv']")).to_contain_text("file=a.csv")
    expect(result.locator("tr[data-run-request='file-b.csv']")).to_contain_text('"target": "b.csv"')
    expect(result).to_contain_text("nothing was launched or stored")
    shot(page, "runs")

    page.locator("tr[data-instigator='idle_sensor']").get_by_role("button", name="Dry run").click()
    skip = page.locator("tr[data-dry-run-for='idle_sensor'] [data-dry-run-outcome='skip']")
    expect(skip).to_have_text("It would skip: no new files in the inbox")

    page.goto(ui.url + "/automation/sensor/angry_sensor")
    page.get_by_role("button", name="Dry run").click()
    box = page.locator("#dry-run")
    expect(box.locator("[data-dry-run-outcome='error']")).to_contain_text("the sensor failed on purpose")
    expect(box.locator("pre.traceback")).to_contain_text('raise ValueError("the sensor failed on purpose")')
    shot(page, "error")

    page.goto(ui.url + "/automation/schedule/kolkata_morning")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#dry-run [data-dry-run-outcome='runs']")).to_have_text("It would launch 1 run:")
    expect(page.locator("#dry-run")).to_contain_text("Evaluated for its next tick")
    expect(page.locator("#dry-run time")).to_contain_text("06:30:00 +05:30 Asia/Kolkata")
    shot(page, "schedule")

    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0
    with storage_of(home) as storage:
        assert storage.get_ticks("new_files") == [] and storage.get_instigator_state("new_files") is None


def test_tick_history_pages_and_a_new_tick_appears_live(start_webui, page, shot, home):
    ui = start_automation_ui(start_webui)
    base = time.time() - 10_000
    ticks = add_ticks(home, "idle_sensor", [base + i for i in range(25)], skip_reason="no new files")
    add_ticks(home, "idle_sensor", [base + 30], status="FAILURE",
              error="error in sensor 'idle_sensor': KeyError: 'inbox'\nTraceback (most recent call last):\nKeyError")
    page.goto(ui.url + "/automation/sensor/idle_sensor")
    rows = page.locator("#ticks tbody tr")
    expect(rows).to_have_count(20)
    failed = rows.first
    expect(failed).to_contain_text("KeyError: 'inbox'")
    failed.locator("summary").click()
    expect(failed.locator("pre.traceback")).to_be_visible()
    shot(page, "newest")

    page.locator("#older-ticks").click()
    expect(rows).to_have_count(6)
    expect(page.locator(f"#ticks tr[data-tick-id='{ticks[0].id}']")).to_be_visible()
    expect(page.locator("#older-ticks")).to_have_count(0)
    shot(page, "oldest")
    page.locator("#newer-ticks").click()
    expect(rows).to_have_count(20)
    expect(page.locator(f"#ticks tr[data-tick-id='{ticks[-1].id}']")).to_be_visible()
    expect(page.locator("#newer-ticks")).to_have_count(0)

    [new] = add_ticks(home, "idle_sensor", [time.time()], skip_reason="a brand new tick")
    fresh = page.locator(f"#ticks tr[data-tick-id='{new.id}']")
    expect(fresh).to_contain_text("a brand new tick", timeout=20_000)
    expect(rows.first).to_have_attribute("data-tick-id", str(new.id))
    expect(rows).to_have_count(20)
    shot(page, "live")

    page.goto(ui.url + "/automation")  # the list's last ticks are live too
    [newer] = add_ticks(home, "idle_sensor", [time.time() + 1], skip_reason="seen from the list")
    cell = page.locator("tr[data-instigator='idle_sensor'] [data-ticks]")
    expect(cell.locator(f"[data-tick-id='{newer.id}']")).to_contain_text("seen from the list", timeout=20_000)
    shot(page, "list-live")


def test_a_broken_location_shows_its_traceback_and_reloads(start_webui, page, shot, home, tmp_path):
    marker = tmp_path / "broken"
    ui = start_automation_ui(start_webui, marker=marker)
    ui.gql('mutation { startSensor(name: "idle_sensor") { ok } }')
    marker.write_text("x")
    assert not ui.gql(f'mutation {{ reloadLocation(name: "{LOCATION}") {{ ok }} }}')["reloadLocation"]["ok"]

    page.goto(ui.url + "/jobs")
    section = page.locator(f"section[data-location='{LOCATION}']")
    expect(section.locator("[data-location-status]")).to_have_text("error")
    expect(section.locator("[data-location-error] summary")).to_contain_text("broken on purpose")
    expect(section.locator("pre.traceback")).to_contain_text("RuntimeError")
    shot(page, "jobs-broken")

    page.goto(ui.url + "/automation")
    stale = page.locator("tr[data-instigator='idle_sensor']")
    expect(stale).to_have_attribute("data-stale", "")
    expect(stale.locator("[data-status]")).to_have_text("RUNNING")
    expect(stale.locator("[data-location-problem]")).to_contain_text("broken on purpose")
    shot(page, "automation-broken")

    page.goto(ui.url + "/status")
    row = page.locator(f"#locations tr[data-location='{LOCATION}']")
    expect(row.locator("[data-location-status]")).to_have_text("error")
    expect(row.locator("pre.traceback")).to_contain_text("RuntimeError")
    shot(page, "status-broken")
    marker.unlink()
    row.get_by_role("button", name="Reload").click()
    expect(page.locator(f"#locations tr[data-location='{LOCATION}'] [data-location-status]")).to_have_text(
        "ok", timeout=30_000)
    expect(page.locator(f"#locations tr[data-location='{LOCATION}'] pre.traceback")).to_have_count(0)
    shot(page, "status-reloaded")
    page.goto(ui.url + "/automation")
    expect(page.locator("tr[data-instigator='idle_sensor']")).not_to_have_attribute("data-stale", "")
    expect(page.locator("tr[data-instigator='idle_sensor'] [data-status]")).to_have_text("RUNNING")
