"""Times in Chromium (issue 14, item 7): every time shown with its zone's offset, in one zone per
browser (the browser's by default, or one picked in the selector at the top), the same strings on
the server's render and in what the page's script draws, and the same again after a reload.

The browser's zone is emulated with Playwright's ``timezone_id``. Needs: Debian's Chromium, Python and
SQLite; the web UI and its code server are real processes (definitions: defs_automation.py)."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from automation_support import add_ticks, browser_page, start_automation_ui
from playwright.sync_api import expect

from runyard_webui.times import format_clock, format_when, valid_zone

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns",
         "Australia/Adelaide", "Pacific/Chatham", "Pacific/Kiritimati", "America/Sao_Paulo"]
STAMPS = [0.0, 1796024071.25, 1796024071.9999, 1774746000.0, 1774745999.999,  # around a DST switch (Berlin)
          1762063200.5, 1741503600.0, 1900000000.123, 946684799.999]


def _texts(pg) -> list[str]:
    return pg.locator("time[data-ts]").all_inner_texts()


def test_the_script_formats_times_exactly_as_the_server(start_webui, browser):
    """runyard.when / runyard.clock in the browser and the server's filters agree, string for string,
    for zones with half- and quarter-hour offsets, both hemispheres' DST, and around a DST switch."""
    ui = start_automation_ui(start_webui)
    with browser_page(browser) as pg:
        pg.goto(ui.url + "/automation")
        got = pg.evaluate("""([zones, stamps]) => zones.map(z => stamps.map(
            ts => [runyard.formatWhen(ts, z), runyard.formatClock(ts, z)]))""", [ZONES, STAMPS])
    assert all(valid_zone(z) for z in ZONES)
    expected = [[[format_when(ts, ZoneInfo(z)), format_clock(ts, ZoneInfo(z))] for ts in STAMPS] for z in ZONES]
    assert got == expected
    assert expected[ZONES.index("Asia/Kathmandu")][1][0] == "2026-11-30 13:19:31 +05:45"
    assert expected[ZONES.index("America/St_Johns")][1] == ["2026-11-30 04:04:31 -03:30", "04:04:31.250"]


def test_first_visit_redraws_once_in_the_browsers_zone_and_a_reload_matches(start_webui, browser, home, shot):
    ui = start_automation_ui(start_webui)
    add_ticks(home, "idle_sensor", [1796024071.25, 1796030000.5])
    path = ui.url + "/automation/sensor/idle_sensor"
    with browser_page(browser, timezone_id="America/New_York") as pg:
        # the page as the server sent it: goto's and reload's own responses (a "response" listener's
        # text() may not have run yet when the navigation returns)
        first = pg.goto(path).text()
        # the server had no cookie: it rendered UTC, labelled so; the script stored the browser's zone and redrew
        assert re.search(r'data-ts="1796024071.25"[^>]*>2026-11-30 07:34:31 \+00:00<', first)
        expect(pg.locator("body")).to_have_attribute("data-zone", "America/New_York")
        assert _texts(pg) == ["2026-11-30 04:13:20 -05:00", "2026-11-30 02:34:31 -05:00"]
        cookie = {c["name"]: c["value"] for c in pg.context.cookies()}["runyard_tz"]
        assert cookie == "auto:America/New_York"
        expect(pg.locator("#zone-select")).to_have_value("auto")
        shot(pg, "first-visit")
        again = pg.reload().text()
        assert _texts(pg) == ["2026-11-30 04:13:20 -05:00", "2026-11-30 02:34:31 -05:00"]
        assert 'data-zone="America/New_York" data-zone-source="auto"' in again
        assert ">2026-11-30 02:34:31 -05:00</time>" in again  # the server's own render, not a redraw


def test_the_zone_selector_changes_every_time_and_a_reload_keeps_them(start_webui, browser, home, shot):
    ui = start_automation_ui(start_webui)
    add_ticks(home, "idle_sensor", [1796024071.25])
    with browser_page(browser, timezone_id="Europe/Berlin") as pg:
        pg.goto(ui.url + "/automation/sensor/idle_sensor")
        expect(pg.locator("time[data-ts='1796024071.25']")).to_have_text("2026-11-30 08:34:31 +01:00")
        # the schedule-zone times are not the page's: a schedule's next ticks stay in Asia/Kolkata
        pg.goto(ui.url + "/automation")
        next_tick = pg.locator("[data-next-tick] time").inner_text()
        assert next_tick.endswith("06:30:00 +05:30 Asia/Kolkata")
        ticks = pg.locator("tr[data-instigator='idle_sensor'] [data-ticks] time")
        expect(ticks).to_have_text("2026-11-30 08:34:31 +01:00")
        with pg.expect_navigation():
            pg.locator("#zone-select").select_option("America/St_Johns")
        expect(ticks).to_have_text("2026-11-30 04:04:31 -03:30")
        assert pg.locator("[data-next-tick] time").inner_text() == next_tick
        expect(pg.locator("#zone-select")).to_have_value("America/St_Johns")
        shot(pg, "st-johns")
        before = _texts(pg)
        pg.reload()
        assert _texts(pg) == before
        # another page opens in the picked zone too
        pg.goto(ui.url + "/automation/sensor/idle_sensor")
        expect(pg.locator("time[data-ts='1796024071.25']")).to_have_text("2026-11-30 04:04:31 -03:30")
        # a time the script draws (the live list) is in the same zone as the server's
        drawn = pg.evaluate("() => runyard.timeEl(1796024071.25).textContent")
        assert drawn == "2026-11-30 04:04:31 -03:30"
        with pg.expect_navigation():
            pg.locator("#zone-select").select_option("auto")
        expect(pg.locator("time[data-ts='1796024071.25']")).to_have_text("2026-11-30 08:34:31 +01:00")
        expect(pg.locator("#zone-select")).to_have_value("auto")
        shot(pg, "back-to-browser")
