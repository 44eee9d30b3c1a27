"""The process containment suite: no process an op starts outlives its step, and none outlives its run.

Each test launches a run through the ``process`` launcher whose op starts a small family of
processes — ``sh`` with two ``sleep`` children (the step's grandchildren) and a daemon that called
``setsid`` and double-forked (it left the worker's session and process group) — and then ends its
step or run one way or another: the step succeeds with the family still running, the step fails,
the run is terminated, or the run worker is killed with SIGKILL. Afterwards no process of the
family may be left, checked in /proc by an environment marker every one of them inherits (the op
sets ``RUNYARD_CONTAINMENT_MARK`` to the test's own output directory). The
suite also checks that every step a run leaves unfinished is closed with a ``STEP_FAILURE`` that
says why.

An executor plugin whose steps run as local processes subclasses :class:`ProcessContainmentSuite`
and provides ``executor_run_config`` (the run config's ``execution:`` mapping)::

    from runyard.testing.containment import ProcessContainmentSuite

    class TestMyExecutorContainment(ProcessContainmentSuite):
        @pytest.fixture
        def executor_run_config(self):
            return {"my_executor": {}}

Needs: Linux /proc, real signals, ``sh`` and ``sleep`` on PATH.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from ..launchers import procinfo
from ..storage.records import FINISHED_STATUSES, RunRecord, RunStatus
from .helpers import SuiteHome, kill_group, pid_gone, processes_with_env, wait_until

#: the environment variable that marks every process a test's op starts (value: the test's OUT_DIR)
MARK = "RUNYARD_CONTAINMENT_MARK"

JOBS = """
import signal
import subprocess

from runyard import RetryPolicy

DAEMON = '''
import os, sys, time
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
'''


class FamilyConfig(Config):
    go_file: str = ""
    ignore_sigterm: bool = False


def spawn_family(tag):
    \"\"\"sh with two sleeps below it, and a daemon that left the session; record their pids.\"\"\"
    env = {**os.environ, "RUNYARD_CONTAINMENT_MARK": OUT_DIR}
    bg = os.path.join(OUT_DIR, tag + ".bg")
    sh = subprocess.Popen(["sh", "-c", f"sleep 300 & echo $! > {bg}.tmp; mv {bg}.tmp {bg}; sleep 301"], env=env)
    daemon_file = os.path.join(OUT_DIR, tag + ".daemon")
    subprocess.run([sys.executable, "-c", DAEMON, daemon_file], check=True, env=env)
    wait_for_file(bg)
    wait_for_file(daemon_file)
    for path in (bg, daemon_file):
        with open(path) as f:
            record(tag, f.read().strip())
    record(tag, sh.pid)


@op
def spawn_and_wait(context, config: FamilyConfig) -> None:
    if config.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spawn_family("family")
    context.log.info("family spawned")
    wait_for_file(config.go_file, timeout=300)


@job
def waits():
    spawn_and_wait()


@op
def spawn_and_fail() -> None:
    spawn_family("family")
    raise RuntimeError("failing with processes still running")


@job
def fails():
    spawn_and_fail()


@op
def spawn_and_return() -> int:
    spawn_family("family")
    return 1


@op
def look(x: int) -> None:
    from runyard.testing import pid_gone

    with open(os.path.join(OUT_DIR, "family")) as f:
        pids = [int(line) for line in f.read().split()]
    record("alive_in_next_step", sum(not pid_gone(pid) for pid in pids))


@job
def leaves():
    look(spawn_and_return())


@op(retry_policy=RetryPolicy(max_retries=3, delay=300))
def retries_later(context) -> None:
    record("attempts", context.retry_number)
    raise RuntimeError("retry me in five minutes")


@job
def waits_for_retry():
    retries_later()
"""


def _describe(pids: list[int]) -> str:
    """Each pid with its parent and command line, for assertion messages."""
    parts = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        stat = procinfo.read_stat(pid)
        parts.append(f"{pid} (parent {stat.ppid if stat else '?'}): {cmd[:120]}")
    return "; ".join(parts) or "none"


class ProcessContainmentSuite:
    """Subclass and provide ``executor_run_config``."""

    @pytest.fixture
    def executor_run_config(self) -> dict[str, Any]:  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide an `executor_run_config` fixture: the run config's `execution:` "
                                  "mapping, e.g. {'my_executor': {}}")

    @pytest.fixture
    def containment_timeout(self) -> float:
        return 60.0

    @pytest.fixture(params=["warm", "cold"])
    def launch_mode(self, request) -> str:
        return request.param

    @pytest.fixture
    def contained_home(self, tmp_path, launch_mode):
        home = SuiteHome(tmp_path, {"run_launcher": {"process": {
            "grace_period_seconds": 1, "warm": launch_mode == "warm"}}})
        launcher = home.instance.run_launcher
        launcher.prepare(home.instance)  # like the daemon: warm launches fork from the zygote
        yield home
        (home.root / "go").touch()
        for run in home.instance.storage.get_runs():  # never leave a worker behind
            pid = run.launcher_info.get("pid")
            if run.status not in FINISHED_STATUSES and pid:
                kill_group(int(pid))
        for pid in processes_with_env(MARK, str(home.out_dir)):  # nor anything a failing test's run started
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        launcher.dispose()
        home.close()

    # ---- helpers ---------------------------------------------------------------------------------
    def launch(self, home: SuiteHome, job_name: str, run_config: dict[str, Any]) -> RunRecord:
        path = home.write_defs(JOBS, name="containment_defs.py")
        run, _ = home.create_run(path, job_name, run_config)
        home.instance.submit_run(run)
        return home.instance.get_run(run.run_id)

    def launch_family(self, home: SuiteHome, executor_run_config: dict[str, Any], timeout: float,
                      ignore_sigterm: bool = False) -> tuple[RunRecord, list[int]]:
        """Launch ``waits`` and return once its op has started its family (and the family's pids)."""
        run = self.launch(home, "waits", {"execution": executor_run_config, "ops": {"spawn_and_wait": {
            "config": {"go_file": str(home.root / "go"), "ignore_sigterm": ignore_sigterm}}}})
        wait_until(lambda: any(e.message == "family spawned" for e in home.events(run.run_id, "LOG"))
                   or home.instance.get_run(run.run_id).status in FINISHED_STATUSES,
                   timeout=timeout, what="the op to start its processes (and its events to be stored)")
        assert home.instance.get_run(run.run_id).status == RunStatus.STARTED, home.describe(run.run_id)
        return home.instance.get_run(run.run_id), self.family(home)

    @staticmethod
    def family(home: SuiteHome) -> list[int]:
        """The pids the op recorded: background sleep, setsid daemon, sh."""
        pids = [int(pid) for pid in home.out_lines("family")]
        assert len(pids) == 3, f"the op recorded {pids}"
        return pids

    @staticmethod
    def assert_nothing_left(home: SuiteHome, run: RunRecord, pids: list[int], what: str,
                            timeout: float = 10.0) -> None:

        def left() -> list[int]:
            return sorted(set(processes_with_env(MARK, str(home.out_dir))) | {p for p in pids if not pid_gone(p)})

        try:
            wait_until(lambda: not left(), timeout=timeout, what=what)
        except AssertionError:
            raise AssertionError(f"{what}: processes the run started still run: {_describe(left())} "
                                 f"(sh, background sleep, setsid daemon: {pids})\n{home.describe(run.run_id)}"
                                 ) from None

    @staticmethod
    def closed_steps(home: SuiteHome, run_id: str) -> dict[str, str]:
        """Every step's last STEP_FAILURE error, asserting no step is left STARTED or waiting."""
        stats = home.instance.storage.get_step_stats(run_id)
        open_ = [f"{s.step_key}: {s.status}" for s in stats if s.status not in ("SUCCESS", "FAILURE", "SKIPPED")]
        assert not open_, f"steps left unfinished in a finished run: {open_}\n{home.describe(run_id)}"
        return {s.step_key: s.error or "" for s in stats if s.status == "FAILURE"}

    # ---- every way out of a step or run ----------------------------------------------------------
    def test_step_success_kills_what_the_step_left_running(self, contained_home, executor_run_config,
                                                           containment_timeout):
        home = contained_home
        run = self.launch(home, "leaves", {"execution": executor_run_config})
        run = home.wait_finished(run.run_id, timeout=containment_timeout)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("alive_in_next_step") == ["0"], (
            "processes a step left running must be killed when the step ends, before the next step")
        self.assert_nothing_left(home, run, self.family(home), "after the run succeeded")

    def test_step_failure_kills_what_the_step_started(self, contained_home, executor_run_config,
                                                      containment_timeout):
        home = contained_home
        run = self.launch(home, "fails", {"execution": executor_run_config})
        run = home.wait_finished(run.run_id, timeout=containment_timeout)
        assert run.status == RunStatus.FAILURE, home.describe(run.run_id)
        self.assert_nothing_left(home, run, self.family(home), "after the step failed")

    def test_terminate_kills_everything_the_run_started(self, contained_home, executor_run_config,
                                                        containment_timeout):
        home = contained_home
        run, pids = self.launch_family(home, executor_run_config, containment_timeout)
        assert home.instance.terminate_run(run.run_id) is True
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.CANCELED, home.describe(run.run_id)
        self.assert_nothing_left(home, run, pids, "after terminate")
        assert "spawn_and_wait" in self.closed_steps(home, run.run_id)
        wait_until(lambda: pid_gone(run.launcher_info["pid"]), timeout=10, what="the worker to exit")

    def test_terminate_of_a_worker_ignoring_sigterm_ends_canceled(self, contained_home, executor_run_config,
                                                                  containment_timeout):
        """The SIGKILL escalation: the terminating side finishes the run CANCELED, with no health check,
        closes the step it interrupted and kills what the killed worker left behind."""
        home = contained_home
        run, pids = self.launch_family(home, executor_run_config, containment_timeout, ignore_sigterm=True)
        assert home.instance.terminate_run(run.run_id) is True
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.CANCELED, home.describe(run.run_id)
        errors = self.closed_steps(home, run.run_id)
        assert "spawn_and_wait" in errors, home.describe(run.run_id)
        self.assert_nothing_left(home, run, pids, "after terminate escalated to SIGKILL")

    def test_worker_killed_with_sigkill_leaves_nothing(self, contained_home, executor_run_config,
                                                       containment_timeout, launch_mode):
        home = contained_home
        run, pids = self.launch_family(home, executor_run_config, containment_timeout)
        worker = run.launcher_info["pid"]
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: pid_gone(worker), timeout=10, what="the killed worker to be gone")
        # Warm workers are children of the zygote, a subreaper: even the daemon that left the
        # worker's session comes back to it. A cold worker's orphans go to init: what left its
        # session is out of reach (docs/run-worker.md), the rest is killed by the launcher.
        daemon = pids[1]
        expected = pids if launch_mode == "warm" else [p for p in pids if p != daemon]
        if launch_mode == "cold":
            os.kill(daemon, signal.SIGKILL)
        self.assert_nothing_left(home, run, expected,
                                 f"after the {launch_mode} worker was killed with SIGKILL (no health check)")
        assert home.instance.check_run_health(run.run_id) == "dead"
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.FAILURE
        errors = self.closed_steps(home, run.run_id)
        assert "the run worker died" in errors.get("spawn_and_wait", ""), home.describe(run.run_id)
        assert f"process {worker}" in errors["spawn_and_wait"]

    def test_terminate_closes_a_step_waiting_for_its_retry(self, contained_home, executor_run_config,
                                                           containment_timeout):
        home = contained_home
        run = self.launch(home, "waits_for_retry", {"execution": executor_run_config})
        wait_until(lambda: home.types(run.run_id, "retries_later")[-1:] == ["STEP_UP_FOR_RETRY"],
                   timeout=containment_timeout, what="the step to wait for its retry")
        assert home.instance.terminate_run(run.run_id) is True
        run = home.wait_finished(run.run_id, timeout=containment_timeout)
        assert run.status == RunStatus.CANCELED, home.describe(run.run_id)
        errors = self.closed_steps(home, run.run_id)
        assert "canceled" in errors.get("retries_later", ""), home.describe(run.run_id)
