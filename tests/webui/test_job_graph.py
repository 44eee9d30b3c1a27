"""The job page's data over HTTP and GraphQL, from a real ``runyard webui`` process over SQLite with a
real code server for defs_webui.py: the graph handed to the page as JSON, op selections evaluated
exactly as a launch evaluates them, and each step's recent durations.

Needs: nothing beyond the web UI fixtures (SQLite, a code server, run workers)."""

from __future__ import annotations

import html
import json
import re
import statistics
import sys
from pathlib import Path

import pytest

from runyard.definitions.selection import parse_op_selection

LOCATION = "defs_webui"
SELECTION = """query($job: String!, $s: String!) { job(location: "defs_webui", name: $job) {
    opSelection(selection: $s) { selection ops error launchProblem } } }"""
DURATIONS = """query($runs: Int) { job(location: "defs_webui", name: "op_graph") {
    stepDurations(runs: $runs) { stepKey runs p50 latest latestRunId latestStatus } } }"""
CONFIG = {"ops": {"ingest": {"config": {"source": "test"}}}}


@pytest.fixture(scope="module")
def definitions():
    """defs_webui.py's jobs, imported here only to compare with what the web UI answers."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import defs_webui
    finally:
        sys.path.pop(0)
    return defs_webui.defs


def graph_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="job-graph-data">(.*?)</script>', page, re.S)
    assert found, "the page has no graph data block"
    return json.loads(html.unescape(found.group(1)))


def test_job_page_hands_the_graph_over_as_json_data_not_script(webui):
    status, page = webui.get(f"/locations/{LOCATION}/jobs/op_graph?ops=*store_rows")
    assert status == 200
    data = graph_data(page)
    assert (data["location"], data["job"]) == (LOCATION, "op_graph")
    assert data["launchpad"] == f"/locations/{LOCATION}/jobs/op_graph/launchpad"
    ops = {op["name"]: op for op in data["ops"]}
    assert set(ops) == {"ingest", "split_rows", "prepare_tables", "store_rows", "audit_rows", "count_rows",
                        "recount_rows"}
    assert [(o["name"], o["type"]) for o in ops["split_rows"]["outputs"]] == [("evens", "list"), ("odds", "list")]
    store = {i["name"]: i for i in ops["store_rows"]["inputs"]}
    assert store["ready"]["upstream"] == [{"op": "prepare_tables", "output": "result"}]
    assert ops["prepare_tables"]["outputs"][0]["type"] == "Nothing"
    parts = ops["audit_rows"]["inputs"][0]
    assert parts["fan_in"] and [u["output"] for u in parts["upstream"]] == ["evens", "odds"]
    assert ops["recount_rows"]["op"] == "count_rows"
    assert ops["store_rows"]["required_resources"] == ["warehouse"]
    assert [(h["name"], h["kind"], h["required_resources"]) for h in ops["store_rows"]["hooks"]] == [
        ("note_stored", "success", []), ("warn_warehouse", "failure", ["warehouse"])]
    assert "hooks" not in ops["ingest"]  # absent for an op without hooks
    hooks = webui.gql("""{ job(location: "defs_webui", name: "op_graph") { ops { name hooks { name kind } } } }""")
    by_op = {o["name"]: o["hooks"] for o in hooks["job"]["ops"]}
    assert by_op["store_rows"] == [{"name": "note_stored", "kind": "success"},
                                   {"name": "warn_warehouse", "kind": "failure"}]
    assert by_op["ingest"] == []
    assert ops["ingest"]["retry_policy"]["max_retries"] == 2
    assert ops["ingest"]["config_schema"]["required"] == ["source"]
    # the selection in the URL is in the field; the only scripts are files of the web UI's own
    assert re.search(r'id="op-selection"[^>]*value="\*store_rows"', page)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    for attrs, body in scripts:
        assert 'type="application/json"' in attrs or ("src=" in attrs and not body.strip()), attrs


def test_op_selection_is_evaluated_by_the_core_parser(webui, definitions):
    """Every form of the syntax gives exactly what the core's parser gives on the job itself."""
    job = definitions.get_job("op_graph")
    for text in ["*store_rows", "split_rows+", "+store_rows", "split_rows*", "count_rows, prepare_tables",
                 "*_rows", "+*count_rows", "ingest++", "*audit_rows+"]:
        answer = webui.gql(SELECTION, {"job": "op_graph", "s": text})["job"]["opSelection"]
        assert answer["error"] is None, (text, answer)
        assert answer["ops"] == parse_op_selection(job, text), text
    for text, words in [("nope", "no op named 'nope'"), ("ingest,,split_rows", "empty clause"),
                        ("zz*zz", "matches no op"), ("a b", "not a valid clause"), ("  ", "empty")]:
        answer = webui.gql(SELECTION, {"job": "op_graph", "s": text})["job"]["opSelection"]
        assert answer["ops"] is None and words in answer["error"], (text, answer)
        assert "ingest" in answer["error"]  # the message lists the job's ops


def test_launch_problem_names_inputs_fed_from_outside_and_ignores_ordering_only_edges(webui):
    alone = webui.gql(SELECTION, {"job": "op_graph", "s": "store_rows"})["job"]["opSelection"]
    assert alone["ops"] == ["store_rows"]
    assert "op 'store_rows' input 'evens' needs output 'evens' of op 'split_rows'" in alone["launchProblem"]
    # prepare_tables only orders store_rows (a Nothing output): leaving it out is fine
    ordered = webui.gql(SELECTION, {"job": "op_graph", "s": "ingest, split_rows, store_rows"})["job"]["opSelection"]
    assert ordered["launchProblem"] is None and ordered["error"] is None


def test_a_selection_launches_exactly_the_ops_it_highlights(webui):
    text = "*store_rows"
    highlighted = webui.gql(SELECTION, {"job": "op_graph", "s": text})["job"]["opSelection"]["ops"]
    launched = webui.launch("op_graph", CONFIG, ops=text)
    assert launched["ok"], launched
    run_id = launched["run"]["runId"]
    status, _ = webui.wait_finished(run_id)
    assert status == "SUCCESS"
    run = webui.gql("""query($id: ID!) { run(runId: $id) { stepKeysToExecute steps { stepKey } } }""",
                    {"id": run_id})["run"]
    assert run["stepKeysToExecute"] == highlighted
    assert sorted(s["stepKey"] for s in run["steps"]) == sorted(highlighted)


def test_step_durations_give_the_median_and_the_latest_of_recent_runs(webui):
    assert webui.gql(DURATIONS, {"runs": 20})["job"]["stepDurations"] == []
    run_ids = []
    for _ in range(3):
        launched = webui.launch("op_graph", CONFIG)
        assert launched["ok"], launched
        run_ids.append(launched["run"]["runId"])
        assert webui.wait_finished(run_ids[-1])[0] == "SUCCESS"
    durations: dict[str, list[float]] = {}
    for run_id in run_ids:  # oldest first
        steps = webui.gql("""query($id: ID!) { run(runId: $id) { steps { stepKey startTime endTime } } }""",
                          {"id": run_id})["run"]["steps"]
        for s in steps:
            durations.setdefault(s["stepKey"], []).append(s["endTime"] - s["startTime"])
    found = {d["stepKey"]: d for d in webui.gql(DURATIONS, {"runs": 20})["job"]["stepDurations"]}
    assert set(found) == set(durations) == {"ingest", "split_rows", "prepare_tables", "store_rows", "audit_rows",
                                            "count_rows", "recount_rows"}
    for key, d in found.items():
        assert d["runs"] == 3
        assert d["p50"] == pytest.approx(statistics.median(durations[key]))
        assert d["latest"] == pytest.approx(durations[key][-1])
        assert (d["latestRunId"], d["latestStatus"]) == (run_ids[-1], "SUCCESS")
    # fewer runs asked: only the newest count
    two = {d["stepKey"]: d for d in webui.gql(DURATIONS, {"runs": 2})["job"]["stepDurations"]}
    assert two["ingest"]["runs"] == 2
    assert two["ingest"]["p50"] == pytest.approx(statistics.median(durations["ingest"][-2:]))
    # another job's runs do not count
    other = webui.launch("hello")
    assert webui.wait_finished(other["run"]["runId"])[0] == "SUCCESS"
    assert {d["stepKey"] for d in webui.gql(DURATIONS, {"runs": 20})["job"]["stepDurations"]} == set(durations)


def test_a_read_only_web_ui_shows_the_graph_and_evaluates_selections_without_a_launch_link(start_webui):
    ui = start_webui("--read-only")
    status, page = ui.get(f"/locations/{LOCATION}/jobs/op_graph")
    assert status == 200 and graph_data(page)["job"] == "op_graph"
    assert 'id="op-selection"' in page and 'id="launch-selected"' not in page
    answer = ui.gql(SELECTION, {"job": "op_graph", "s": "ingest+"})["job"]["opSelection"]
    assert answer["ops"] == ["ingest", "split_rows"]
    assert ui.gql(DURATIONS, {"runs": 5})["job"]["stepDurations"] == []


def test_unknown_job_page_is_404_naming_the_jobs(webui):
    status, page = webui.get(f"/locations/{LOCATION}/jobs/nope")
    assert status == 404 and "op_graph" in page
