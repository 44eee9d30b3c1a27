"""Schedule ticks: once per (schedule, tick time), run keys make retries idempotent, bounded
catch-up, time zones, skip and failure recording, on/off state in storage — and one end-to-end pass
of a started daemon. Ticks are driven with explicit tick times (no waiting for the clock), except
in the end-to-end test.

Needs: nothing beyond Python and SQLite; code servers and run workers are real processes.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runyard.definitions.schedules import ScheduleDefinition
from runyard.errors import DefinitionError
from runyard.operations.instigators import schedule_fire_times
from runyard.storage.records import RunStatus
from runyard.tags import LOCATION_TAG, SCHEDULE_TAG, TICK_TAG
from runyard.testing import wait_until

SCHEDULES = """
@schedule("*/5 * * * *", job=shown)
def every5(context):
    return {"ops": {"show": {"config": {"n": context.scheduled_time.minute}}}}


@schedule("0 * * * *", job=shown)
def hourly_bad_config(context):
    return {"ops": {"show": {"config": {"n": "not a number"}}}}


@schedule("0 * * * *", job=shown)
def odd_hours_fail(context):
    if context.scheduled_time.hour % 2:
        raise RuntimeError("odd hour: boom")
    return {"ops": {"show": {"config": {"n": context.scheduled_time.hour}}}}


@schedule("0 * * * *", job=shown)
def skipper(context):
    return SkipReason("nothing to do at " + context.scheduled_time.isoformat())


@schedule("* * * * *", job=shown, default_status="RUNNING")
def minutely(context):
    return {"ops": {"show": {"config": {"n": 1}}}}


defs = Definitions(jobs=[shown], schedules=[every5, hourly_bad_config, odd_hours_fail, skipper, minutely])
"""

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=ZoneInfo("UTC")).timestamp()


@pytest.fixture
def harness(daemon_harness):
    return daemon_harness(SCHEDULES, {"daemon": {"max_catchup_ticks": 3}})


def test_a_tick_creates_its_run_once_and_the_run_runs(harness):
    d, loc, storage = harness.daemon, harness.location, harness.instance.storage
    tick = d.schedule_tick(loc, "every5", T0)
    assert tick.status == "SUCCESS" and len(tick.run_ids) == 1
    assert tick.run_keys == [f"every5:{T0:.0f}"]
    assert d.schedule_tick(loc, "every5", T0) is None  # the same tick again: recorded once
    (run,) = harness.runs(SCHEDULE_TAG, "every5")
    assert run.run_id == tick.run_ids[0] and run.tags[TICK_TAG] == str(tick.id)
    # like a run launched from the web UI, a tick's run names the code location it came from
    assert run.tags[LOCATION_TAG] == loc.name == "daemon_defs"
    assert harness.suite.wait_finished(run.run_id).status == RunStatus.SUCCESS
    assert harness.suite.out_lines("ran") == ["0"]
    (stored,) = storage.get_ticks("every5")
    assert (stored.tick_time, stored.status, stored.run_ids) == (T0, "SUCCESS", [run.run_id])


def test_a_retried_unfinished_tick_creates_no_second_run(harness):
    d, loc, storage = harness.daemon, harness.location, harness.instance.storage
    tick = d.schedule_tick(loc, "every5", T0)
    tick.status = "STARTED"  # as if the daemon died before finishing the tick
    storage.update_tick(tick)
    retried = d.schedule_tick(loc, "every5", T0)
    assert retried is not None and retried.status == "SUCCESS" and retried.run_ids == tick.run_ids
    assert len(harness.runs(SCHEDULE_TAG, "every5")) == 1
    assert len(storage.get_ticks("every5")) == 1


def test_catch_up_after_downtime_is_bounded(harness):
    d, storage = harness.daemon, harness.instance.storage
    storage.set_instigator_state("every5", "schedule", "RUNNING", {"cursor_time": T0 - 1})
    now = T0 + 3600 + 30  # 13 ticks were missed: 10:00 ... 11:00
    d.run_schedules(now=now)
    times = sorted(t.tick_time for t in storage.get_ticks("every5"))
    assert times == [T0 + 3000, T0 + 3300, T0 + 3600]  # the newest max_catchup_ticks
    assert storage.get_instigator_state("every5")["data"]["cursor_time"] == T0 + 3600
    d.run_schedules(now=now + 10)  # nothing new is due
    assert len(storage.get_ticks("every5")) == 3
    assert len(harness.runs(SCHEDULE_TAG, "every5")) == 3


def test_stopped_and_default_status(harness):
    d, storage = harness.daemon, harness.instance.storage
    d.run_schedules(now=T0 + 3600)
    assert storage.get_ticks("every5") == []  # default STOPPED, no state stored
    # default RUNNING: first sight starts its cursor now, the next due time ticks
    assert storage.get_instigator_state("minutely")["status"] == "RUNNING"
    d.run_schedules(now=T0 + 3600 + 61)
    ticks = storage.get_ticks("minutely")
    assert [t.tick_time for t in ticks] == [T0 + 3660]
    storage.set_instigator_state("minutely", "schedule", "STOPPED",
                                 storage.get_instigator_state("minutely")["data"])
    d.run_schedules(now=T0 + 3600 + 200)
    assert len(storage.get_ticks("minutely")) == 1


def test_run_config_that_fails_validation_fails_the_tick_without_a_run(harness):
    tick = harness.daemon.schedule_tick(harness.location, "hourly_bad_config", T0)
    assert tick.status == "FAILURE" and tick.run_ids == []
    assert "invalid" in tick.error and "n" in tick.error
    assert harness.runs(SCHEDULE_TAG, "hourly_bad_config") == []


def test_a_raising_schedule_records_the_error_and_the_next_tick_runs(harness):
    d, loc = harness.daemon, harness.location
    failed = d.schedule_tick(loc, "odd_hours_fail", T0 + 3600)  # 11:00
    assert failed.status == "FAILURE" and "odd hour: boom" in failed.error
    ok = d.schedule_tick(loc, "odd_hours_fail", T0 + 7200)  # 12:00
    assert ok.status == "SUCCESS" and len(ok.run_ids) == 1
    assert [t.status for t in harness.instance.storage.get_ticks("odd_hours_fail")] == ["SUCCESS", "FAILURE"]


def test_a_skip_reason_is_recorded(harness):
    tick = harness.daemon.schedule_tick(harness.location, "skipper", T0)
    assert tick.status == "SKIPPED" and tick.skip_reason.startswith("nothing to do at 2026-01-05T10:00")


def test_fire_times_follow_the_time_zone():
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer
    winter = datetime(2026, 1, 5, tzinfo=ZoneInfo("UTC")).timestamp()
    summer = datetime(2026, 7, 5, tzinfo=ZoneInfo("UTC")).timestamp()
    (w,) = schedule_fire_times("0 9 * * *", "Europe/Paris", winter, winter + 86400)
    (s,) = schedule_fire_times("0 9 * * *", "Europe/Paris", summer, summer + 86400)
    assert datetime.fromtimestamp(w, ZoneInfo("UTC")).hour == 8
    assert datetime.fromtimestamp(s, ZoneInfo("UTC")).hour == 7


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *", "* * * *"])
def test_an_invalid_cron_string_fails_at_definition_time(cron):
    with pytest.raises(DefinitionError, match="invalid cron string") as info:
        ScheduleDefinition(name="bad", cron_schedule=cron, job="j")
    assert cron in str(info.value)


def test_a_started_daemon_ticks_a_due_schedule(harness):
    storage = harness.instance.storage
    now = time.time()
    # the 5-minute tick before now is due (as after a short downtime)
    due = schedule_fire_times("*/5 * * * *", "UTC", now - 300, now)[-1]
    storage.set_instigator_state("every5", "schedule", "RUNNING", {"cursor_time": due - 1})
    def the_tick():
        return next((t for t in storage.get_ticks("every5") if t.tick_time == due and t.status != "STARTED"), None)

    with harness.daemon.start():
        tick = wait_until(the_tick, timeout=60, what="the due tick")
        assert tick.status == "SUCCESS", (tick.error, tick.skip_reason)
        assert harness.suite.wait_finished(tick.run_ids[0], timeout=90).status == RunStatus.SUCCESS
    beats = {b["loop"] for b in storage.get_heartbeats() if b["daemon_id"] == harness.daemon.daemon_id}
    assert {"lease", "schedules"} <= beats
