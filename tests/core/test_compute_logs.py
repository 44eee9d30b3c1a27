"""Compute logs: each step attempt's stdout and stderr captured to files at the fd level, announced
with LOGS_CAPTURED, readable (and followable) with ``runyard run logs RUN_ID --step KEY`` while the
step still runs — with the ``in_process`` and the ``multiprocess`` executor.

Needs: real subprocesses (the CLI, launched run workers, ``sh`` started from an op), and the
runyard-executor-multiprocess distribution for the ``multiprocess`` cases (the core tox env
installs it for this module).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runyard.execution.compute_logs import capture_output

EXECUTORS = {"in_process": {}, "multiprocess": {"max_concurrent": 2}}

DEFS = '''
import os
import subprocess
import sys
import time

from runyard import Config, RetryPolicy, job, op


@op
def noisy(context) -> int:
    print("print to stdout")
    print("print to stderr", file=sys.stderr)
    os.write(1, b"os.write to fd 1\\n")
    os.write(2, b"os.write to fd 2\\n")
    subprocess.run(["sh", "-c", "echo child stdout; echo child stderr >&2"], check=True)
    context.log.info("an event, not output")
    return 1


@op
def quiet(x: int) -> int:
    print(f"quiet got {x}")
    return x


@job
def noise():
    quiet(noisy())


@op(retry_policy=RetryPolicy(max_retries=2))
def flaky(context) -> None:
    print(f"flaky attempt {context.retry_number + 1}")
    if context.retry_number < 2:
        raise RuntimeError("not yet")


@job
def retrying():
    flaky()


class WaitConfig(Config):
    go_file: str


@op
def waiter(config: WaitConfig) -> None:
    print("before the wait")
    print("complaint before the wait", file=sys.stderr)
    while not os.path.exists(config.go_file):
        time.sleep(0.02)
    print("after the wait")


@job
def waiting():
    waiter()
'''


@pytest.fixture(params=list(EXECUTORS))
def executor(request) -> str:
    if request.param == "multiprocess":  # the tox env installs it; a missing plugin fails, never skips
        import runyard_executor_multiprocess  # noqa: F401
    return request.param


@pytest.fixture
def defs(write_defs) -> Path:
    return write_defs(DEFS)


@pytest.fixture
def run_config(tmp_path):
    """``run_config(executor, **op_config)``: a run config file selecting the executor."""

    def write(executor: str, ops: dict | None = None) -> Path:
        config = {"execution": {executor: EXECUTORS[executor]}}
        if ops:
            config["ops"] = ops
        path = tmp_path / f"run-{executor}-{len(list(tmp_path.glob('run-*.yaml')))}.yaml"
        path.write_text(json.dumps(config))
        return path

    return write


def run_id_of(output: str) -> str:
    return re.search(r"run ([0-9a-f]{32})", output).group(1)


def captured_events(instance, run_id: str):
    return [e for e in instance.storage.get_events(run_id) if str(e.event_type) == "LOGS_CAPTURED"]


def test_print_fd_writes_and_child_processes_are_captured(cli, home, instance, defs, run_config, executor):
    proc = cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config(executor))
    run_id = run_id_of(proc.stdout)
    base = home / "logs" / "compute" / run_id
    out = (base / "noisy.out").read_text()
    err = (base / "noisy.err").read_text()
    assert out.splitlines()[1:] == ["print to stdout", "os.write to fd 1", "child stdout"]
    assert err.splitlines()[1:] == ["print to stderr", "os.write to fd 2", "child stderr"]
    assert re.match(rf"=== runyard: step 'noisy' of run {run_id}, attempt 1, pid \d+, ", out)
    assert (base / "quiet.out").read_text().splitlines()[1:] == ["quiet got 1"]
    # one LOGS_CAPTURED per attempt, before the step starts, naming the files
    events = captured_events(instance, run_id)
    assert [(e.step_key, e.data["attempt"]) for e in events] == [("noisy", 1), ("quiet", 1)]
    assert events[0].data["stdout"] == str(base / "noisy.out")
    assert events[0].data["stderr"] == str(base / "noisy.err")
    kinds = [str(e.event_type) for e in instance.storage.get_events(run_id, step_key="noisy")]
    assert kinds.index("LOGS_CAPTURED") < kinds.index("STEP_START")


def test_job_execute_keeps_its_own_progress_output(cli, defs, run_config, executor):
    """The op's output goes to the files; the CLI's progress lines and summary still reach its stdout
    (a pipe here, block-buffered without PYTHONUNBUFFERED), each exactly once and in order."""
    proc = cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config(executor),
                  env={"PYTHONUNBUFFERED": ""})
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Executing job 'noise' as run ")
    assert any("STEP_START" in ln and "noisy" in ln for ln in lines)
    assert any("LOG " in ln and "an event, not output" in ln for ln in lines)
    assert any("STEP_SUCCESS" in ln and "quiet" in ln for ln in lines)
    assert any("RUN_SUCCESS" in ln for ln in lines)
    assert re.match(r"Run [0-9a-f]{32} SUCCESS in ", lines[-1])
    assert len(lines) == len(set(lines))
    assert [ln.split()[1] for ln in lines[1:-1]] == ["RUN_START", "ENGINE_EVENT", "STEP_START", "LOG",
                                                      "STEP_SUCCESS", "STEP_START", "STEP_SUCCESS", "RUN_SUCCESS"]
    for text in ("print to stdout", "os.write to fd 1", "child stdout", "quiet got 1"):
        assert text not in proc.stdout
    for text in ("print to stderr", "os.write to fd 2", "child stderr"):
        assert text not in proc.stderr


def test_retries_append_with_a_header_per_attempt(cli, home, instance, defs, run_config, executor):
    proc = cli.ok("job", "execute", "-f", defs, "-j", "retrying", "-c", run_config(executor))
    run_id = run_id_of(proc.stdout)
    out = (home / "logs" / "compute" / run_id / "flaky.out").read_text().splitlines()
    assert [ln for ln in out if not ln.startswith("===")] == [f"flaky attempt {n}" for n in (1, 2, 3)]
    headers = [ln for ln in out if ln.startswith("===")]
    assert [re.search(r"attempt (\d+)", h).group(1) for h in headers] == ["1", "2", "3"]
    assert [e.data["attempt"] for e in captured_events(instance, run_id)] == [1, 2, 3]
    err = (home / "logs" / "compute" / run_id / "flaky.err").read_text()
    assert err.count("=== runyard: step 'flaky'") == 3


def test_logs_are_readable_while_the_step_runs_and_follow_stops_when_it_ends(
        cli, home, instance, defs, run_config, executor, tmp_path, wait_for):
    go = tmp_path / "go"
    config = run_config(executor, {"waiter": {"config": {"go_file": str(go)}}})
    # Without PYTHONUNBUFFERED the worker's stdout is block-buffered: capture line-buffers it.
    run_id = run_id_of(cli.ok("job", "launch", "-f", defs, "-j", "waiting", "-c", config,
                              env={"PYTHONUNBUFFERED": ""}).stdout)
    try:
        def shows(text: str, *extra: str):
            proc = cli("run", "logs", run_id, "--step", "waiter", *extra)
            return proc if proc.returncode == 0 and text in proc.stdout else None

        proc = wait_for(lambda: shows("before the wait"), timeout=30, what="the op's first line")
        assert instance.get_run(run_id).status.value == "STARTED"
        assert proc.stdout.startswith("=== runyard: step 'waiter'")
        assert "after the wait" not in proc.stdout
        assert "complaint" not in proc.stdout
        err = wait_for(lambda: shows("complaint before the wait", "--stderr"), timeout=10, what="stderr")
        assert err.stdout.splitlines()[1:] == ["complaint before the wait"]

        follower = cli.popen("run", "logs", run_id, "--step", "waiter", "--follow")
        time.sleep(0.5)
        assert follower.poll() is None, "--follow must keep running while the step runs"
        go.write_text("")
        stdout, stderr = follower.communicate(timeout=30)
        assert follower.returncode == 0, stderr
        assert stdout.splitlines()[1:] == ["before the wait", "after the wait"]
        wait_for(lambda: instance.get_run(run_id).status.value == "SUCCESS", timeout=30, what="SUCCESS")
    finally:
        go.write_text("")
    # the worker's own output went back to its log once the step finished
    worker_log = (home / "logs" / "runs" / f"{run_id}.log").read_text()
    assert f"run {run_id} finished: SUCCESS" in worker_log
    assert "before the wait" not in worker_log


def test_follow_of_a_finished_step_prints_and_exits(cli, defs, run_config):
    run_id = run_id_of(cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config("in_process")).stdout)
    proc = cli("run", "logs", run_id, "--step", "noisy", "--stderr", "--follow", timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == ["print to stderr", "os.write to fd 2", "child stderr"]


def test_unknown_step_is_a_clear_error(cli, defs, run_config):
    run_id = run_id_of(cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config("in_process")).stdout)
    proc = cli("run", "logs", run_id, "--step", "nope")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"Error: No compute logs for step 'nope' in run {run_id}; steps with "
                                   "captured logs: noisy, quiet.")
    assert proc.stdout == ""
    proc = cli("run", "logs", run_id, "--stderr")
    assert proc.returncode == 2 and "--stderr needs --step" in proc.stderr
    proc = cli("run", "logs", "0" * 32, "--step", "noisy")
    assert proc.returncode == 1 and "No run with id" in proc.stderr
    # without --step, the event log as before
    assert "STEP_SUCCESS" in cli.ok("run", "logs", run_id).stdout


def test_capture_can_be_turned_off(cli, home, instance, defs, run_config):
    (home / "runyard.yaml").write_text("compute_logs:\n  enabled: false\n")
    proc = cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config("in_process"))
    run_id = run_id_of(proc.stdout)
    assert "print to stdout" in proc.stdout and "child stderr" in proc.stderr
    assert not (home / "logs" / "compute").exists()
    assert captured_events(instance, run_id) == []
    proc = cli("run", "logs", run_id, "--step", "noisy")
    assert proc.returncode == 1
    assert "compute logs are turned off in this instance" in proc.stderr


def test_base_dir_is_configurable_relative_to_the_home(cli, home, defs, run_config, tmp_path):
    (home / "runyard.yaml").write_text("compute_logs:\n  local:\n    base_dir: elsewhere/logs\n")
    run_id = run_id_of(cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config("in_process")).stdout)
    assert "child stdout" in (home / "elsewhere" / "logs" / run_id / "noisy.out").read_text()
    assert "child stdout" in cli.ok("run", "logs", run_id, "--step", "noisy").stdout


@pytest.mark.parametrize("text, message", [
    ("compute_logs:\n  s3: {}\n", "compute_logs: unknown compute log manager 's3'. Available: local"),
    ("compute_logs:\n  local:\n    bogus: 1\n", "compute_logs.local.bogus: unknown key"),
    ("compute_logs:\n  enabled: false\n  local: {}\n", "`enabled: false` turns capture off"),
])
def test_bad_compute_logs_settings(cli, home, text, message):
    (home / "runyard.yaml").write_text(text)
    proc = cli("run", "list")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert str(home / "runyard.yaml") in proc.stderr


CAPTURE_SCRIPT = '''
import os, sys
from runyard.execution.compute_logs import capture_output

before = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
print("before", flush=False)
with capture_output(sys.argv[1], sys.argv[2], header="H\\n"):
    print("inside")
    sys.stderr.write("inside err\\n")
    os.write(1, b"raw\\n")
after = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
print("after", before == after)
'''


def test_capture_output_restores_the_original_fds(tmp_path):
    """Python buffering and fd 1/2 as they were: nothing printed before or after lands in the files."""
    script = tmp_path / "capture.py"
    script.write_text(CAPTURE_SCRIPT)
    out, err = tmp_path / "x.out", tmp_path / "x.err"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block-buffered stdout
    proc = subprocess.run([sys.executable, str(script), str(out), str(err)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "before\nafter True\n"
    assert proc.stderr == ""
    assert out.read_text() == "H\ninside\nraw\n"
    assert err.read_text() == "H\ninside err\n"


def test_capture_output_appends(tmp_path):
    out, err = tmp_path / "a.out", tmp_path / "a.err"
    for n in range(2):
        with capture_output(str(out), str(err), header=f"attempt {n}\n"):
            os.write(1, f"line {n}\n".encode())
    assert out.read_text() == "attempt 0\nline 0\nattempt 1\nline 1\n"


def test_unwritable_base_dir_runs_the_step_uncaptured_with_a_warning(cli, home, instance, defs, run_config):
    (home / "runyard.yaml").write_text("compute_logs:\n  local:\n    base_dir: /dev/null/compute\n")
    proc = cli.ok("job", "execute", "-f", defs, "-j", "noise", "-c", run_config("in_process"))
    run_id = run_id_of(proc.stdout)
    assert "print to stdout" in proc.stdout
    assert captured_events(instance, run_id) == []
    warnings = [e for e in instance.storage.get_events(run_id, step_key="noisy")
                if str(e.event_type) == "ENGINE_EVENT" and e.level == "WARNING"]
    assert len(warnings) == 1 and "Could not capture the output of step 'noisy'" in warnings[0].message


def test_sigterm_during_a_captured_step_gives_the_terminal_back(cli, defs, run_config, tmp_path, wait_for, home):
    """``job execute`` terminated while its in-process step is captured: the cancel events and the
    summary still reach the CLI's own stdout, not the step's file."""
    import signal

    config = run_config("in_process", {"waiter": {"config": {"go_file": str(tmp_path / "never")}}})
    proc = cli.popen("job", "execute", "-f", defs, "-j", "waiting", "-c", config)
    try:
        out_files = lambda: list((home / "logs" / "compute").glob("*/waiter.out"))  # noqa: E731
        path = wait_for(lambda: [p for p in out_files() if "before the wait" in p.read_text()], timeout=30,
                        what="the op to print")[0]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    lines = stdout.splitlines()
    assert any("RUN_CANCELED" in ln for ln in lines), stdout
    assert re.match(r"Run [0-9a-f]{32} CANCELED in ", lines[-1])
    assert "before the wait" not in stdout
    assert path.read_text().splitlines()[1:] == ["before the wait"]
