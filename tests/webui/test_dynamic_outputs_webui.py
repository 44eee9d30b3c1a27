"""Dynamic fan-out through the web UI's GraphQL API (no user code in the web UI: it plans from the
job's snapshot and the runs' stored plans): the job's snapshot marks dynamic and optional outputs,
mapped and collected inputs; a run's steps list its mapped steps; re-executing from failure re-runs
only the failed mapped step and the collect; an op selection may name one mapped step.

Needs: the web UI fixtures (SQLite, a code server)."""

from __future__ import annotations

from pathlib import Path

import pytest

DEFS = Path(__file__).with_name("defs_dynamic.py")
REEXECUTE = """mutation($id: ID!, $mode: String, $ops: String) { reexecuteRun(runId: $id, mode: $mode, ops: $ops) {
    ok code message run { runId } errors { message } } }"""
RUN = """query($id: ID!) { run(runId: $id) { status stepKeysToExecute steps { stepKey status } } }"""
LAUNCH = """mutation($cfg: GenericScalar) { launchRun(location: "defs_dynamic", jobName: "fanned", runConfig: $cfg) {
    ok message run { runId } } }"""


@pytest.fixture
def dynamic_webui(start_webui):
    return start_webui("-f", str(DEFS), defs=False)


def test_reexecute_a_failed_mapped_step_from_failure(dynamic_webui, tmp_path):
    webui = dynamic_webui
    marker = tmp_path / "marker"
    marker.write_text("fail")
    launched = webui.gql(LAUNCH, {"cfg": {"ops": {"square": {"config": {"fail_marker": str(marker)}}}}})["launchRun"]
    assert launched["ok"], launched
    parent = launched["run"]["runId"]
    assert webui.wait_finished(parent)[0] == "FAILURE"
    steps = {s["stepKey"]: s["status"] for s in webui.gql(RUN, {"id": parent})["run"]["steps"]}
    assert steps == {"split": "SUCCESS", "square[c]": "SUCCESS", "square[a]": "FAILURE", "square[b]": "SUCCESS",
                     "sizes": "SKIPPED", "on_big": "SKIPPED"}
    marker.unlink()
    result = webui.gql(REEXECUTE, {"id": parent, "mode": "from_failure"})["reexecuteRun"]
    assert result["ok"], result
    child = result["run"]["runId"]
    status, events = webui.wait_finished(child)
    assert status == "SUCCESS", [e["message"] for e in events]
    run = webui.gql(RUN, {"id": child})["run"]
    assert run["stepKeysToExecute"] == ["square[a]", "sizes", "on_big"]
    assert {s["stepKey"]: s["status"] for s in run["steps"]} == {
        "square[a]": "SUCCESS", "sizes": "SUCCESS", "on_big": "SKIPPED"}
    # one mapped step by name
    again = webui.gql(REEXECUTE, {"id": child, "mode": "all", "ops": "square[b],sizes"})["reexecuteRun"]
    assert again["ok"], again
    assert webui.wait_finished(again["run"]["runId"])[0] == "SUCCESS"
    bad = webui.gql(REEXECUTE, {"id": child, "mode": "all", "ops": "nothing[b]"})["reexecuteRun"]
    assert not bad["ok"] and "nothing[b]" in bad["message"]


def test_the_snapshot_describes_dynamic_and_optional_outputs(dynamic_webui):
    from runyard.codeserver.snapshot_builder import build_snapshot
    from runyard.workspace.loader import code_pointer_for, load_definitions

    snapshot = build_snapshot(load_definitions(code_pointer_for(python_file=str(DEFS))))
    (job,) = snapshot.jobs
    ops = {op.name: op for op in job.ops}
    assert ops["split"].outputs[0].is_dynamic and ops["split"].outputs[0].is_required
    assert [o.is_required for o in ops["sizes"].outputs] == [False, False]
    assert ops["square"].inputs[0].mapped and not ops["square"].inputs[0].collect
    assert ops["sizes"].inputs[0].collect and not ops["sizes"].inputs[0].mapped
    data = ops["on_big"].to_json()
    assert "mapped" not in data["inputs"][0] and "is_dynamic" not in data["outputs"][0]
