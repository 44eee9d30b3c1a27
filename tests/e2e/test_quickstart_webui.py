"""The README's first command ends in ``runyard dev`` on the quickstart: this drives that step as a
newcomer would. ``runyard dev`` (code server, daemon and web UI in one process) runs on a fresh
SQLite home; the quickstart job is launched from its web UI's launchpad API with the example's run
config, followed live, and fills the warehouse; the schedule is turned on from the web UI and the
daemon of the same process sees it. Ctrl-C (SIGINT) stops everything with exit code 0.

Needs: the repository's examples/quickstart, runyard-webui installed, real subprocesses, SQLite.
"""

from __future__ import annotations

import json
import signal
import urllib.request

from test_quickstart import DEFS, JOB, RUN_CONFIG, warehouse_rows

from runyard.testing import read_value_after, wait_until


def _gql(url: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(url + "/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.load(resp)
    assert not body.get("errors"), body["errors"]
    return body["data"]


def test_quickstart_from_the_web_ui_of_runyard_dev(cli, home):
    proc = cli.popen("dev", "-f", DEFS, "--port", "0")
    try:
        url = read_value_after(proc, "web UI: ")
        assert url.startswith("http://")
        launched = _gql(url, """mutation($cfg: String) { launchRun(location: "defs", jobName: "daily_sales_etl",
            runConfigYaml: $cfg) { ok message run { runId } errors { path message } } }""",
                        {"cfg": RUN_CONFIG.read_text()})["launchRun"]
        assert launched["ok"], launched
        run_id = launched["run"]["runId"]
        cursor, types = None, []

        def follow():
            nonlocal cursor
            page = _gql(url, """query($id: ID!, $a: Int) { runEvents(runId: $id, afterId: $a, waitSeconds: 5) {
                cursor runStatus finished events { eventType } } }""", {"id": run_id, "a": cursor})["runEvents"]
            cursor = page["cursor"]
            types.extend(e["eventType"] for e in page["events"])
            return page["runStatus"] if page["finished"] and not page["events"] else None

        assert wait_until(follow, timeout=120, interval=0, what="the quickstart run") == "SUCCESS"
        assert types[0] == "RUN_STARTING" and types[-1] == "RUN_SUCCESS" and types.count("STEP_SUCCESS") == 7
        rows = warehouse_rows(home)
        assert rows and {r[-1] for r in rows} == {run_id}
        with urllib.request.urlopen(f"{url}/runs/{run_id}", timeout=30) as resp:
            page = resp.read().decode()
        assert JOB in page and "RUN_SUCCESS" in page and "revenue" in page
        schedule = _gql(url, """mutation { startSchedule(name: "daily_sales_etl_schedule") {
            ok instigator { status nextTick } } }""")["startSchedule"]
        assert schedule["ok"] and schedule["instigator"]["status"] == "RUNNING"
        listed = cli.json("schedule", "list", "-f", DEFS, "--json")
        assert listed[0]["status"] == "RUNNING"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
