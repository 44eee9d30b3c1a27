"""The GraphQL API of a real ``runyard webui`` process over SQLite, with a real code server and real
run workers: reading definitions, launching, following, terminating, toggling, and refusing bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from runyard import Instance
from runyard.testing import pid_gone, wait_until

LOCATION = "defs_webui"
DEFS = Path(__file__).with_name("defs_webui.py")


def test_locations_jobs_and_instance_come_from_the_code_server(webui):
    data = webui.gql("""{ instance { storage runCoordinator runLauncher readOnly }
        locations { name status error jobs { name description executor
                                             ops { name upstream inputs { name upstream } } } } }""")
    assert data["instance"] == {"storage": data["instance"]["storage"], "runCoordinator": "default",
                                "runLauncher": "process", "readOnly": False}
    assert data["instance"]["storage"].startswith("sqlite:///")
    [loc] = data["locations"]
    assert (loc["name"], loc["status"], loc["error"]) == (LOCATION, "ok", None)
    jobs = {j["name"]: j for j in loc["jobs"]}
    assert sorted(jobs) == ["broken", "gated", "hello", "ingest_csv", "op_graph", "paced", "pipeline", "sleepy",
                            "wide_graph"]
    hello = jobs["hello"]
    assert hello["description"] == "Greets, then shouts the greeting."
    assert [op["name"] for op in hello["ops"]] == ["greet", "shout"]
    assert hello["ops"][1]["upstream"] == ["greet"]
    assert hello["ops"][1]["inputs"] == [{"name": "text", "upstream": ["greet.result"]}]
    job = webui.gql("""{ job(location: "defs_webui", name: "hello") { name ops { name configSchema } } }""")["job"]
    assert job["ops"][0]["configSchema"]["properties"]["name"]["default"] == "world"
    assert webui.gql("""{ job(location: "defs_webui", name: "nope") { name } }""")["job"] is None


def test_launch_follows_the_run_to_success_and_stores_everything(webui):
    result = webui.launch("hello", {"ops": {"greet": {"config": {"name": "yard", "times": 2}}}},
                          tags=[{"key": "team", "value": "data"}])
    assert result["ok"] and result["errors"] == [], result
    run_id = result["run"]["runId"]
    status, events = webui.wait_finished(run_id)
    assert status == "SUCCESS"
    types = [e["eventType"] for e in events]
    assert types[0] == "RUN_STARTING" and types[-1] == "RUN_SUCCESS"
    assert [e["stepKey"] for e in events if e["eventType"] == "STEP_SUCCESS"] == ["greet", "shout"]
    assert any(e["message"] == "hello yard" for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    run = webui.gql("""query($id: ID!) { run(runId: $id) { jobName status location tags { key value }
        runConfig canTerminate duration steps { stepKey status attempts } } }""", {"id": run_id})["run"]
    assert run["status"] == "SUCCESS" and run["location"] == LOCATION and not run["canTerminate"]
    assert {"key": "team", "value": "data"} in run["tags"]
    assert run["runConfig"] == {"ops": {"greet": {"config": {"name": "yard", "times": 2}}}}
    assert [(s["stepKey"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("greet", "SUCCESS", 1), ("shout", "SUCCESS", 1)]
    # what the web UI reports is what storage holds
    inst = Instance.open(home=str(webui.home))
    try:
        assert str(inst.get_run(run_id).status) == "SUCCESS"
        assert len(inst.storage.get_events(run_id)) == len(events)
    finally:
        inst.dispose()
    page = webui.gql("""{ runs(limit: 10) { count cursor runs { runId status } } }""")["runs"]
    assert page["count"] == 1 and page["cursor"] is None and page["runs"][0]["runId"] == run_id


def test_runs_filters_and_pages(webui):
    ids = []
    for name in ("a", "b", "c"):
        r = webui.launch("hello", {"ops": {"greet": {"config": {"name": name}}}}, tags=[{"key": "n", "value": name}])
        ids.append(r["run"]["runId"])
    broken = webui.launch("broken")["run"]["runId"]
    for rid in ids + [broken]:
        webui.wait_finished(rid)
    first = webui.gql("""{ runs(limit: 2) { count cursor runs { runId } } }""")["runs"]
    assert first["count"] == 4 and len(first["runs"]) == 2 and first["cursor"]
    rest = webui.gql("""query($c: String) { runs(limit: 5, cursor: $c) { cursor runs { runId } } }""",
                     {"c": first["cursor"]})["runs"]
    assert [r["runId"] for r in first["runs"] + rest["runs"]] == [broken, *reversed(ids)]
    assert rest["cursor"] is None
    failed = webui.gql("""{ runs(statuses: ["FAILURE"]) { count runs { runId jobName } } }""")["runs"]
    assert failed["runs"] == [{"runId": broken, "jobName": "broken"}]
    tagged = webui.gql("""{ runs(tags: [{key: "n", value: "b"}]) { runs { runId } } }""")["runs"]["runs"]
    assert tagged == [{"runId": ids[1]}]
    by_job = webui.gql("""{ runs(jobName: "hello") { count } }""")["runs"]["count"]
    assert by_job == 3
    bad = webui.gql_raw("""{ runs(statuses: ["DONE"]) { count } }""")
    assert "unknown run status" in bad["errors"][0]["message"]


def test_failing_op_fails_the_run_with_the_error_and_skips_downstream(webui):
    run_id = webui.launch("broken")["run"]["runId"]
    status, events = webui.wait_finished(run_id)
    assert status == "FAILURE"
    [failure] = [e for e in events if e["eventType"] == "STEP_FAILURE"]
    assert failure["stepKey"] == "explode"
    assert "the op exploded on purpose" in failure["data"]["error"]
    assert failure["data"]["error_class"] == "ValueError" and "raise ValueError" in failure["data"]["traceback"]
    assert [e["stepKey"] for e in events if e["eventType"] == "STEP_SKIPPED"] == ["after"]


def test_invalid_run_config_is_refused_with_key_paths_and_nothing_stored(webui):
    result = webui.launch("hello", {"ops": {"greet": {"config": {"times": "many", "colour": "red"}}}})
    assert not result["ok"] and result["code"] == "INVALID" and result["run"] is None
    paths = sorted(e["path"] for e in result["errors"])
    assert paths == ["ops.greet.config.colour", "ops.greet.config.times"], result
    bad_yaml = webui.gql("""mutation { launchRun(location: "defs_webui", jobName: "hello",
        runConfigYaml: "ops:\\n  greet: [unclosed") { ok code message errors { path } } }""")["launchRun"]
    assert not bad_yaml["ok"] and bad_yaml["code"] == "INVALID" and bad_yaml["errors"] == []
    assert "not valid YAML" in bad_yaml["message"] and "line 2" in bad_yaml["message"]
    not_a_mapping = webui.gql("""mutation { launchRun(location: "defs_webui", jobName: "hello",
        runConfigYaml: "- a list") { ok errors { message } } }""")["launchRun"]
    assert not not_a_mapping["ok"] and "mapping" in not_a_mapping["errors"][0]["message"]
    unknown_job = webui.launch("nope")
    assert unknown_job["code"] == "NOT_FOUND"
    assert "jobs: broken, gated, hello, ingest_csv, op_graph" in unknown_job["message"]
    bad_selection = webui.launch("hello", ops="nonexistent")
    assert not bad_selection["ok"] and bad_selection["run"] is None
    unknown_location = webui.gql("""mutation { launchRun(location: "elsewhere", jobName: "hello") {
        ok code message } }""")["launchRun"]
    assert unknown_location["code"] == "NOT_FOUND" and "locations: defs_webui" in unknown_location["message"]
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_malformed_graphql_is_an_error_not_a_crash(webui):
    body = webui.gql_raw("{ runs { nosuchfield } }")
    assert "nosuchfield" in body["errors"][0]["message"]
    status, text = webui.request("/graphql", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and text
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0  # still serving


def test_terminate_stops_the_worker_and_the_run_ends_canceled(webui):
    run_id = webui.launch("sleepy")["run"]["runId"]
    inst = Instance.open(home=str(webui.home))
    try:
        wait_until(lambda: any(e.message == "napping" for e in inst.storage.get_events(run_id)),
                   timeout=30, what="the op to start")
        pid = inst.get_run(run_id).launcher_info["pid"]
        result = webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok message run { status } } }""",
                           {"id": run_id})["terminateRun"]
        assert result["ok"] and result["run"]["status"] in ("CANCELING", "CANCELED")
        status, _ = webui.wait_finished(run_id)
        assert status == "CANCELED"
        wait_until(lambda: pid_gone(pid), timeout=15, what=f"worker {pid} to exit")
    finally:
        inst.dispose()
    again = webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok message } }""", {"id": run_id})
    assert not again["terminateRun"]["ok"] and "already finished (CANCELED)" in again["terminateRun"]["message"]
    missing = webui.gql("""mutation { terminateRun(runId: "nope") { ok code } }""")["terminateRun"]
    assert missing == {"ok": False, "code": "NOT_FOUND"}


def test_delete_refuses_a_running_run_and_deletes_a_finished_one(webui):
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 30}}}})["run"]["runId"]
    refused = webui.gql("""mutation($id: ID!) { deleteRun(runId: $id) { ok message } }""", {"id": run_id})
    assert not refused["deleteRun"]["ok"] and "terminate it" in refused["deleteRun"]["message"]
    webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok } }""", {"id": run_id})
    webui.wait_finished(run_id)
    done = webui.gql("""mutation($id: ID!) { deleteRun(runId: $id) { ok } }""", {"id": run_id})
    assert done["deleteRun"]["ok"]
    assert webui.gql("""query($id: ID!) { run(runId: $id) { runId } }""", {"id": run_id})["run"] is None


def test_schedules_and_sensors_toggle_in_storage(webui, cli):
    data = webui.gql("""{ schedules { name kind status jobName cronSchedule nextTick ticks { status } }
        sensors { name status minimumIntervalSeconds } }""")
    [sched] = data["schedules"]
    assert (sched["name"], sched["status"], sched["jobName"], sched["cronSchedule"]) == (
        "nightly_hello", "STOPPED", "hello", "0 3 * * *")
    assert sched["nextTick"] > time.time() and sched["ticks"] == []
    assert data["sensors"] == [{"name": "file_sensor", "status": "STOPPED", "minimumIntervalSeconds": 30.0}]
    on = webui.gql("""mutation { startSchedule(name: "nightly_hello") { ok instigator { status } } }""")
    assert on["startSchedule"] == {"ok": True, "instigator": {"status": "RUNNING"}}
    webui.gql("""mutation { startSensor(name: "file_sensor") { ok } }""")
    # the CLI (another process, same storage) sees the change
    listed = cli.json("schedule", "list", "-f", str(DEFS), "--json")
    assert listed[0]["status"] == "RUNNING"
    off = webui.gql("""mutation { stopSensor(name: "file_sensor") { ok instigator { status } } }""")
    assert off["stopSensor"]["instigator"]["status"] == "STOPPED"
    unknown = webui.gql("""mutation { startSchedule(name: "nope") { ok code message } }""")["startSchedule"]
    assert unknown["code"] == "NOT_FOUND"


def test_read_only_refuses_every_mutation(start_webui):
    ui = start_webui("--read-only")
    assert ui.gql("{ instance { readOnly } }")["instance"]["readOnly"] is True
    launch = ui.launch("hello")
    assert launch["code"] == "READ_ONLY" and launch["run"] is None
    toggle = ui.gql("""mutation { startSchedule(name: "nightly_hello") { ok code } }""")["startSchedule"]
    assert toggle == {"ok": False, "code": "READ_ONLY"}
    assert ui.gql("{ runs { count } schedules { status } }") == {"runs": {"count": 0},
                                                                "schedules": [{"status": "STOPPED"}]}


def test_two_replicas_share_one_instance(start_webui):
    a, b = start_webui(), start_webui()
    run_id = a.launch("hello")["run"]["runId"]
    status, _ = b.wait_finished(run_id)
    assert status == "SUCCESS"
    b.gql("""mutation { startSchedule(name: "nightly_hello") { ok } }""")
    assert a.gql("{ schedules { status } }")["schedules"] == [{"status": "RUNNING"}]


def test_long_poll_waits_for_the_next_event_then_answers(webui):
    run_id = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 1.5}}}})["run"]["runId"]
    inst = Instance.open(home=str(webui.home))
    try:
        wait_until(lambda: any(e.message == "napping" for e in inst.storage.get_events(run_id)), timeout=30,
                   what="the nap to start")
        cursor = inst.storage.get_events(run_id)[-1].id
    finally:
        inst.dispose()
    t0 = time.monotonic()
    page = webui.gql("""query($id: ID!, $a: Int) { runEvents(runId: $id, afterId: $a, waitSeconds: 20) {
        events { eventType stepKey } } }""", {"id": run_id, "a": cursor})["runEvents"]
    waited = time.monotonic() - t0
    assert page["events"], "a long poll answered with nothing before the run moved on"
    assert waited < 15, f"the long poll did not wake on the new event ({waited:.1f}s)"
    webui.wait_finished(run_id)
    assert os.path.isdir(webui.home)


def test_cross_site_shapes_of_a_mutation_are_refused(webui):
    """A page on another site can send a form post or a GET with the user's credentials, but not a
    JSON POST (that needs a CORS preflight, which the web UI never grants): only JSON may mutate."""
    from urllib.parse import quote, urlencode

    mutation = 'mutation { startSchedule(name: "nightly_hello") { ok } }'
    status, text = webui.request("/graphql", urlencode({"query": mutation}).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert status >= 400, text
    status, text = webui.request("/graphql", json.dumps({"query": mutation}).encode(), {"Content-Type": "text/plain"})
    assert status >= 400, text
    status, text = webui.request("/graphql?query=" + quote(mutation))
    assert status >= 400 and "not allowed" in text
    assert webui.gql("{ schedules { status } }")["schedules"] == [{"status": "STOPPED"}]


REEXECUTE = """mutation($id: ID!, $mode: String, $ops: String) { reexecuteRun(runId: $id, mode: $mode, ops: $ops) {
    ok code message run { runId } errors { message } } }"""
RUN_LINKS = """query($id: ID!) { run(runId: $id) { status parentRunId rootRunId stepKeysToExecute
    tags { key value } steps { stepKey status } } }"""


def test_reexecute_from_failure_runs_only_what_failed_and_reuses_outputs(webui, tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("fail")
    config = {"ops": {"check": {"config": {"fail_marker": str(marker)}}}}
    parent = webui.launch("pipeline", config)["run"]["runId"]
    assert webui.wait_finished(parent)[0] == "FAILURE"
    marker.unlink()
    result = webui.gql(REEXECUTE, {"id": parent, "mode": "from_failure"})["reexecuteRun"]
    assert result["ok"], result
    child = result["run"]["runId"]
    status, events = webui.wait_finished(child)
    assert status == "SUCCESS"
    assert any(e["message"] == "checked 42" for e in events)  # make's output, read from the parent
    run = webui.gql(RUN_LINKS, {"id": child})["run"]
    assert (run["parentRunId"], run["rootRunId"], run["stepKeysToExecute"]) == (parent, parent, ["check"])
    assert [s["stepKey"] for s in run["steps"]] == ["check"]
    assert {"key": "runyard/parent_run_id", "value": parent} in run["tags"]
    # a re-execution of the re-execution keeps the root; an op selection reads outputs up the chain
    again = webui.gql(REEXECUTE, {"id": child, "mode": "all", "ops": "check"})["reexecuteRun"]
    assert again["ok"], again
    grandchild = again["run"]["runId"]
    assert webui.wait_finished(grandchild)[0] == "SUCCESS"
    run = webui.gql(RUN_LINKS, {"id": grandchild})["run"]
    assert (run["parentRunId"], run["rootRunId"]) == (child, parent)
    everything = webui.gql(REEXECUTE, {"id": parent, "mode": "all"})["reexecuteRun"]
    assert everything["ok"] and webui.wait_finished(everything["run"]["runId"])[0] == "SUCCESS"


def test_reexecute_refusals_say_why_and_store_nothing(webui):
    ok_run = webui.launch("hello")["run"]["runId"]
    webui.wait_finished(ok_run)
    busy = webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 30}}}})["run"]["runId"]
    before = webui.gql("{ runs { count } }")["runs"]["count"]
    cases = [
        ({"id": ok_run, "mode": "from_failure"}, "nothing to re-execute from failure"),
        ({"id": ok_run, "mode": "sideways"}, "unknown re-execution mode"),
        ({"id": ok_run, "mode": "from_failure", "ops": "shout"}, "cannot also take an op selection"),
        ({"id": ok_run, "mode": "all", "ops": "nosuchop"}, "nosuchop"),
        ({"id": busy, "mode": "all"}, "only a finished run"),
    ]
    for variables, expected in cases:
        result = webui.gql(REEXECUTE, variables)["reexecuteRun"]
        assert not result["ok"] and result["code"] == "INVALID" and expected in result["message"], (variables, result)
    missing = webui.gql(REEXECUTE, {"id": "nope", "mode": "all"})["reexecuteRun"]
    assert missing["code"] == "NOT_FOUND"
    assert webui.gql("{ runs { count } }")["runs"]["count"] == before
    webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok } }""", {"id": busy})
    webui.wait_finished(busy)


STEP_LOGS = """query($id: ID!, $step: String!, $stream: String, $offset: Int, $max: Int) {
    stepLogs(runId: $id, stepKey: $step, stream: $stream, offset: $offset, maxBytes: $max) {
      available data nextOffset finished message } }"""


def test_step_logs_read_captured_output_in_chunks(webui):
    run_id = webui.launch("hello", {"ops": {"greet": {"config": {"name": "logs"}}}})["run"]["runId"]
    webui.wait_finished(run_id)
    out = webui.gql(STEP_LOGS, {"id": run_id, "step": "shout", "stream": "stdout"})["stepLogs"]
    assert out["available"] and out["finished"] and "SHOUTING HELLO LOGS" in out["data"]
    assert out["nextOffset"] == len(out["data"].encode())
    err = webui.gql(STEP_LOGS, {"id": run_id, "step": "shout", "stream": "stderr"})["stepLogs"]
    assert err["available"] and "SHOUTING" not in err["data"]
    # read in 7-byte chunks from the start: the pieces add up to the whole
    pieces, offset = [], 0
    while True:
        chunk = webui.gql(STEP_LOGS, {"id": run_id, "step": "shout", "offset": offset, "max": 7})["stepLogs"]
        pieces.append(chunk["data"])
        offset = chunk["nextOffset"]
        if chunk["finished"] or not chunk["data"]:
            break
    assert "".join(pieces) == out["data"]
    missing = webui.gql(STEP_LOGS, {"id": run_id, "step": "nosuchstep"})["stepLogs"]
    assert not missing["available"] and "no output was captured for step 'nosuchstep'" in missing["message"]
    bad = webui.gql_raw("""{ stepLogs(runId: "x", stepKey: "s", stream: "stdin") { data } }""")
    assert "unknown stream" in bad["errors"][0]["message"] or "no run" in bad["errors"][0]["message"]
    status, html = webui.get(f"/runs/{run_id}/steps/shout/logs")
    assert status == 200 and "SHOUTING HELLO LOGS" in html and 'data-finished="true"' in html
    status, html = webui.get(f"/runs/{run_id}/steps/shout/logs?stream=stdin")
    assert status == 400 and "unknown stream" in html
