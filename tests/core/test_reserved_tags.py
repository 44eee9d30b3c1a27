"""Reserved ``runyard/`` tags are set by runyard only (issue 10, item 14).

A user could set ``runyard/schedule``, ``runyard/run_key`` and ``runyard/tick`` through the CLI,
GraphQL or run config, and the daemon adopted such a run as a schedule tick's, so the tick's real run
never ran. Now every user entry point refuses a reserved tag (naming it; exit 2 / a refused GraphQL
payload), the documented user tags (``runyard/priority``, ``runyard/max_runtime``) stay allowed, and
the daemon recognises only the runs it recorded on the tick before creating them — a forged run
written straight into storage does not suppress the tick's run.

Needs: nothing beyond Python and SQLite; the CLI, the web UI, code servers and run workers are real
processes.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runyard.operations.launch import launch_from_location
from runyard.storage.records import RunFilter, RunStatus
from runyard.tags import (
    MAX_RUNTIME_TAG,
    PRIORITY_TAG,
    RUN_KEY_TAG,
    SCHEDULE_TAG,
    TICK_TAG,
    ReservedTagError,
    reserved_tags,
)

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=ZoneInfo("UTC")).timestamp()

SCHEDULES = """
@schedule("*/5 * * * *", job=shown)
def every5(context):
    return {"ops": {"show": {"config": {"n": 5}}}}


@schedule("*/5 * * * *", job=shown)
def sneaky(context):
    return RunRequest(run_config={"ops": {"show": {"config": {"n": 6}}}}, tags={"runyard/sensor": "fake"})


@job(tags={"runyard/schedule": "every5", "runyard/priority": "3"})
def forged_job():
    show()


defs = Definitions(jobs=[shown, forged_job], schedules=[every5, sneaky])
"""


def test_the_tags_module_names_what_a_user_may_set():
    assert reserved_tags({"team": "data", PRIORITY_TAG: "3", MAX_RUNTIME_TAG: "60"}) == []
    assert reserved_tags({SCHEDULE_TAG: "x", "runyard/made_up": "y", "team": "z"}) == [
        "runyard/made_up", SCHEDULE_TAG]


# ---- the CLI ---------------------------------------------------------------------------------------
def test_cli_refuses_reserved_tags_and_run_config_tags(cli, tiny_defs, tmp_path):
    for args in (("job", "execute", "-f", tiny_defs, "-j", "tiny", "--tag", f"{SCHEDULE_TAG}=every5"),
                 ("job", "launch", "-f", tiny_defs, "-j", "tiny", "--tag", f"{RUN_KEY_TAG}=every5:1"),
                 ("job", "execute", "-f", tiny_defs, "-j", "tiny", "--tag", "runyard/anything=1")):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert args[-1].split("=")[0] in proc.stderr and "reserved" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    config = tmp_path / "forged.yaml"
    config.write_text(f"tags:\n  {TICK_TAG}: '1'\n")
    proc = cli("job", "execute", "-f", tiny_defs, "-j", "tiny", "-c", config)
    assert proc.returncode == 2 and f"tags.{TICK_TAG}" in proc.stderr and "reserved" in proc.stderr, proc.stderr
    assert cli.json("run", "list", "--json") == []  # nothing was stored
    # the documented user tags stay allowed
    cli.ok("job", "execute", "-f", tiny_defs, "-j", "tiny", "--tag", f"{PRIORITY_TAG}=5")
    (run,) = cli.json("run", "list", "--json")
    proc = cli("run", "reexecute", run["run_id"], "--tag", f"{TICK_TAG}=1")
    assert proc.returncode == 2 and TICK_TAG in proc.stderr, proc.stderr
    assert len(cli.json("run", "list", "--json")) == 1


# ---- GraphQL -----------------------------------------------------------------------------------------
# ---- the daemon --------------------------------------------------------------------------------------
@pytest.fixture
def harness(daemon_harness):
    return daemon_harness(SCHEDULES)


def test_launching_with_forged_tick_tags_is_refused(harness):
    with pytest.raises(ReservedTagError, match="runyard/run_key.* is a reserved tag"):
        launch_from_location(harness.instance, harness.location, "shown", {"ops": {"show": {"config": {"n": 1}}}},
                             tags={SCHEDULE_TAG: "every5", RUN_KEY_TAG: f"every5:{T0:.0f}", TICK_TAG: "1"})
    assert harness.instance.storage.get_runs() == []


def test_a_forged_run_in_storage_does_not_suppress_the_ticks_run(harness):
    """An attacker who can write runs (here straight into storage, past every entry point) guesses
    the next tick's id and run key: the daemon does not adopt that run."""
    storage = harness.instance.storage
    forged = harness.instance.create_run(
        job_name="shown", run_config={"ops": {"show": {"config": {"n": 666}}}},
        tags={SCHEDULE_TAG: "every5", RUN_KEY_TAG: f"every5:{T0:.0f}", TICK_TAG: "1"})
    tick = harness.daemon.schedule_tick(harness.location, "every5", T0)
    assert tick.id == 1 and tick.status == "SUCCESS", tick
    (run_id,) = tick.run_ids
    assert run_id != forged.run_id
    assert harness.suite.wait_finished(run_id).status == RunStatus.SUCCESS
    assert harness.suite.out_lines("ran") == ["5"]  # the tick's run ran, the forged one did not
    assert storage.get_run(forged.run_id).status == RunStatus.NOT_STARTED


def test_a_run_request_with_reserved_tags_fails_the_tick(harness):
    tick = harness.daemon.schedule_tick(harness.location, "sneaky", T0)
    assert tick.status == "FAILURE" and tick.run_ids == [] and "runyard/sensor" in tick.error, tick
    assert harness.instance.storage.get_runs(RunFilter(tags={"runyard/sensor": "fake"})) == []


class _Crash(BaseException):
    """The daemon dying mid-tick (not an error the tick records)."""


def test_a_tick_retried_after_a_crash_creates_the_run_it_recorded(harness, monkeypatch):
    """The daemon records the run id on the tick and claims the run key before creating the run; a
    daemon that dies in between leaves the key claimed: the retry creates that very run."""
    import runyard.operations.launch as launch

    real = launch.create_from_location
    monkeypatch.setattr(launch, "create_from_location", lambda *a, **k: (_ for _ in ()).throw(_Crash()))
    with pytest.raises(_Crash):
        harness.daemon.schedule_tick(harness.location, "every5", T0)
    (stored,) = harness.instance.storage.get_ticks("every5")
    assert stored.status == "STARTED" and stored.run_ids == []
    monkeypatch.setattr(launch, "create_from_location", real)
    retried = harness.daemon.schedule_tick(harness.location, "every5", T0)
    assert retried.status == "SUCCESS" and len(retried.run_ids) == 1, retried
    assert harness.suite.wait_finished(retried.run_ids[0]).status == RunStatus.SUCCESS
    assert len(harness.runs(SCHEDULE_TAG, "every5")) == 1


def test_python_api_refuses_reserved_tags(harness):
    from runyard import execute_job

    _, job = harness.suite.load_job(harness.defs, "shown")
    with pytest.raises(ReservedTagError, match=re.escape(TICK_TAG)):
        execute_job(job, instance=harness.instance, run_config={"ops": {"show": {"config": {"n": 1}}}},
                    tags={TICK_TAG: "1"})
    assert harness.instance.storage.get_runs() == []


def test_a_job_declaring_reserved_tags_is_refused_at_launch(harness):
    config = {"ops": {"show": {"config": {"n": 1}}}}
    with pytest.raises(ReservedTagError, match="job 'forged_job'.*runyard/schedule"):
        launch_from_location(harness.instance, harness.location, "forged_job", config)
    from runyard import execute_job

    _, job = harness.suite.load_job(harness.defs, "forged_job")
    with pytest.raises(ReservedTagError, match="runyard/schedule"):
        execute_job(job, instance=harness.instance, run_config=config)
    assert harness.instance.storage.get_runs() == []
