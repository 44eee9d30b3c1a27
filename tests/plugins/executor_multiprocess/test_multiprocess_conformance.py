"""runyard-executor-multiprocess: the executor conformance suite, plus what only an executor with step
processes can get wrong — config validation, crashing and exiting step processes, outputs that
cannot be pickled, tag concurrency limits, and terminating a run with several steps in flight.

Needs: runyard-executor-multiprocess installed (the tox env installs it), real processes and
signals, Linux /proc.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runyard.testing import live_pids_in_group, pid_gone
from runyard.testing.executor import ExecutorConformanceSuite


class TestMultiprocessExecutor(ExecutorConformanceSuite):
    @pytest.fixture
    def executor_run_config(self):
        return {"multiprocess": {"max_concurrent": 2}}


class TestMultiprocessExecutorOneAtATime(ExecutorConformanceSuite):
    @pytest.fixture
    def executor_run_config(self):
        return {"multiprocess": {"max_concurrent": 1}}


# ---- helpers -------------------------------------------------------------------------------------

DEFS = '''
import ctypes
import os
import signal
import sys
import threading
import time

from runyard import Config, Definitions, job, op


@op
def start() -> int:
    return 1


@op
def after(x: int) -> None:
    print("after ran")


@op
def independent() -> int:
    time.sleep(0.5)
    return 2


@op
def independent_after(x: int) -> int:
    return x + 1


@op
def segfault(x: int) -> int:
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x


@op
def sigkill(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@op
def exits(x: int) -> int:
    sys.exit(3)


@op
def hard_exit(x: int) -> int:
    os._exit(4)


@op
def returns_lambda() -> object:
    return lambda: 1


@op
def returns_lock() -> object:
    return threading.Lock()


def crash_job(name, crashing_op):
    @job(name=name)
    def crash():
        after(crashing_op(start()))
        independent_after(independent())
    return crash


@job
def unpicklable():
    returns_lambda()
    returns_lock()
    independent_after(independent())


def tagged(i, tags):
    @op(name=f"tagged_{i}", tags=tags)
    def _op() -> None:
        time.sleep(0.4)
    return _op


DB = [tagged(i, {"db": "pg"}) for i in range(4)]
OTHER_DB = [tagged(i + 4, {"db": "mysql"}) for i in range(2)]


@op
def untagged() -> None:
    time.sleep(0.4)


@job
def limited():
    for o in DB + OTHER_DB:
        o()
    untagged()


class SleepConfig(Config):
    seconds: float = 120


@op
def sleep_a(config: SleepConfig) -> None:
    time.sleep(config.seconds)


@op
def sleep_b(config: SleepConfig) -> None:
    time.sleep(config.seconds)


@job
def two_sleepers():
    sleep_a()
    sleep_b()


defs = Definitions(jobs=[crash_job("segfaulting", segfault), crash_job("killed", sigkill),
                         crash_job("exiting", exits), crash_job("hard_exiting", hard_exit),
                         unpicklable, limited, two_sleepers])
'''


@pytest.fixture
def defs(write_defs) -> Path:
    return write_defs(DEFS)


@pytest.fixture
def config_file(tmp_path):
    def write(config: dict) -> Path:
        path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
        path.write_text(json.dumps(config))
        return path

    return write


def mp(**config) -> dict:
    return {"execution": {"multiprocess": config}}


def run_id_of(output: str) -> str:
    return re.search(r"run ([0-9a-f]{32})", output).group(1)


def events(instance, run_id: str, event_type: str | None = None, step_key: str | None = None):
    return [e for e in instance.storage.get_events(run_id, step_key=step_key)
            if event_type is None or str(e.event_type) == event_type]


def execute(cli, defs, config_file, job_name: str, config: dict):
    proc = cli("job", "execute", "-f", defs, "-j", job_name, "-c", config_file(config))
    return proc, run_id_of(proc.stdout)


# ---- config --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("command", ["execute", "launch"])
def test_max_concurrent_below_one_is_rejected_before_a_run_exists(cli, defs, config_file, value, command):
    proc = cli("job", command, "-f", defs, "-j", "limited", "-c", config_file(mp(max_concurrent=value)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == ("Error: run config: execution.multiprocess.max_concurrent: Input should be "
                                   f"greater than or equal to 1 (got {value})")
    assert cli.json("run", "list", "--json") == []


def test_unknown_config_key_and_bad_tag_limit(cli, defs, config_file):
    proc = cli("job", "execute", "-f", defs, "-j", "limited", "-c", config_file(mp(max_concurent=2)))
    assert proc.returncode == 2
    assert "execution.multiprocess.max_concurent: unknown key" in proc.stderr
    proc = cli("job", "execute", "-f", defs, "-j", "limited", "-c",
               config_file(mp(tag_concurrency_limits=[{"key": "db", "limit": -1}])))
    assert proc.returncode == 2
    assert ("execution.multiprocess.tag_concurrency_limits[0].limit: Input should be greater than or equal "
            "to 0") in proc.stderr
    assert cli.json("run", "list", "--json") == []


def test_unknown_executor_lists_the_installed_ones(cli, defs, config_file):
    proc = cli("job", "execute", "-f", defs, "-j", "limited", "-c", config_file({"execution": {"multiproces": {}}}))
    assert proc.returncode == 2
    assert "execution.multiproces: unknown executor 'multiproces'" in proc.stderr
    assert re.search(r"Installed executors: in_process, multiprocess\b", proc.stderr)
    assert cli.json("run", "list", "--json") == []


def test_multiprocess_not_installed_names_the_distribution(cli, defs, config_file):
    proc = cli("job", "execute", "-f", defs, "-j", "limited", "-c", config_file(mp()),
               env={"RUNYARD_DISABLE_PLUGINS": "multiprocess"})
    assert proc.returncode == 2
    assert "unknown executor 'multiprocess'. Installed executors: in_process." in proc.stderr
    assert "install the runyard-executor-multiprocess distribution" in proc.stderr
    assert cli.json("run", "list", "--json") == []


# ---- step processes that crash or exit -----------------------------------------------------------

@pytest.mark.parametrize("job_name, step, reason", [
    ("segfaulting", "segfault", "killed by signal 11 (SIGSEGV) before reporting an outcome"),
    ("killed", "sigkill", "killed by signal 9 (SIGKILL) before reporting an outcome"),
    ("hard_exiting", "hard_exit", "exited with code 4 before reporting an outcome"),
    ("exiting", "exits", "called sys.exit(3); ops must return or raise"),
])
def test_a_crashing_step_fails_alone(cli, instance, defs, config_file, job_name, step, reason):
    proc, run_id = execute(cli, defs, config_file, job_name, mp(max_concurrent=2))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = events(instance, run_id, "STEP_FAILURE")
    assert [e.step_key for e in failures] == [step]
    assert reason in failures[0].data["error"]
    assert [e.step_key for e in events(instance, run_id, "STEP_SKIPPED")] == ["after"]
    succeeded = {e.step_key for e in events(instance, run_id, "STEP_SUCCESS")}
    assert succeeded == {"start", "independent", "independent_after"}
    assert instance.get_run(run_id).status.value == "FAILURE"
    assert f"Run {run_id} FAILURE" in proc.stdout


def test_an_output_that_cannot_be_pickled_fails_its_step_clearly(cli, instance, defs, config_file):
    proc, run_id = execute(cli, defs, config_file, "unpicklable", mp(max_concurrent=3))
    assert proc.returncode == 1
    failures = {e.step_key: e.data["error"] for e in events(instance, run_id, "STEP_FAILURE")}
    assert set(failures) == {"returns_lambda", "returns_lock"}
    for step, error in failures.items():
        assert error.startswith(f"the IO manager could not store output 'result' of op '{step}': ")
    assert "lambda" in failures["returns_lambda"]
    assert "lock" in failures["returns_lock"]
    succeeded = {e.step_key for e in events(instance, run_id, "STEP_SUCCESS")}
    assert succeeded == {"independent", "independent_after"}


RETRY_STORM = '''
from runyard import RetryPolicy, job, op


def make(i):
    @op(name=f"f{i}", retry_policy=RetryPolicy(max_retries=15))
    def f(context) -> None:
        if context.retry_number < 15:
            raise RuntimeError("again")
    return f


OPS = [make(i) for i in range(4)]


@job
def storm():
    for o in OPS:
        o()
'''


def test_quick_retries_of_parallel_steps(cli, instance, write_defs, config_file):
    """Regression: an attempt that finished before the fork server's "started" message was read,
    then retried at once, used to take the next attempt's pid (KeyError, run worker crashed)."""
    path = write_defs(RETRY_STORM, "storm.py")
    for _ in range(3):
        proc, run_id = execute(cli, path, config_file, "storm", mp(max_concurrent=4))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for i in range(4):
            starts = [e.data.get("pid") for e in events(instance, run_id, "STEP_START", f"f{i}")]
            assert len(starts) == 1
            assert len(events(instance, run_id, "STEP_RESTARTED", f"f{i}")) == 15


# ---- tag concurrency limits ----------------------------------------------------------------------

def intervals(instance, run_id: str, prefix: str = "") -> dict[str, tuple[float, float]]:
    starts = {e.step_key: e.timestamp for e in events(instance, run_id, "STEP_START")}
    ends = {e.step_key: e.timestamp for e in events(instance, run_id, "STEP_SUCCESS")}
    return {k: (starts[k], ends[k]) for k in starts if k.startswith(prefix)}


def max_overlap(spans) -> int:
    points = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                    key=lambda p: (p[0], p[1]))  # an end before a start at the same instant
    now = peak = 0
    for _, delta in points:
        now += delta
        peak = max(peak, now)
    return peak


def test_tag_concurrency_limits_are_honoured(cli, instance, defs, config_file):
    limits = [{"key": "db", "value": "pg", "limit": 2}, {"key": "db", "limit": 3}]
    proc, run_id = execute(cli, defs, config_file, "limited", mp(max_concurrent=8, tag_concurrency_limits=limits))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spans = intervals(instance, run_id)
    assert len(spans) == 7
    pg = [spans[f"tagged_{i}"] for i in range(4)]
    db = [spans[f"tagged_{i}"] for i in range(6)]
    assert max_overlap(pg) == 2
    assert max_overlap(db) == 3
    assert max_overlap(spans.values()) == 4  # the untagged step was not held back


def test_max_concurrent_is_honoured(cli, instance, defs, config_file):
    proc, run_id = execute(cli, defs, config_file, "limited", mp(max_concurrent=3))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert max_overlap(intervals(instance, run_id).values()) == 3


def test_a_tag_limit_of_zero_skips_those_steps(cli, instance, defs, config_file):
    limits = [{"key": "db", "value": "mysql", "limit": 0}]
    proc, run_id = execute(cli, defs, config_file, "limited", mp(max_concurrent=8, tag_concurrency_limits=limits))
    assert proc.returncode == 1
    skipped = {e.step_key: e.data["reason"] for e in events(instance, run_id, "STEP_SKIPPED")}
    assert skipped == {"tagged_4": "its tag concurrency limit is 0", "tagged_5": "its tag concurrency limit is 0"}
    assert len(events(instance, run_id, "STEP_SUCCESS")) == 5


# ---- termination ---------------------------------------------------------------------------------

def test_run_terminate_stops_every_step_process(cli, instance, defs, config_file, wait_for):
    proc = cli.ok("job", "launch", "-f", defs, "-j", "two_sleepers", "-c",
                  config_file({**mp(max_concurrent=2, grace_period_seconds=2)}))
    run_id = run_id_of(proc.stdout)
    worker = cli.json("run", "show", run_id, "--json")["launcher_info"]["pid"]
    try:
        starts = wait_for(lambda: (lambda s: s if len(s) == 2 else None)(events(instance, run_id, "STEP_START")),
                          timeout=30, what="both steps to start")
        step_pids = {e.data["pid"] for e in starts}
        assert len(step_pids) == 2 and worker not in step_pids
        assert not any(pid_gone(pid) for pid in step_pids)
        proc = cli.ok("run", "terminate", run_id)
        assert f"Run {run_id} is CANCELED." in proc.stdout
        assert instance.get_run(run_id).status.value == "CANCELED"
        wait_for(lambda: all(pid_gone(pid) for pid in step_pids), timeout=15, what="step processes to exit")
        wait_for(lambda: pid_gone(worker), timeout=15, what="the worker to exit")
        wait_for(lambda: not live_pids_in_group(worker), timeout=15, what="the worker's process group to empty")
        failures = {e.step_key for e in events(instance, run_id, "STEP_FAILURE")}
        assert failures == {"sleep_a", "sleep_b"}
        kinds = [str(e.event_type) for e in events(instance, run_id)]
        assert kinds[-1] == "RUN_CANCELED"
    finally:
        from runyard.testing import kill_group

        kill_group(worker)


STUBBORN = '''
import signal
import time

from runyard import job, op


@op
def stubborn(context) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    context.log.info("ignoring SIGTERM")
    time.sleep(120)


@job
def stubborn_job():
    stubborn()
'''


def test_a_step_that_ignores_sigterm_is_killed_and_reported(cli, instance, write_defs, config_file, wait_for):
    path = write_defs(STUBBORN, "stubborn.py")
    proc = cli.ok("job", "launch", "-f", path, "-j", "stubborn_job", "-c",
                  config_file(mp(max_concurrent=2, grace_period_seconds=0.5)))
    run_id = run_id_of(proc.stdout)
    worker = cli.json("run", "show", run_id, "--json")["launcher_info"]["pid"]
    try:
        start = wait_for(lambda: events(instance, run_id, "LOG", "stubborn"), timeout=30, what="the op")
        pid = events(instance, run_id, "STEP_START", "stubborn")[0].data["pid"]
        assert start
        assert f"Run {run_id} is CANCELED." in cli.ok("run", "terminate", run_id).stdout
        wait_for(lambda: pid_gone(pid), timeout=15, what="the stubborn step process to be killed")
        steps = {s["step_key"]: s for s in cli.json("run", "show", run_id, "--json")["steps"]}
        assert steps["stubborn"]["status"] == "FAILURE"
    finally:
        from runyard.testing import kill_group

        kill_group(worker)
