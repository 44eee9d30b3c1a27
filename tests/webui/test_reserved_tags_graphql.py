"""Reserved ``runyard/`` tags through GraphQL (issue 10, item 14): ``launchRun`` refuses them in its
tags and in the run config's ``tags:`` (naming the tag; nothing stored), the documented user tag
``runyard/priority`` stays allowed, and ``reexecuteRun`` refuses them too. The CLI, the Python API and
the daemon's side are in tests/core/test_reserved_tags.py.

Needs: nothing beyond Python and SQLite; the web UI, its code server and run workers are real processes.
"""

from __future__ import annotations

from runyard.tags import PRIORITY_TAG, RUN_KEY_TAG, SCHEDULE_TAG, TICK_TAG
from runyard.testing import wait_until

LAUNCH = """mutation($cfg: GenericScalar, $tags: [TagInput!]) {
  launchRun(location: "defs", jobName: "tiny", runConfig: $cfg, tags: $tags) {
    ok code message run { runId tags { key value } } errors { message path } } }"""
REEXECUTE = """mutation($id: ID!, $tags: [TagInput!]) {
  reexecuteRun(runId: $id, tags: $tags) { ok code message run { runId } } }"""


def test_graphql_refuses_reserved_tags(start_webui, tiny_defs):
    ui = start_webui("-f", str(tiny_defs), defs=False)
    forged = [{"key": SCHEDULE_TAG, "value": "every5"}, {"key": TICK_TAG, "value": "1"}]
    refused = ui.gql(LAUNCH, {"tags": forged})["launchRun"]
    assert not refused["ok"] and refused["run"] is None, refused
    assert SCHEDULE_TAG in refused["message"] and "reserved" in refused["message"]
    in_config = ui.gql(LAUNCH, {"cfg": {"tags": {RUN_KEY_TAG: "every5:1"}}})["launchRun"]
    assert not in_config["ok"] and in_config["run"] is None, in_config
    assert any(RUN_KEY_TAG in e["message"] and "reserved" in e["message"] for e in in_config["errors"])
    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0
    allowed = ui.gql(LAUNCH, {"tags": [{"key": PRIORITY_TAG, "value": "7"}]})["launchRun"]
    assert allowed["ok"], allowed
    assert {"key": PRIORITY_TAG, "value": "7"} in allowed["run"]["tags"]
    run_id = allowed["run"]["runId"]
    status = "query($id: ID!) { run(runId: $id) { status } }"
    wait_until(lambda: ui.gql(status, {"id": run_id})["run"]["status"] == "SUCCESS",
               timeout=60, what="the run to finish")
    again = ui.gql(REEXECUTE, {"id": run_id, "tags": [{"key": "runyard/root_run_id", "value": "x"}]})
    assert not again["reexecuteRun"]["ok"] and "runyard/root_run_id" in again["reexecuteRun"]["message"]
    assert ui.gql("{ runs { count } }")["runs"]["count"] == 1
