"""Retention (``retention.runs_days``): the daemon deletes finished runs older than the limit, with
their events and the local files runyard wrote for them, and never a run that is queued or in
progress; the real ``runyard daemon`` prunes at start and heartbeats the loop.

Needs: nothing beyond Python and SQLite.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runyard.daemon import Daemon
from runyard.storage.records import Event, EventType, RunRecord, RunStatus
from runyard.testing import SuiteHome, wait_until

DAY = 86400.0


@pytest.fixture
def suite(tmp_path):
    s = SuiteHome(tmp_path, {"retention": {"runs_days": 30, "batch_size": 2}})
    yield s
    s.close()


def old_run(suite, status: RunStatus, age_days: float, *, with_files: bool = False) -> str:
    run = RunRecord(run_id=f"r{len(suite.instance.storage.get_runs())}x{status.value.lower()}", job_name="etl",
                    status=status)
    run.created_at = time.time() - age_days * DAY
    suite.instance.storage.add_run(run, [Event(run.run_id, EventType.ENGINE_EVENT, "hello")])
    if with_files:
        home = Path(suite.instance.home)
        for path in (home / "storage" / run.run_id / "step" / "result",
                     home / "logs" / "compute" / run.run_id / "step.out",
                     home / "logs" / "runs" / f"{run.run_id}.log"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    return run.run_id


def test_prunes_only_old_finished_runs_with_their_files(suite):
    finished = (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED)
    old = {s: old_run(suite, s, 45, with_files=True) for s in finished}
    kept = [old_run(suite, RunStatus.QUEUED, 45), old_run(suite, RunStatus.STARTED, 45),
            old_run(suite, RunStatus.SUCCESS, 10, with_files=True), old_run(suite, RunStatus.NOT_STARTED, 45)]
    daemon = Daemon(suite.instance)
    assert daemon.lease.tick()
    try:
        deleted = daemon.prune_runs()
    finally:
        daemon.stop()
    assert sorted(deleted) == sorted(old.values())  # in batches of 2
    storage = suite.instance.storage
    for run_id in old.values():
        assert storage.get_run(run_id) is None and storage.get_events(run_id) == []
        home = Path(suite.instance.home)
        assert not (home / "storage" / run_id).exists()
        assert not (home / "logs" / "compute" / run_id).exists()
        assert not (home / "logs" / "runs" / f"{run_id}.log").exists()
    for run_id in kept:
        assert storage.get_run(run_id) is not None and storage.get_events(run_id)
    assert (Path(suite.instance.home) / "storage" / kept[2] / "step" / "result").exists()


def test_a_standby_prunes_nothing(suite):
    run_id = old_run(suite, RunStatus.SUCCESS, 90)
    leader, standby = Daemon(suite.instance), Daemon(suite.instance)
    assert leader.lease.tick() and not standby.lease.tick()
    try:
        assert standby.prune_runs() == []
        assert suite.instance.storage.get_run(run_id) is not None
    finally:
        standby.stop()
        leader.stop()


def test_bad_retention_config_names_the_key(cli, home):
    (home / "runyard.yaml").write_text("retention:\n  runs_days: 0\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2 and "retention.runs_days" in proc.stderr
    (home / "runyard.yaml").write_text("retention:\n  runs_days: 7\n  interval_seconds: -1\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2 and "retention.interval_seconds" in proc.stderr


def test_the_daemon_process_prunes_at_start_and_heartbeats(cli, home):
    from runyard import Instance

    (home / "runyard.yaml").write_text("retention:\n  runs_days: 1\n  interval_seconds: 3600\n")
    inst = Instance.open(home=str(home))
    try:
        old = RunRecord(run_id="old1", job_name="etl", status=RunStatus.SUCCESS)
        old.created_at = time.time() - 3 * DAY
        new = RunRecord(run_id="new1", job_name="etl", status=RunStatus.SUCCESS)
        inst.storage.add_run(old)
        inst.storage.add_run(new)
        daemon = cli.popen("daemon")
        try:
            wait_until(lambda: inst.storage.get_run("old1") is None, timeout=60, what="the old run to be pruned")
            assert inst.storage.get_run("new1") is not None
            status = wait_until(lambda: next((d for d in cli.json("daemon", "status", "--json")["daemons"]
                                              if "retention" in d["loops"]), None), timeout=30,
                                what="a retention heartbeat")
            assert status["loops"]["retention"]["last_error"] is None
        finally:
            daemon.terminate()
            daemon.communicate(timeout=30)
        assert daemon.returncode == 0
    finally:
        inst.dispose()


def test_run_delete_removes_the_runs_files_unless_kept(cli, home):
    from runyard import Instance

    inst = Instance.open(home=str(home))
    try:
        for run_id in ("gone1", "kept1"):
            inst.storage.add_run(RunRecord(run_id=run_id, job_name="etl", status=RunStatus.SUCCESS))
            for path in (home / "storage" / run_id / "s" / "result", home / "logs" / "compute" / run_id / "s.err",
                         home / "logs" / "runs" / f"{run_id}.log"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("x")
    finally:
        inst.dispose()
    cli.ok("run", "delete", "gone1", "--yes")
    cli.ok("run", "delete", "kept1", "--yes", "--keep-files")
    assert not (home / "storage" / "gone1").exists() and not (home / "logs" / "compute" / "gone1").exists()
    assert not (home / "logs" / "runs" / "gone1.log").exists()
    assert (home / "storage" / "kept1" / "s" / "result").exists() and (home / "logs" / "runs" / "kept1.log").exists()
    assert cli("run", "show", "gone1").returncode != 0
