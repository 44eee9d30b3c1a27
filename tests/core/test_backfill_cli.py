"""``runyard backfill launch|list|show|cancel|retry`` end to end (docs/backfills.md): the CLI in
subprocesses, a real ``runyard daemon`` creating and launching the runs, a partition that fails, its
retry, and bad input naming what is wrong.

Needs: nothing beyond Python and SQLite; the CLI, the daemon, code servers and run workers are real
processes.
"""

from __future__ import annotations

import pytest

from runyard.testing import wait_until

DEFS = """
from runyard import Config, Definitions, job, op, static_partitioned_config


class RegionConfig(Config):
    region: str


@op
def load(config: RegionConfig) -> None:
    if config.region == "mars":
        raise RuntimeError("no data from mars")


@static_partitioned_config(["eu", "us", "asia", "mars"])
def region_config(key):
    return {"ops": {"load": {"config": {"region": key}}}}


@job(config=region_config)
def regions():
    load()


@job
def plain():
    load()


defs = Definitions(jobs=[regions, plain])
"""


@pytest.fixture
def defs(tmp_path, home):
    (home / "runyard.yaml").write_text(
        "run_coordinator: {queued: {max_concurrent_runs: 4, dequeue_interval_seconds: 0.2}}\n"
        "run_launcher: {process: {warm: false}}\n"
        "daemon: {backfill_interval_seconds: 0.2}\n")
    path = tmp_path / "defs.py"
    path.write_text(DEFS)
    return path


def test_launch_follow_and_retry_a_backfill(cli, defs, procs):
    bf = cli.json("backfill", "launch", "regions", "--all", "-f", defs, "--tag", "team=geo", "--json")
    assert bf["status"] == "REQUESTED" and bf["partition_keys"] == ["eu", "us", "asia", "mars"]
    assert bf["tags"]["team"] == "geo" and "runyard/user" in bf["tags"]
    daemon = procs.add(cli.popen("daemon", "-f", defs, start_new_session=True))
    try:
        shown = wait_until(lambda: (s := cli.json("backfill", "show", bf["backfill_id"], "--json"))
                           ["progress"]["finished"] == 4 and s, 120, interval=0.5, what="the four runs to finish")
    finally:
        procs.stop(daemon)
    assert shown["status"] == "COMPLETED" and shown["submitted"] == 4
    assert shown["progress"]["runs"] == {"FAILURE": 1, "SUCCESS": 3}
    text = cli.ok("backfill", "show", bf["backfill_id"], "--partitions").stdout
    assert "4/4 submitted" in text and "1 FAILURE" in text and "mars" in text
    per_key = {p["partition_key"]: p["status"] for p in
               cli.json("backfill", "show", bf["backfill_id"], "--partitions", "--json")["partitions"]}
    assert per_key == {"eu": "SUCCESS", "us": "SUCCESS", "asia": "SUCCESS", "mars": "FAILURE"}
    listed = cli.json("backfill", "list", "--json")
    assert [b["backfill_id"] for b in listed] == [bf["backfill_id"]]
    assert "COMPLETED" in cli.ok("backfill", "list").stdout
    retry = cli.json("backfill", "retry", bf["backfill_id"], "-f", defs, "--json")
    assert retry["partition_keys"] == ["mars"] and retry["retry_of"] == bf["backfill_id"]
    assert retry["tags"]["team"] == "geo"
    assert "is CANCELED" in cli.ok("backfill", "cancel", retry["backfill_id"]).stdout
    assert cli.json("backfill", "list", "--status", "canceled", "--json")[0]["backfill_id"] == retry["backfill_id"]


@pytest.mark.parametrize("args, message", [
    (("regions", "--partitions", "eu,pluto"), "job 'regions' has no partition 'pluto'"),
    (("regions", "--from", "mars", "--to", "eu"), "'mars' comes after 'eu'"),
    (("regions",), "one way"),
    (("plain", "--all"), "job 'plain' is not partitioned"),
    (("nope", "--all"), "no loaded code location has a job named 'nope'"),
    (("regions", "--all", "--tag", "runyard/backfill=x"), "'runyard/backfill' is a reserved tag"),
])
def test_bad_launches_name_what_is_wrong(cli, defs, args, message):
    proc = cli("backfill", "launch", *args, "-f", defs)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert cli.json("backfill", "list", "--json") == []


def test_unknown_backfill_ids_are_named(cli, defs):
    for command in ("show", "cancel"):
        proc = cli("backfill", command, "no-such-id")
        assert proc.returncode != 0 and "no backfill with id 'no-such-id'" in proc.stderr, proc.stderr
