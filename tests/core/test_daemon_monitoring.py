"""Run monitoring: start timeout, cancel timeout, the ``runyard/max_runtime`` tag and the launcher's
health check. A timed-out worker is terminated (checked through /proc), not just relabelled.

Needs: nothing beyond Python, SQLite and Linux's /proc; workers are real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from runyard.daemon import Daemon
from runyard.launchers import procinfo
from runyard.storage.records import RunStatus
from runyard.testing import SuiteHome, pid_gone, wait_until

HELD = """
@op
def hold() -> None:
    record("started", os.getpid())
    time.sleep(600)


@job
def held():
    hold()


defs = Definitions(jobs=[held])
"""


@pytest.fixture
def suite(tmp_path):
    s = SuiteHome(tmp_path, {"run_launcher": {"process": {"warm": False, "grace_period_seconds": 2}},
                             "run_monitoring": {"start_timeout_seconds": 0.5, "cancel_timeout_seconds": 0.5,
                                                "poll_interval_seconds": 0.2}})
    yield s
    s.close()


@pytest.fixture
def daemon(suite):
    d = Daemon(suite.instance)
    assert d.lease.tick()
    yield d
    d.stop()


def fake_worker(suite, status: RunStatus):
    """A run stuck in ``status`` whose 'worker' is a sleeping process we started."""
    inst = suite.instance
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    run = inst.create_run(job_name="stuck")
    assert inst.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING)
    inst.storage.update_run(run.run_id, launcher_info={"pid": proc.pid, "pid_start": procinfo.start_ticks(proc.pid)})
    if status == RunStatus.CANCELING:
        assert inst.transition(run, [RunStatus.STARTING], RunStatus.CANCELING)
    return run, proc


def test_a_run_stuck_starting_fails_and_its_worker_is_terminated(suite, daemon):
    run, proc = fake_worker(suite, RunStatus.STARTING)
    try:
        assert daemon.run_monitoring() == []  # not timed out yet
        time.sleep(0.7)
        assert daemon.run_monitoring() == [(run.run_id, "start_timeout")]
        final = suite.instance.get_run(run.run_id)
        assert final.status == RunStatus.FAILURE
        assert "start_timeout_seconds" in suite.events(run.run_id, "RUN_FAILURE")[0].message
        assert proc.wait(timeout=10) is not None
    finally:
        proc.kill()


def test_a_run_stuck_canceling_is_canceled_and_its_worker_terminated(suite, daemon):
    run, proc = fake_worker(suite, RunStatus.CANCELING)
    try:
        time.sleep(0.7)
        assert daemon.run_monitoring() == [(run.run_id, "cancel_timeout")]
        assert suite.instance.get_run(run.run_id).status == RunStatus.CANCELED
        assert proc.wait(timeout=10) is not None
    finally:
        proc.kill()


def _launch_held(suite, tags=None):
    defs = suite.write_defs(HELD)
    run, _ = suite.create_run(defs, "held", {})
    if tags:
        suite.instance.storage.update_run(run.run_id, tags=tags)
    suite.instance.submit_run(suite.instance.get_run(run.run_id))
    pid = int(wait_until(lambda: suite.out_lines("started"), timeout=60, what="the op to start")[0])
    return run, pid


def test_max_runtime_tag_terminates_the_run(suite):
    run, pid = _launch_held(suite, {"runyard/max_runtime": "1"})
    with Daemon(suite.instance) as d:
        assert d.lease.is_leader
        final = suite.wait_finished(run.run_id, timeout=60)
    assert final.status == RunStatus.CANCELED, suite.describe(run.run_id)
    assert any("max runtime" in e.message for e in suite.events(run.run_id, "ENGINE_EVENT"))
    wait_until(lambda: pid_gone(pid), timeout=10, what="the op's process to end")
    worker = final.launcher_info["pid"]
    wait_until(lambda: pid_gone(worker), timeout=10, what="the worker to end")


def test_a_dead_worker_is_marked_failed_with_the_reason(suite, daemon):
    run, _ = _launch_held(suite)
    worker = wait_until(lambda: suite.instance.get_run(run.run_id).launcher_info.get("pid"), what="worker pid")
    wait_until(lambda: suite.instance.get_run(run.run_id).status == RunStatus.STARTED, what="STARTED")
    os.killpg(worker, signal.SIGKILL)
    wait_until(lambda: pid_gone(worker), timeout=10, what="the worker to die")
    assert wait_until(lambda: daemon.run_monitoring(), timeout=20, what="monitoring to act") == [(run.run_id, "dead")]
    final = suite.instance.get_run(run.run_id)
    assert final.status == RunStatus.FAILURE
    assert "died" in suite.events(run.run_id, "RUN_FAILURE")[0].message


def test_monitoring_off_does_nothing(tmp_path):
    s = SuiteHome(tmp_path, {"run_monitoring": {"enabled": False}, "run_launcher": {"process": {"warm": False}}})
    with Daemon(s.instance) as d:
        assert d._scheduler.get_job("monitoring") is None
    s.close()
