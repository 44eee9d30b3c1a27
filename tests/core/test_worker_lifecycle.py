"""Run workers as real processes: terminating a run, SIGTERM sent straight to a worker, and a worker
killed with SIGKILL that run monitoring (``runyard run health``) finds dead.

Needs: Linux /proc, real signals, real subprocesses (workers launched by the ``process`` launcher).
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from runyard.storage.records import FINISHED_STATUSES
from runyard.testing import pid_gone as gone


@pytest.fixture
def started_workers():
    """Pids of run workers a test launched; any still running at the end are killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def launch_sleeper(cli, sample_defs, waiting_config, instance, wait_for, started_workers):
    """Launch the ``waiting`` job sleeping 60 s; return (run_id, worker pid) once its op runs."""

    def launch() -> tuple[str, int]:
        proc = cli.ok("job", "launch", "-f", sample_defs, "-j", "waiting", "-c", waiting_config(seconds=60))
        run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
        pid = cli.json("run", "show", run_id, "--json")["launcher_info"]["pid"]
        started_workers.append(pid)

        def op_running() -> bool:
            return any(e.message == "waiting" for e in instance.storage.get_events(run_id, step_key="wait"))

        wait_for(op_running, timeout=20, what="the sleeping op to start")
        assert instance.get_run(run_id).status.value == "STARTED"
        assert not gone(pid)
        return run_id, pid

    return launch


def run_event_types(instance, run_id: str) -> list[str]:
    return [str(e.event_type) for e in instance.storage.get_events(run_id)]


def test_run_terminate_cancels_a_sleeping_run_and_stops_its_worker(cli, instance, launch_sleeper, wait_for):
    run_id, pid = launch_sleeper()
    proc = cli.ok("run", "terminate", run_id)
    assert f"Run {run_id} is CANCELED." in proc.stdout
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "CANCELED"
    assert run["end_time"] is not None
    kinds = run_event_types(instance, run_id)
    assert kinds.index("RUN_CANCELING") < kinds.index("RUN_CANCELED")
    assert kinds[-1] == "RUN_CANCELED"
    assert "RUN_SUCCESS" not in kinds and "RUN_FAILURE" not in kinds
    assert [s["status"] for s in run["steps"]] == ["FAILURE"]  # the op was interrupted, not finished
    wait_for(lambda: gone(pid), timeout=10, what=f"worker {pid} to exit")
    assert cli.json("run", "list", "--status", "STARTED", "--json") == []


def test_sigterm_to_the_worker_cancels_the_run(cli, instance, launch_sleeper, wait_for, home):
    run_id, pid = launch_sleeper()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: instance.get_run(run_id).status in FINISHED_STATUSES, timeout=15,
             what="the run to finish after SIGTERM")
    assert str(instance.get_run(run_id).status) == "CANCELED"
    events = instance.storage.get_events(run_id)
    kinds = [str(e.event_type) for e in events]
    assert kinds.count("RUN_CANCELING") == 1 and kinds.count("RUN_CANCELED") == 1
    assert kinds.index("RUN_CANCELING") < kinds.index("RUN_CANCELED") == len(kinds) - 1
    canceling = events[kinds.index("RUN_CANCELING")]
    assert "SIGTERM" in canceling.message
    wait_for(lambda: gone(pid), timeout=10, what=f"worker {pid} to exit")
    log = (home / "logs" / "runs" / f"{run_id}.log").read_text()
    assert f"run {run_id} finished: CANCELED" in log


def test_sigkill_worker_is_found_dead_by_run_health(cli, instance, launch_sleeper, wait_for):
    run_id, pid = launch_sleeper()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), timeout=10, what=f"worker {pid} to die")
    assert str(instance.get_run(run_id).status) == "STARTED"  # nobody has noticed yet

    assert cli.json("run", "health", "--json") == {run_id: "dead"}

    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "FAILURE"
    assert run["end_time"] is not None
    failures = [e for e in instance.storage.get_events(run_id) if str(e.event_type) == "RUN_FAILURE"]
    assert len(failures) == 1
    assert f"process {pid}" in failures[0].message
    assert f"process {pid}" in failures[0].data["reason"]
    # storage stays consistent: nothing in progress, later checks change nothing
    assert cli.json("run", "list", "--status", "STARTED", "--json") == []
    assert [r["run_id"] for r in cli.json("run", "list", "--status", "FAILURE", "--json")] == [run_id]
    assert cli.json("run", "health", "--json") == {}
    assert cli.json("run", "health", run_id, "--json") == {run_id: "finished"}
    proc = cli("run", "terminate", run_id)
    assert proc.returncode == 1 and "already finished (FAILURE)" in proc.stderr
    assert [str(e.event_type) for e in instance.storage.get_events(run_id)].count("RUN_FAILURE") == 1


def test_run_health_of_a_live_worker(cli, instance, launch_sleeper):
    run_id, pid = launch_sleeper()
    assert cli.json("run", "health", "--json") == {run_id: "running"}
    assert str(instance.get_run(run_id).status) == "STARTED"
    cli.ok("run", "terminate", run_id)


def test_deleting_an_in_progress_run_is_refused(cli, launch_sleeper):
    run_id, _ = launch_sleeper()
    proc = cli("run", "delete", run_id, "--yes")
    assert proc.returncode == 1
    assert f"Run {run_id} is STARTED; terminate it before deleting it." in proc.stderr
    cli.ok("run", "terminate", run_id)
    cli.ok("run", "delete", run_id, "--yes")
    assert cli.json("run", "list", "--json") == []


def test_launch_wait_notices_a_dead_worker(cli, sample_defs, waiting_config, instance, wait_for,
                                           started_workers):
    proc = cli.popen("job", "launch", "-f", sample_defs, "-j", "waiting", "-c", waiting_config(seconds=60),
                     "--wait")
    try:
        line = proc.stdout.readline()
        run_id = re.search(r"Launched run ([0-9a-f]{32})", line).group(1)

        def worker_pid():
            run = instance.get_run(run_id)
            running = any(e.message == "waiting" for e in instance.storage.get_events(run_id, step_key="wait"))
            return running and run.launcher_info.get("pid")

        pid = wait_for(worker_pid, timeout=20, what="the worker to run the op")
        started_workers.append(pid)
        os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert re.search(r"RUN_FAILURE\s+-\s+Run worker died: process \d+", out)
        assert f"Run {run_id} FAILURE" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_sigterm_runyard_did_not_ask_for_lets_the_launcher_say_why(cli, instance, sample_defs, waiting_config,
                                                                     wait_for, started_workers):
    """With RUNYARD_STOP_REASON_WAIT_SECONDS (what the k8s launcher sets), a worker stopped from outside
    waits for its launcher to finish the run with the reason, and then only tears down: the run stays
    FAILURE with that reason, never CANCELED."""
    from runyard.execution.run_worker import STOP_REASON_WAIT_ENV
    from runyard.storage.records import RunStatus

    proc = cli.ok("job", "launch", "-f", sample_defs, "-j", "waiting", "-c", waiting_config(seconds=60),
                  env={STOP_REASON_WAIT_ENV: "5"})
    run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    pid = cli.json("run", "show", run_id, "--json")["launcher_info"]["pid"]
    started_workers.append(pid)
    wait_for(lambda: any(e.message == "waiting" for e in instance.storage.get_events(run_id, step_key="wait")),
             timeout=20, what="the sleeping op to start")
    os.kill(pid, signal.SIGTERM)
    # the step is interrupted and its failure written before the worker waits
    wait_for(lambda: any(str(e.event_type) == "STEP_FAILURE" for e in instance.storage.get_events(run_id)),
             timeout=10, what="the interrupted step's failure")
    assert instance.get_run(run_id).status == RunStatus.STARTED and not gone(pid)
    assert instance.transition(instance.get_run(run_id), [RunStatus.STARTED], RunStatus.FAILURE,
                               "Job past its deadline.", data={"reason": "deadline_exceeded"})
    wait_for(lambda: gone(pid), timeout=10, what=f"worker {pid} to exit")
    run = instance.get_run(run_id)
    assert run.status == RunStatus.FAILURE
    kinds = run_event_types(instance, run_id)
    assert "RUN_CANCELING" not in kinds and "RUN_CANCELED" not in kinds
    assert instance.storage.get_events(run_id, event_types=["RUN_FAILURE"])[0].data["reason"] == "deadline_exceeded"
