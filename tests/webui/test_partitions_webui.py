"""Partitions in the web UI over HTTP (docs/partitions.md): GraphQL ``Job.partitions`` (keys and the
status of each partition's last run), ``Job.partitionRun`` (a partition's run config from its code
location), ``launchRun(partitionKey:)`` (the run gets the partition's config, tags and
``runyard/partition``; an unknown key is refused naming the job and key), and the job page's
partitions grid and the launchpad's partition picker.

Needs: nothing beyond Python (a real ``runyard webui`` and code server over SQLite, run workers as
real processes)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

DEFS = Path(__file__).with_name("defs_partitions.py")
LOC = "defs_partitions"

PARTITIONS = """query($job: String!) { job(location: "defs_partitions", name: $job) {
  partitions { kind cadence timezone count keys statuses(limit: 20) { key status runId run { runId status } } } } }"""
LAUNCH = """mutation($job: String!, $key: String, $cfg: GenericScalar, $tags: [TagInput!]) {
  launchRun(location: "defs_partitions", jobName: $job, partitionKey: $key, runConfig: $cfg, tags: $tags) {
    ok message code run { runId status tags { key value } } errors { message path } } }"""


@pytest.fixture
def ui(start_webui):
    return start_webui("-f", str(DEFS), defs=False)


def launch(ui, job: str, key: str | None, **variables):
    return ui.gql(LAUNCH, {"job": job, "key": key, **variables})["launchRun"]


def test_partitions_and_their_status_in_graphql(ui):
    parts = ui.gql(PARTITIONS, {"job": "regions"})["job"]["partitions"]
    assert parts["kind"] == "static" and parts["cadence"] is None
    assert parts["keys"] == ["eu", "us", "asia", "mars"] and parts["count"] == 4
    # newest first; none has run
    assert [(p["key"], p["status"], p["runId"]) for p in parts["statuses"]] == [
        ("mars", "MISSING", None), ("asia", "MISSING", None), ("us", "MISSING", None), ("eu", "MISSING", None)]

    ok = launch(ui, "regions", "eu")
    assert ok["ok"], ok
    tags = {t["key"]: t["value"] for t in ok["run"]["tags"]}
    assert tags["runyard/partition"] == "eu" and tags["region"] == "eu"
    assert ui.wait_finished(ok["run"]["runId"])[0] == "SUCCESS"
    bad = launch(ui, "regions", "mars")
    assert ui.wait_finished(bad["run"]["runId"])[0] == "FAILURE"
    again = launch(ui, "regions", "eu")
    status, events = ui.wait_finished(again["run"]["runId"])
    assert status == "SUCCESS"
    assert any("loading eu for partition eu" in e["message"] for e in events)

    statuses = {p["key"]: p for p in ui.gql(PARTITIONS, {"job": "regions"})["job"]["partitions"]["statuses"]}
    assert statuses["eu"]["runId"] == again["run"]["runId"] and statuses["eu"]["status"] == "SUCCESS"
    assert statuses["mars"]["status"] == "FAILURE" and statuses["mars"]["run"]["runId"] == bad["run"]["runId"]
    assert statuses["us"]["status"] == "MISSING" and statuses["us"]["run"] is None

    daily = ui.gql(PARTITIONS, {"job": "days"})["job"]["partitions"]
    assert daily["kind"] == "time_window" and daily["cadence"] == "daily" and daily["timezone"] == "UTC"
    assert daily["keys"][0] == "2024-01-01" and daily["keys"][-1] == "2024-01-10" and daily["count"] == 10
    assert ui.gql(PARTITIONS, {"job": "plain"})["job"]["partitions"] is None


def test_launching_a_partition_merges_run_config_and_refuses_unknown_keys(ui):
    run = launch(ui, "days", "2024-01-03")
    assert run["ok"], run
    status, events = ui.wait_finished(run["run"]["runId"])
    assert status == "SUCCESS"
    assert any("window 2024-01-03T00:00:00+00:00 .. 2024-01-04T00:00:00+00:00" in e["message"] for e in events)

    # a run config given with a partition is merged over the partition's
    merged = launch(ui, "regions", "us", cfg={"tags": {"extra": "1"}}, tags=[{"key": "team", "value": "a"}])
    assert merged["ok"], merged
    tags = {t["key"]: t["value"] for t in merged["run"]["tags"]}
    assert tags["runyard/partition"] == "us" and tags["extra"] == "1" and tags["team"] == "a"

    unknown = launch(ui, "regions", "antarctica")
    assert not unknown["ok"] and unknown["code"] == "INVALID"
    assert "job 'regions' has no partition 'antarctica'" in unknown["message"]
    too_new = launch(ui, "days", "2024-02-01")
    assert not too_new["ok"] and "has no partition '2024-02-01'" in too_new["message"]
    not_partitioned = launch(ui, "plain", "x")
    assert not not_partitioned["ok"] and "job 'plain' is not partitioned" in not_partitioned["message"]
    # the reserved tag is runyard's to set, not a user's
    forged = launch(ui, "plain", None, tags=[{"key": "runyard/partition", "value": "x"}])
    assert not forged["ok"] and "reserved" in forged["message"]


def test_partition_run_config_for_the_launchpad(ui):
    q = """query($key: String!) { job(location: "defs_partitions", name: "regions") {
      partitionRun(partitionKey: $key) {
        ok code message partitionKey runConfig runConfigYaml tags { key value } } } }"""
    got = ui.gql(q, {"key": "asia"})["job"]["partitionRun"]
    assert got["ok"] and got["runConfig"] == {"ops": {"load_region": {"config": {"region": "asia"}}}}
    assert "region: asia" in got["runConfigYaml"] and got["tags"] == [{"key": "region", "value": "asia"}]
    missing = ui.gql(q, {"key": "nowhere"})["job"]["partitionRun"]
    assert not missing["ok"] and missing["code"] == "INVALID" and "no partition 'nowhere'" in missing["message"]


def test_job_page_shows_the_partitions_grid_and_the_launchpad_the_picker(ui):
    run = launch(ui, "regions", "asia")
    assert ui.wait_finished(run["run"]["runId"])[0] == "SUCCESS"
    status, page = ui.get(f"/locations/{LOC}/jobs/regions")
    assert status == 200
    page = html.unescape(page)
    assert 'id="partitions"' in page and "4 partitions" in page
    assert f'data-partition-key="asia" data-status="SUCCESS" data-run-id="{run["run"]["runId"]}"' in page
    assert 'data-partition-key="eu" data-status="MISSING"' in page
    assert 'id="launch-partition"' in page
    status, plain = ui.get(f"/locations/{LOC}/jobs/plain")
    assert status == 200 and 'id="partitions"' not in plain
    status, pad = ui.get(f"/locations/{LOC}/jobs/days/launchpad?partition=2024-01-05")
    assert status == 200 and 'id="partition"' in pad
    assert '"selected": "2024-01-05"' in pad and '"2024-01-10"' in pad


def test_dagster_clients_name_the_partition_with_its_tag(ui):
    # what Dagster's Python client sends for a partitioned run: the tag dagster/partition
    answer = ui.gql("""mutation($key: String!) { launchRun(executionParams: {
        selector: {repositoryLocationName: "defs_partitions", repositoryName: "__repository__", jobName: "regions"},
        executionMetadata: {tags: [{key: "dagster/partition", value: $key}]}}) {
          __typename ... on LaunchRunSuccess { run { runId tags { key value } } } ... on PythonError { message } } }""",
                    {"key": "asia"})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    tags = {t["key"]: t["value"] for t in answer["run"]["tags"]}
    assert tags["runyard/partition"] == "asia" and "dagster/partition" not in tags
    assert ui.wait_finished(answer["run"]["runId"])[0] == "SUCCESS"
