"""Partitioned jobs end to end (docs/partitions.md): the code server's ``POST /v1/partition-runs``
and ``CodeServerClient.partition_runs`` against a real code server process, the snapshot's
partitions, a schedule built from a partitioned job ticking through a real daemon loop, and the CLI
(``runyard job execute|launch --partition``, ``runyard job partitions``).

Needs: nothing beyond Python and SQLite; code servers, run workers and the CLI are real processes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runyard.codeserver.errors import CodeServerNotFoundError
from runyard.definitions.partitions import PartitionConfigError, PartitionKeyError
from runyard.storage.records import RunStatus
from runyard.tags import PARTITION_TAG, RUN_KEY_TAG, SCHEDULE_TAG

PARTITIONED = """
from runyard import (
    DailyPartitionsDefinition, StaticPartitionsDefinition, build_schedule_from_partitioned_job,
    daily_partitioned_config, static_partitioned_config,
)


@op
def show_partition(context, config: NCfg) -> None:
    record("partition", f"{context.partition_key} {config.n} {context.run_tags.get('parity')}")


@static_partitioned_config(["one", "two", "three"],
                           tags_for_partition_fn=lambda key: {"parity": "odd" if key != "two" else "even"})
def numbers_config(partition_key):
    return {"ops": {"show_partition": {"config": {"n": {"one": 1, "two": 2, "three": 3}[partition_key]}}}}


@job(config=numbers_config)
def numbers():
    show_partition()


@daily_partitioned_config(start_date="2026-01-01", timezone="Europe/Paris", hour_offset=2)
def days_config(start, end):
    return {"ops": {"show_partition": {"config": {"n": start.day}}}}


@job(config=days_config)
def days():
    show_partition()


@static_partitioned_config(["x"])
def broken_config(partition_key):
    raise ValueError(f"cannot configure {partition_key}")


@job(config=broken_config)
def broken():
    show_partition()


days_schedule = build_schedule_from_partitioned_job(days, hour_of_day=6)

defs = Definitions(jobs=[shown, numbers, days, broken], schedules=[days_schedule])
"""

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def harness(daemon_harness):
    return daemon_harness(PARTITIONED)


# ---- the code server -----------------------------------------------------------------------------

def test_partition_runs_rpc(harness):
    client = harness.location.client
    runs = client.partition_runs("numbers", ["three", "one"])
    assert [(r.partition_key, r.run_config, r.tags) for r in runs] == [
        ("three", {"ops": {"show_partition": {"config": {"n": 3}}}}, {"parity": "odd", PARTITION_TAG: "three"}),
        ("one", {"ops": {"show_partition": {"config": {"n": 1}}}}, {"parity": "odd", PARTITION_TAG: "one"})]
    assert client.partition_runs("numbers", []) == []
    (day,) = client.partition_runs("days", ["2026-01-05"])
    assert day.run_config == {"ops": {"show_partition": {"config": {"n": 5}}}}

    with pytest.raises(PartitionKeyError,
                       match=r"job 'numbers' has no partition 'four' \(3 partitions: one, two, three\)"):
        client.partition_runs("numbers", ["one", "four"])
    with pytest.raises(PartitionKeyError, match="job 'shown' is not partitioned"):
        client.partition_runs("shown", ["one"])
    with pytest.raises(PartitionKeyError, match="job 'days' has no partition '2099-01-01'"):
        client.partition_runs("days", ["2099-01-01"])
    with pytest.raises(PartitionConfigError, match="ValueError: cannot configure x") as exc:
        client.partition_runs("broken", ["x"])
    assert "raise ValueError" in exc.value.user_traceback
    with pytest.raises(CodeServerNotFoundError, match="no job named 'nope'"):
        client.partition_runs("nope", ["x"])
    result = client.partition_runs_result("numbers", ["zero"])
    assert not result.ok and result.error.kind == "unknown_partition" and result.results == []


def test_partition_runs_rejects_a_bad_body(harness):
    client = harness.location.client
    request = urllib.request.Request(client.base_url + "/partition-runs", method="POST",
                                     data=json.dumps({"job": "numbers", "partition_keys": "one"}).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {client.token}"} if client.token else {})})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)
    assert exc.value.code == 400
    body = json.loads(exc.value.read())
    assert body["error"]["message"] == "'partition_keys' must be a list of partition keys (strings)"


def test_snapshot_describes_partitions(harness):
    snapshot = harness.location.client.snapshot()
    numbers = snapshot.jobs_by_name["numbers"].partitions
    assert numbers.kind == "static" and numbers.keys == ["one", "two", "three"]
    days = snapshot.jobs_by_name["days"].partitions
    assert (days.kind, days.cadence, days.timezone, days.hour_offset, days.keys) == (
        "time_window", "daily", "Europe/Paris", 2, None)
    assert days.get_partition_keys(datetime(2026, 1, 3, 2, tzinfo=PARIS)) == ["2026-01-01", "2026-01-02"]
    assert snapshot.jobs_by_name["shown"].partitions is None
    assert "partitions" not in snapshot.to_json()["jobs"][snapshot.job_names.index("shown")]


# ---- schedules built from partitioned jobs ----------------------------------------------------------

def test_schedule_from_partitioned_job_runs_the_last_complete_partition(harness):
    d, loc = harness.daemon, harness.location
    schedule = loc.snapshot.schedules_by_name["days_schedule"]
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "Europe/Paris")
    tick_time = datetime(2026, 3, 29, 6, 0, tzinfo=PARIS).timestamp()  # the day clocks go forward
    tick = d.schedule_tick(loc, "days_schedule", tick_time)
    assert tick.status == "SUCCESS", tick.error
    (run,) = harness.runs(SCHEDULE_TAG, "days_schedule")
    # the day that ended at 02:00 this morning (hour_offset=2)
    assert run.tags[PARTITION_TAG] == "2026-03-28" and run.tags[RUN_KEY_TAG] == "2026-03-28"
    assert run.run_config == {"ops": {"show_partition": {"config": {"n": 28}}}}
    assert harness.suite.wait_finished(run.run_id).status == RunStatus.SUCCESS
    assert harness.suite.out_lines("partition") == ["2026-03-28 28 None"]
    # a tick before the first partition ended: skipped, saying why
    early = d.schedule_tick(loc, "days_schedule", datetime(2025, 12, 1, 6, tzinfo=PARIS).timestamp())
    assert early.status == "SKIPPED" and "no partition of job 'days' has ended" in early.skip_reason


def test_build_schedule_errors():
    from runyard import (
        DailyPartitionsDefinition,
        StaticPartitionsDefinition,
        build_schedule_from_partitioned_job,
        job,
        op,
    )
    from runyard.errors import DefinitionError

    @op
    def noop() -> None:
        return None

    @job(partitions_def=DailyPartitionsDefinition("2024-01-01"))
    def daily():
        noop()

    @job(partitions_def=StaticPartitionsDefinition(["a"]))
    def static():
        noop()

    @job
    def plain():
        noop()

    assert build_schedule_from_partitioned_job(daily).cron_schedule == "0 0 * * *"
    assert build_schedule_from_partitioned_job(daily, minute_of_hour=15, hour_of_day=3).cron_schedule == "15 3 * * *"
    assert build_schedule_from_partitioned_job(daily).name == "daily_schedule"
    with pytest.raises(DefinitionError, match="job 'plain' is not partitioned"):
        build_schedule_from_partitioned_job(plain)
    with pytest.raises(DefinitionError, match="day_of_week has no meaning for a job with daily partitions"):
        build_schedule_from_partitioned_job(daily, day_of_week=1)
    with pytest.raises(DefinitionError, match="hour_of_day must be an integer from 0 to 23"):
        build_schedule_from_partitioned_job(daily, hour_of_day=25)
    with pytest.raises(DefinitionError, match="has StaticPartitionsDefinition, which has no time windows"):
        build_schedule_from_partitioned_job(static)
    assert build_schedule_from_partitioned_job(static, cron_schedule="0 * * * *").cron_schedule == "0 * * * *"


# ---- the CLI -----------------------------------------------------------------------------------------

CLI_DEFS = """
from runyard import Config, Definitions, DailyPartitionsDefinition, job, op, static_partitioned_config


class NCfg(Config):
    n: int


@op
def show(context, config: NCfg) -> None:
    context.log.info(f"partition {context.partition_key} n={config.n} tag={context.run_tags.get('parity')}")
    if config.n < 0:
        raise ValueError("negative")


@static_partitioned_config(["one", "two", "minus"], tags_for_partition_fn=lambda key: {"parity": key})
def config(partition_key):
    return {"ops": {"show": {"config": {"n": {"one": 1, "two": 2, "minus": -1}[partition_key]}}}}


@job(config=config)
def numbers():
    show()


@op
def window(context) -> None:
    w = context.partition_time_window
    context.log.info(f"window {w.start.isoformat()} {w.end.isoformat()}")


@job(partitions_def=DailyPartitionsDefinition("2024-01-01", end_date="2024-01-04"))
def days():
    window()


defs = Definitions(jobs=[numbers, days])
"""


def test_cli_execute_launch_and_partition_status(cli, write_defs, tmp_path):
    defs = write_defs(CLI_DEFS)
    done = cli.ok("job", "execute", "-f", defs, "-j", "numbers", "--partition", "two", "-v")
    assert "partition two n=2 tag=two" in done.stdout and "SUCCESS" in done.stdout
    failed = cli("job", "execute", "-f", defs, "-j", "numbers", "--partition", "minus")
    assert failed.returncode == 1
    # -c files are merged over the partition's run config
    override = tmp_path / "override.yaml"
    override.write_text("ops:\n  show:\n    config:\n      n: 7\n")
    merged = cli.ok("job", "launch", "-f", defs, "-j", "numbers", "--partition", "one", "-c", override, "--wait",
                    "-v")
    assert "partition one n=7 tag=one" in merged.stdout
    window = cli.ok("job", "execute", "-f", defs, "-j", "days", "--partition", "2024-01-02", "-v")
    assert "window 2024-01-02T00:00:00+00:00 2024-01-03T00:00:00+00:00" in window.stdout

    rows = cli.json("job", "partitions", "-f", defs, "-j", "numbers", "--json")
    assert [(r["partition_key"], r["status"]) for r in rows] == [("one", "SUCCESS"), ("two", "SUCCESS"),
                                                                 ("minus", "FAILURE")]
    assert all(r["run_id"] for r in rows)
    text = cli.ok("job", "partitions", "-f", defs, "-j", "days").stdout.splitlines()
    assert [line.split()[:2] for line in text] == [["2024-01-01", "MISSING"], ["2024-01-02", "SUCCESS"],
                                                   ["2024-01-03", "MISSING"]]
    only_failed = cli.json("job", "partitions", "-f", defs, "-j", "numbers", "--status", "failure", "--json")
    assert [r["partition_key"] for r in only_failed] == ["minus"]

    runs = {r["run_id"]: r for r in cli.json("run", "list", "--json")}
    assert {r["tags"].get(PARTITION_TAG) for r in runs.values()} == {"one", "two", "minus", "2024-01-02"}


def test_cli_partition_errors(cli, write_defs):
    defs = write_defs(CLI_DEFS)
    unknown = cli("job", "launch", "-f", defs, "-j", "numbers", "--partition", "three")
    assert unknown.returncode == 2
    assert "job 'numbers' has no partition 'three' (3 partitions: one, two, minus)" in unknown.stderr
    late = cli("job", "execute", "-f", defs, "-j", "days", "--partition", "2024-01-04")
    assert late.returncode == 2 and "has no partition '2024-01-04'" in late.stderr
    forged = cli("job", "execute", "-f", defs, "-j", "numbers", "--tag", f"{PARTITION_TAG}=one")
    assert forged.returncode == 2 and "'runyard/partition' is a reserved tag" in forged.stderr
    not_partitioned = cli("job", "partitions", "-f", defs, "-j", "nope")
    assert not_partitioned.returncode != 0
    # a partitioned job's op asking for the key in a run for no partition: the step says why
    plain = cli("job", "execute", "-f", defs, "-j", "days")
    assert plain.returncode == 1 and "is not for a partition" in plain.stdout
