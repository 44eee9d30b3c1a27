"""Nothing a run starts outlives it, with the in-process executor: the containment suite of
:mod:`runyard.testing.containment` (step success, step failure, terminate, a worker ignoring SIGTERM,
a worker killed with SIGKILL, warm and cold launches), ``runyard job execute``, ``runyard run
terminate`` from another process, run monitoring closing open steps, the health check killing what a
dead worker left in its session, and cold workers of a long-running launcher leaving no zombie
behind.

Needs: Linux /proc, real signals, real subprocesses (workers launched by the ``process`` launcher),
``sh`` and ``sleep``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from runyard.daemon import Daemon
from runyard.daemon.monitoring import run_monitoring
from runyard.launchers import procinfo
from runyard.storage.records import Event, EventType, RunStatus
from runyard.testing import SuiteHome, pid_gone, processes_with_env, wait_until
from runyard.testing.containment import JOBS, MARK, ProcessContainmentSuite


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass


class TestInProcessContainment(ProcessContainmentSuite):
    @pytest.fixture
    def executor_run_config(self):
        return {"in_process": {}}


# ---- runyard job execute: the CLI process is the run worker ---------------------------------------

@pytest.mark.parametrize("job_name, code", [("leaves", 0), ("fails", 1)])
def test_job_execute_leaves_no_process_behind(tmp_path, job_name, code):
    home = SuiteHome(tmp_path)
    mark = str(home.out_dir)
    try:
        defs = home.write_defs(JOBS, name="containment_defs.py")
        proc = subprocess.run([sys.executable, "-m", "runyard", "job", "execute", "-f", str(defs), "-j", job_name],
                              env=home.worker_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, proc.stdout + proc.stderr
        pids = [int(p) for p in home.out_lines("family")]
        assert len(pids) == 3
        if job_name == "leaves":
            assert home.out_lines("alive_in_next_step") == ["0"]
        # the CLI has exited: whatever is left was orphaned to init
        assert not processes_with_env(MARK, mark) and all(pid_gone(p) for p in pids)
    finally:
        kill_all(processes_with_env(MARK, mark))
        home.close()


# ---- the process launcher in a long-running service -------------------------------------------------

QUICK = """
@op
def quick() -> int:
    return 1


@job
def quick_job():
    quick()
"""


def zombie_children() -> set[int]:
    """Our children that exited and were never reaped (``State: Z`` with ``PPid`` == our pid)."""
    found = set()
    for stat in procinfo.processes():
        if stat.ppid == os.getpid() and stat.state == "Z":
            found.add(stat.pid)
    return found


def test_cold_workers_of_a_long_running_launcher_leave_no_zombie(tmp_path):
    home = SuiteHome(tmp_path, {"run_launcher": {"process": {"warm": False}}})
    launcher = home.instance.run_launcher
    launcher.prepare(home.instance)  # as the daemon and the web UI do
    try:
        defs = home.write_defs(QUICK)
        runs = []
        for _ in range(4):
            run, _ = home.create_run(defs, "quick_job", {})
            runs.append(home.instance.submit_run(run))
        workers = set()
        for run in runs:
            finished = home.wait_finished(run.run_id, timeout=60)
            assert finished.status == RunStatus.SUCCESS, home.describe(run.run_id)
            assert finished.launcher_info["mode"] == "cold"
            workers.add(finished.launcher_info["pid"])
        wait_until(lambda: all(pid_gone(w) for w in workers), timeout=30, what="the workers to exit")
        wait_until(lambda: not zombie_children() & workers, timeout=10,
                   what=f"the exited workers {sorted(workers)} to be reaped")
        assert not {pid for pid in procinfo.children(os.getpid()) if pid in workers}
        # what the health check reports of a reaped worker still says how it ended
        assert "exited with code 0" in launcher._exit_reason(runs[0].launcher_info["pid"],
                                                             runs[0].launcher_info["log_path"])
    finally:
        launcher.dispose()
        home.close()


# ---- terminate from another process (the CLI) -------------------------------------------------------

def test_run_terminate_cli_finishes_a_worker_ignoring_sigterm_canceled(tmp_path):
    """``runyard run terminate`` runs in its own process (a new launcher object): when it has to
    SIGKILL the worker, it still leaves the run CANCELED, with no later health check."""
    home = SuiteHome(tmp_path, {"run_launcher": {"process": {"grace_period_seconds": 1}}})
    mark = str(home.out_dir)
    launcher = home.instance.run_launcher
    launcher.prepare(home.instance)
    try:
        defs = home.write_defs(JOBS, name="containment_defs.py")
        for _ in range(2):
            run, _ = home.create_run(defs, "waits", {"ops": {"spawn_and_wait": {"config": {
                "go_file": str(tmp_path / "go"), "ignore_sigterm": True}}}})
            run = home.instance.submit_run(run)
            wait_until(lambda: any(e.message == "family spawned" for e in home.events(run.run_id, "LOG")),  # noqa: B023
                       timeout=60, what="the op to start")
            proc = subprocess.run([sys.executable, "-m", "runyard", "run", "terminate", run.run_id],
                                  env=home.worker_env(), capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert f"Run {run.run_id} is CANCELED." in proc.stdout, proc.stdout + proc.stderr
            assert home.instance.get_run(run.run_id).status == RunStatus.CANCELED
            failure = home.events(run.run_id, "STEP_FAILURE", "spawn_and_wait")
            assert failure and "the run worker died" in failure[-1].data["error"], home.describe(run.run_id)
            wait_until(lambda: not processes_with_env(MARK, mark), timeout=10, what="the run's processes to end")
    finally:
        (tmp_path / "go").touch()
        kill_all(processes_with_env(MARK, mark))
        launcher.dispose()
        home.close()


# ---- run monitoring ---------------------------------------------------------------------------------

def test_monitoring_closes_the_steps_of_a_run_it_finishes(tmp_path):
    home = SuiteHome(tmp_path, {"run_monitoring": {"cancel_timeout_seconds": 0.5}})
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        inst = home.instance
        run = inst.create_run(job_name="stuck")
        assert inst.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING)
        inst.storage.update_run(run.run_id, launcher_info={"pid": worker.pid,
                                                           "pid_start": procinfo.start_ticks(worker.pid)})
        assert inst.transition(run, [RunStatus.STARTING], RunStatus.STARTED)
        inst.storage.store_events([Event(run_id=run.run_id, event_type=EventType.STEP_START, step_key="a"),
                                   Event(run_id=run.run_id, event_type=EventType.STEP_START, step_key="b"),
                                   Event(run_id=run.run_id, event_type=EventType.STEP_SUCCESS, step_key="b")])
        assert inst.transition(run, [RunStatus.STARTED], RunStatus.CANCELING)
        with Daemon(inst) as daemon:
            assert daemon.lease.is_leader
            assert run_monitoring(daemon, now=time.time() + 5) == [(run.run_id, "cancel_timeout")]
        assert inst.get_run(run.run_id).status == RunStatus.CANCELED
        failures = home.events(run.run_id, "STEP_FAILURE")
        assert [e.step_key for e in failures] == ["a"]
        assert "cancel_timeout_seconds" in failures[0].data["error"]
        assert failures[0].data["reason"] == "cancel_timeout"
        assert worker.wait(timeout=10) is not None
    finally:
        worker.kill()
        worker.wait()
        home.close()


def test_health_check_kills_what_a_dead_worker_left_in_its_session(tmp_path):
    """A worker launched by a one-shot CLI (its parent is gone) and then SIGKILLed: nobody waits for
    it, so the health check (``runyard run health``, run monitoring) kills what is left in its
    session when it finds it dead."""
    home = SuiteHome(tmp_path)
    mark = str(home.out_dir)
    try:
        defs = home.write_defs(JOBS, name="containment_defs.py")
        config = tmp_path / "config.json"
        config.write_text('{"ops": {"spawn_and_wait": {"config": {"go_file": "%s"}}}}' % (tmp_path / "go"))
        proc = subprocess.run([sys.executable, "-m", "runyard", "job", "launch", "-f", str(defs), "-j", "waits",
                               "-c", str(config)], env=home.worker_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run = home.instance.storage.get_runs()[0]
        wait_until(lambda: any(e.message == "family spawned" for e in home.events(run.run_id, "LOG")),
                   timeout=60, what="the op to start its processes")
        worker = home.instance.get_run(run.run_id).launcher_info["pid"]
        bg, daemon, sh = (int(p) for p in home.out_lines("family"))
        os.kill(worker, 9)
        wait_until(lambda: pid_gone(worker), timeout=10, what="the killed worker to be gone")
        assert not pid_gone(sh) and not pid_gone(bg)  # orphaned to init, nobody cleaned up yet
        assert home.instance.check_run_health(run.run_id) == "dead"
        wait_until(lambda: pid_gone(sh) and pid_gone(bg), timeout=10, what="the dead worker's session to be killed")
        # the daemon had left the session: out of reach once the cold worker is gone (docs/run-worker.md)
        assert set(processes_with_env(MARK, mark)) <= {daemon}
        failure = home.events(run.run_id, "STEP_FAILURE", "spawn_and_wait")
        assert failure and failure[-1].data["reason"] == "run_worker_died", home.describe(run.run_id)
    finally:
        (tmp_path / "go").touch()
        kill_all(processes_with_env(MARK, mark))
        home.close()
