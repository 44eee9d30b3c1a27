"""Schedules & sensors, code locations and status over GraphQL and HTTP (issue 14, items 5-7): tick
history paged both ways, a dry run of a schedule and of a sensor that stores nothing, next ticks in
a schedule's own timezone, a failing location's sensors still listed with its error, the status
page's daemon and location data, and times rendered in the zone of the ``runyard_tz`` cookie.

Needs: nothing beyond Python and SQLite; the web UI, its code server and the daemons are real
processes (definitions: defs_automation.py)."""

from __future__ import annotations

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from automation_support import LOCATION, add_ticks, start_automation_ui, storage_of

from runyard.testing import wait_until

TICKS = """query($n: String!, $limit: Int, $before: Int, $after: Int) { instigator(kind: "sensor", name: $n) {
  tickPage(limit: $limit, before: $before, after: $after) { older newer ticks { id tickTime status skipReason
  error runIds runs { runId status } } } } }"""


def _page(ui, name="idle_sensor", **kw):
    return ui.gql(TICKS, {"n": name, **kw})["instigator"]["tickPage"]


def test_tick_history_pages_both_ways(start_webui, home):
    ui = start_automation_ui(start_webui)
    base = time.time() - 10_000
    ticks = add_ticks(home, "idle_sensor", [base + i for i in range(45)], skip_reason="no new files")
    add_ticks(home, "new_files", [base + 1])  # another sensor's tick never shows up here
    ids = [t.id for t in reversed(ticks)]  # newest first

    first = _page(ui, limit=20)
    assert [t["id"] for t in first["ticks"]] == ids[:20] and first["newer"] is None
    assert first["older"] == ids[19]
    second = _page(ui, limit=20, before=first["older"])
    assert [t["id"] for t in second["ticks"]] == ids[20:40]
    assert second["newer"] == ids[20] and second["older"] == ids[39]
    last = _page(ui, limit=20, before=second["older"])
    assert [t["id"] for t in last["ticks"]] == ids[40:] and last["older"] is None and last["newer"] == ids[40]
    back = _page(ui, limit=20, after=last["newer"])
    assert back == second
    assert _page(ui, limit=20, after=back["newer"]) == first
    assert {t["status"] for t in first["ticks"]} == {"SKIPPED"}
    assert first["ticks"][0]["skipReason"] == "no new files"

    body = ui.gql_raw(TICKS, {"n": "idle_sensor", "before": ids[3], "after": ids[1]})
    assert "give before or after, not both" in body["errors"][0]["message"]

    # the pages: the newest 20 with an "Older" link, then the next ones with "Newer" and "Newest"
    status, html = ui.get("/automation/sensor/idle_sensor")
    assert status == 200 and html.count("data-tick-id=") == 20 and f'data-tick-id="{ids[0]}"' in html
    older = re.search(r'id="older-ticks" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert 'id="newer-ticks"' not in html and 'data-live="true"' in html
    status, html = ui.get(older)
    assert status == 200 and f'data-tick-id="{ids[20]}"' in html and f'data-tick-id="{ids[0]}"' not in html
    assert 'id="newer-ticks"' in html and 'id="newest-ticks"' in html and 'data-live="false"' in html
    assert ui.get("/automation/sensor/idle_sensor?before=latest")[0] == 400
    assert ui.get("/automation/sensor/no_such_sensor")[0] == 404


def test_a_ticks_runs_and_error_are_shown(start_webui, home):
    ui = start_automation_ui(start_webui)
    data = ui.gql("""mutation { launchRun(location: "defs_automation", jobName: "pinger") { ok run { runId } } }""")
    run_id = data["launchRun"]["run"]["runId"]
    now = time.time()
    add_ticks(home, "new_files", [now - 20], status="SUCCESS", run_ids=[run_id], run_keys=["file-a.csv"])
    error = "error in sensor 'new_files': OSError: inbox gone\nTraceback (most recent call last):\n  File x\nOSError"
    add_ticks(home, "new_files", [now - 10], status="FAILURE", error=error)
    ticks = _page(ui, "new_files")["ticks"]
    assert [t["status"] for t in ticks] == ["FAILURE", "SUCCESS"]
    assert ticks[0]["error"] == error
    assert ticks[1]["runIds"] == [run_id] and ticks[1]["runs"][0]["runId"] == run_id
    status, html = ui.get("/automation/sensor/new_files")
    assert status == 200 and f'href="/runs/{run_id}"' in html and "file-a.csv" in html
    assert "OSError: inbox gone" in html and "Traceback (most recent call last)" in html
    status, html = ui.get("/automation")
    assert status == 200 and f'href="/runs/{run_id}"' in html and "inbox gone" in html


def test_dry_run_of_a_sensor_and_a_schedule_launches_and_stores_nothing(start_webui, home):
    ui = start_automation_ui(start_webui)
    dry = """mutation($k: String!, $n: String!) { dryRunInstigator(kind: $k, name: $n) { ok message code
        tickTime skipReason error traceback cursorBefore cursor
        runRequests { jobName runKey runConfig tags { key value } } } }"""
    p = ui.gql(dry, {"k": "sensor", "n": "new_files"})["dryRunInstigator"]
    assert p["ok"] and p["skipReason"] is None and p["error"] is None
    assert [(r["jobName"], r["runKey"], r["runConfig"]["ops"]["ping"]["config"]["target"], r["tags"])
            for r in p["runRequests"]] == [
        ("pinger", "file-a.csv", "a.csv", [{"key": "file", "value": "a.csv"}]),
        ("pinger", "file-b.csv", "b.csv", [{"key": "file", "value": "b.csv"}])]

    p = ui.gql(dry, {"k": "sensor", "n": "idle_sensor"})["dryRunInstigator"]
    assert p["ok"] and p["skipReason"] == "no new files in the inbox" and p["runRequests"] == []

    p = ui.gql(dry, {"k": "sensor", "n": "angry_sensor"})["dryRunInstigator"]
    assert p["ok"] and "the sensor failed on purpose" in p["error"]
    assert 'raise ValueError("the sensor failed on purpose")' in p["traceback"]

    p = ui.gql(dry, {"k": "schedule", "n": "kolkata_morning"})["dryRunInstigator"]
    assert p["ok"] and p["tickTime"] > time.time() and [r["jobName"] for r in p["runRequests"]] == ["pinger"]
    fire = datetime.fromtimestamp(p["tickTime"], ZoneInfo("Asia/Kolkata"))
    assert (fire.hour, fire.minute) == (6, 30)  # its next tick, in its own timezone

    p = ui.gql(dry, {"k": "sensor", "n": "no_such_sensor"})["dryRunInstigator"]
    assert not p["ok"] and p["code"] == "NOT_FOUND" and "no sensor named 'no_such_sensor'" in p["message"]
    p = ui.gql(dry, {"k": "gadget", "n": "x"})["dryRunInstigator"]
    assert not p["ok"] and p["code"] == "INVALID" and "schedule or sensor" in p["message"]

    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0
    with storage_of(home) as storage:
        assert storage.get_ticks("new_files") == [] and storage.get_instigator_state("new_files") is None


def test_dry_run_is_refused_by_a_read_only_web_ui(start_webui, instance_file):
    instance_file("webui:\n  read_only: true\n")
    ui = start_automation_ui(start_webui)
    p = ui.gql("""mutation { dryRunInstigator(kind: "sensor", name: "new_files") { ok code message } }""")
    assert p["dryRunInstigator"]["code"] == "READ_ONLY" and "read-only" in p["dryRunInstigator"]["message"]
    assert "data-dry-run" not in ui.get("/automation")[1]


def test_next_ticks_are_in_the_schedules_own_timezone(start_webui):
    ui = start_automation_ui(start_webui)
    data = ui.gql("""{ instigator(kind: "schedule", name: "kolkata_morning") { executionTimezone cronSchedule
        nextTick nextTicks(limit: 4) } }""")["instigator"]
    assert data["executionTimezone"] == "Asia/Kolkata" and len(data["nextTicks"]) == 4
    zone = ZoneInfo("Asia/Kolkata")
    shown = [datetime.fromtimestamp(t, zone) for t in data["nextTicks"]]
    assert all((d.hour, d.minute, d.second) == (6, 30, 0) for d in shown)
    assert [(b - a).total_seconds() for a, b in zip(shown, shown[1:], strict=False)] == [86400.0] * 3
    assert data["nextTick"] == data["nextTicks"][0] > time.time()
    expected = shown[0].strftime("%Y-%m-%d 06:30:00 +05:30 Asia/Kolkata")
    for path in ("/automation", "/automation/schedule/kolkata_morning"):
        status, html = ui.get(path)
        assert status == 200 and expected in html, path  # whatever zone the page itself is in
    assert ui.gql('{ instigator(kind: "sensor", name: "idle_sensor") { nextTicks } }')["instigator"] == {
        "nextTicks": []}


def test_a_failing_locations_sensors_stay_listed_with_its_error(start_webui, home, tmp_path):
    marker = tmp_path / "broken"
    ui = start_automation_ui(start_webui, marker=marker)
    toggled = ui.gql('mutation { startSensor(name: "new_files") { ok instigator { status } } }')
    assert toggled["startSensor"]["ok"]
    add_ticks(home, "new_files", [time.time() - 5], status="SKIPPED", skip_reason="nothing yet")
    marker.write_text("x")
    reload = ui.gql(f'mutation {{ reloadLocation(name: "{LOCATION}") {{ ok status message }} }}')["reloadLocation"]
    assert not reload["ok"] and "broken on purpose" in reload["message"]

    query = """{ sensors { name status stale location locationStatus locationError locationTraceback
                            ticks { skipReason } } schedules { name stale status } }"""

    def listed(ui):
        data = ui.gql(query)
        return data if data["sensors"] and data["sensors"][0]["stale"] else None

    data = wait_until(lambda: listed(ui), timeout=15, what="the sensors to come from storage")
    # only the one with a stored state (turned on): those never turned on have nothing to show
    [sensor] = data["sensors"]
    assert sensor["name"] == "new_files" and sensor["status"] == "RUNNING" and sensor["location"] == LOCATION
    assert sensor["locationStatus"] == "error" and "broken on purpose" in sensor["locationError"]
    assert "RuntimeError" in sensor["locationTraceback"] and sensor["ticks"] == [{"skipReason": "nothing yet"}]
    assert data["schedules"] == []
    status, html = ui.get("/automation")
    assert status == 200 and 'data-instigator="new_files"' in html and "data-stale" in html
    assert "broken on purpose" in html and "Traceback" in html
    status, html = ui.get("/automation/sensor/new_files")
    assert status == 200 and "broken on purpose" in html and "nothing yet" in html

    # a web UI started while the location is broken knows it from storage alone
    fresh = start_automation_ui(start_webui, marker=marker)
    [sensor] = fresh.gql(query)["sensors"]
    assert sensor["stale"] and sensor["location"] == LOCATION and sensor["status"] == "RUNNING"

    marker.unlink()
    assert ui.gql(f'mutation {{ reloadLocation(name: "{LOCATION}") {{ ok }} }}')["reloadLocation"]["ok"]
    sensors = wait_until(lambda: (s := ui.gql(query)["sensors"]) and not s[0]["stale"] and s, timeout=15,
                         what="the location to load again")
    assert {s["name"]: s["status"] for s in sensors}["new_files"] == "RUNNING" and len(sensors) == 4


def test_status_page_shows_leader_standby_heartbeats_and_location_images(start_webui, cli, procs, tmp_path, home):
    from automation_support import DEFS_AUTOMATION

    (home / "runyard.yaml").write_text(
        "daemon: {heartbeat_interval_seconds: 0.5, schedule_interval_seconds: 0.5, lease_seconds: 30}\n")
    marker = tmp_path / "broken"
    marker.write_text("x")
    ws = tmp_path / "workspace.yaml"
    ws.write_text(f"load_from:\n  - python_file: {DEFS_AUTOMATION}\n    image: etl:2026-11\n")
    ui = start_webui("-w", str(ws), env={"AUTOMATION_BROKEN_MARKER": str(marker)}, defs=False)
    first = procs.add(cli.popen("daemon", "-w", ws, start_new_session=True))
    query = """{ daemonStatus { lease { holder } daemons { daemonId state leader loops { name ageSeconds } } }
                 locations { name status image error traceback } }"""
    data = wait_until(lambda: (d := ui.gql(query))["daemonStatus"]["lease"] and d, timeout=60,
                      what="the first daemon to lead")
    leader = data["daemonStatus"]["lease"]["holder"]
    procs.add(cli.popen("daemon", "-w", ws, start_new_session=True))
    def both_report(d):  # the standby, and the leader's sensor loop (the page lists its heartbeat)
        daemons = d["daemonStatus"]["daemons"]
        return len(daemons) == 2 and any(loop["name"] == "sensors" for x in daemons for loop in x["loops"])

    data = wait_until(lambda: both_report(d := ui.gql(query)) and d, timeout=60,
                      what="the second daemon and the leader's sensor loop to report")
    states = {d["daemonId"]: d["state"] for d in data["daemonStatus"]["daemons"]}
    [standby] = [d for d in states if d != leader]
    assert states == {leader: "leader", standby: "standby"}
    [loc] = data["locations"]
    assert loc["image"] == "etl:2026-11" and loc["status"] == "error" and "RuntimeError" in loc["traceback"]
    status, html = ui.get("/status")
    assert status == 200 and f"Leader: <code>{leader}</code>" in html and f"Standbys: <code>{standby}</code>" in html
    assert 'data-loop="sensors"' in html and "etl:2026-11" in html and "broken on purpose" in html
    assert 'class="traceback"' in html and re.search(r'<td data-age>\d+\.\d s', html)
    status, html = ui.get("/jobs")
    assert status == 200 and "etl:2026-11" in html and "broken on purpose" in html
    assert 'data-reload="defs_automation"' in html
    assert procs.stop(first) == 0


def test_pages_render_times_in_the_cookies_zone(start_webui, home):
    ui = start_automation_ui(start_webui)
    stamp = 1796024071.25  # 2026-11-30 07:34:31.250 UTC
    add_ticks(home, "idle_sensor", [stamp])

    def times(cookie: str | None) -> tuple[str, list[str]]:
        headers = {"Cookie": f"runyard_tz={cookie}"} if cookie is not None else {}
        status, html = ui.request("/automation/sensor/idle_sensor", headers=headers)
        assert status == 200
        zone = re.search(r'data-zone="([^"]*)" data-zone-source="(\w+)"', html).groups()
        return zone, re.findall(rf'data-ts="{stamp}" data-format="when" title="[^"]*">([^<]+)</time>', html)

    assert times(None) == (("UTC", "default"), ["2026-11-30 07:34:31 +00:00"])
    assert times("Asia/Kolkata") == (("Asia/Kolkata", "chosen"), ["2026-11-30 13:04:31 +05:30"])
    assert times("auto:America/St_Johns") == (("America/St_Johns", "auto"), ["2026-11-30 04:04:31 -03:30"])
    for bad in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "auto:"):
        assert times(bad) == (("UTC", "default"), ["2026-11-30 07:34:31 +00:00"]), bad
