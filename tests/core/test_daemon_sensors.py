"""Sensor ticks: minimum interval, cursor, run keys (a key already used creates no run), skip
reasons, and a sensor that raises or times out (the tick records the error, the next tick runs).

Needs: nothing beyond Python and SQLite; code servers and run workers are real processes.
"""

from __future__ import annotations

import os

import pytest

from runyard.storage.records import RunStatus
from runyard.tags import LOCATION_TAG, SENSOR_TAG

SENSORS = """
@sensor(job=shown, minimum_interval_seconds=30)
def counter(context):
    n = int(context.cursor or 0) + 1
    context.update_cursor(str(n))
    # the same key twice in a row: the second request creates no run
    yield RunRequest(run_key=f"k{(n + 1) // 2}", run_config={"ops": {"show": {"config": {"n": n}}}})


@sensor(job=shown, minimum_interval_seconds=1)
def moody(context):
    if os.path.exists(os.path.join(OUT_DIR, "boom")):
        os.remove(os.path.join(OUT_DIR, "boom"))
        raise ValueError("sensor exploded")
    if os.path.exists(os.path.join(OUT_DIR, "slow")):
        os.remove(os.path.join(OUT_DIR, "slow"))
        time.sleep(5)
    return SkipReason("nothing new")


@sensor(job=shown, minimum_interval_seconds=1, default_status="RUNNING")
def always(context):
    return RunRequest(run_config={"ops": {"show": {"config": {"n": 7}}}})


defs = Definitions(jobs=[shown], sensors=[counter, moody, always])
"""

T0 = 1_800_000_000.0


@pytest.fixture
def harness(daemon_harness):
    return daemon_harness(SENSORS, evaluation_timeout=1.5)


def start(harness, name):
    harness.instance.storage.set_instigator_state(name, "sensor", "RUNNING")


def test_cursor_and_run_keys(harness):
    d, storage = harness.daemon, harness.instance.storage
    start(harness, "counter")
    first = d.sensor_tick(harness.location, "counter", T0)
    assert first.status == "SUCCESS" and first.run_keys == ["k1"] and first.cursor == "1"
    second = d.sensor_tick(harness.location, "counter", T0 + 30)
    assert second.status == "SKIPPED" and "k1" in second.skip_reason  # k1 used already: no run
    third = d.sensor_tick(harness.location, "counter", T0 + 60)
    assert third.status == "SUCCESS" and third.run_keys == ["k2"]
    assert storage.get_instigator_state("counter")["data"]["cursor"] == "3"
    runs = harness.runs(SENSOR_TAG, "counter")
    assert len(runs) == 2 and {r.tags["runyard/run_key"] for r in runs} == {"k1", "k2"}
    assert {r.tags[LOCATION_TAG] for r in runs} == {harness.location.name}
    for run in runs:
        assert harness.suite.wait_finished(run.run_id).status == RunStatus.SUCCESS
    assert sorted(harness.suite.out_lines("ran")) == ["1", "3"]


def test_minimum_interval_and_stopped_state(harness):
    d, storage = harness.daemon, harness.instance.storage
    d.run_sensors(now=T0)
    assert storage.get_ticks("counter") == []  # STOPPED by default
    assert len(storage.get_ticks("always")) == 1  # default RUNNING
    start(harness, "counter")
    d.run_sensors(now=T0 + 1)
    d.run_sensors(now=T0 + 10)  # within counter's 30 s
    d.run_sensors(now=T0 + 31)
    assert [t.tick_time for t in storage.get_ticks("counter")] == [T0 + 31, T0 + 1]
    storage.set_instigator_state("counter", "sensor", "STOPPED", storage.get_instigator_state("counter")["data"])
    d.run_sensors(now=T0 + 100)
    assert len(storage.get_ticks("counter")) == 2


def test_a_sensor_without_run_key_runs_every_tick(harness):
    d = harness.daemon
    d.sensor_tick(harness.location, "always", T0)
    d.sensor_tick(harness.location, "always", T0 + 1)
    assert len(harness.runs(SENSOR_TAG, "always")) == 2


def test_a_raising_sensor_records_the_error_and_the_next_tick_runs(harness):
    d = harness.daemon
    start(harness, "moody")
    (harness.suite.out_dir / "boom").write_text("")
    failed = d.sensor_tick(harness.location, "moody", T0)
    assert failed.status == "FAILURE" and "sensor exploded" in failed.error
    ok = d.sensor_tick(harness.location, "moody", T0 + 1)
    assert ok.status == "SKIPPED" and ok.skip_reason == "nothing new"


def test_a_sensor_that_times_out_fails_its_tick_and_the_next_tick_runs(harness):
    d = harness.daemon
    start(harness, "moody")
    (harness.suite.out_dir / "slow").write_text("")
    failed = d.sensor_tick(harness.location, "moody", T0)
    assert failed.status == "FAILURE" and "time" in failed.error.lower()
    assert not os.path.exists(harness.suite.out_dir / "slow")
    ok = harness.daemon.sensor_tick(harness.location, "moody", T0 + 1)
    assert ok.status == "SKIPPED"
    assert [t.status for t in harness.instance.storage.get_ticks("moody")] == ["SKIPPED", "FAILURE"]
