"""``runyard.execution.step_process``: one attempt of one step in a process of its own, its events
straight to storage and its outcome as the last line of stdout (what the ``docker`` and ``k8s``
executors run in their containers and pods), run here as a local process on a SQLite instance.

Needs: nothing but this checkout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from runyard.execution.step_process import OUTCOME_MARKER, parse_outcome
from runyard.storage.records import StepStatus
from runyard.testing import SuiteHome, wait_until

DEFS = """
@op(retry_policy=RetryPolicy(max_retries=2, delay=0.25))
def flaky(context) -> int:
    record("flaky", context.retry_number)
    if context.retry_number < 1:
        raise RuntimeError("not yet")
    return 1


@op
def sleepy() -> None:
    record("sleepy", "started")
    time.sleep(60)


@job
def steps():
    flaky()
    sleepy()
"""


@pytest.fixture
def home(tmp_path):
    suite = SuiteHome(tmp_path)
    yield suite
    suite.close()


def step(home: SuiteHome, run_id: str, key: str, attempt: int):
    return subprocess.run([sys.executable, "-m", "runyard.execution.step_process", run_id, key, str(attempt)],
                          env=home.worker_env(), capture_output=True, text=True, timeout=120)


def test_an_attempt_reports_retry_then_success_and_stamps_its_pid(home):
    run, _ = home.create_run(home.write_defs(DEFS), "steps", {})
    first = step(home, run.run_id, "flaky", 0)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1].startswith(OUTCOME_MARKER)
    outcome = parse_outcome(first.stdout, "flaky", 0)
    assert (outcome.status, outcome.retry_delay, outcome.max_retries) == (StepStatus.RETRY, 0.25, 2)
    second = parse_outcome(step(home, run.run_id, "flaky", 1).stdout, "flaky", 1)
    assert second.status == StepStatus.SUCCESS and second.attempt == 1
    assert home.out_lines("flaky") == ["0", "1"]
    assert home.types(run.run_id, "flaky")[-1] == "STEP_SUCCESS"
    (start,) = home.events(run.run_id, "STEP_START", "flaky")
    assert isinstance(start.data["pid"], int) and start.data["pid"] != os.getpid()


def test_sigterm_interrupts_the_op_and_the_outcome_is_still_reported(home):
    run, _ = home.create_run(home.write_defs(DEFS), "steps", {})
    proc = subprocess.Popen([sys.executable, "-m", "runyard.execution.step_process", run.run_id, "sleepy", "0"],
                            env=home.worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: home.out_lines("sleepy") or proc.poll() is not None, timeout=60, what="the op to start")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    outcome = parse_outcome(out, "sleepy", 0)
    assert outcome.status == StepStatus.FAILURE and outcome.error == "interrupted by termination"
    assert "STEP_FAILURE" in home.types(run.run_id, "sleepy")


def test_a_bad_command_line_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "runyard.execution.step_process", "run-1", "step", "x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "usage: python -m runyard.execution.step_process RUN_ID STEP_KEY ATTEMPT" in proc.stderr
