"""The run launcher conformance suite.

Checks the rules of :mod:`runyard.launchers.base` with real runs: each test writes a definitions
file, creates a run, submits it through the ``default`` coordinator to the launcher under test,
and watches the run worker it started through storage.

A launcher plugin subclasses :class:`LauncherConformanceSuite` and provides the ``launcher_config``
fixture: the instance file's ``run_launcher:`` mapping that selects it::

    from runyard.testing.launcher import LauncherConformanceSuite

    class TestMyLauncher(LauncherConformanceSuite):
        @pytest.fixture
        def launcher_config(self):
            return {"my_launcher": {"image": "runyard-test:latest", "grace_period_seconds": 2}}

Optional fixtures:

* ``prepare_launcher`` (default ``False``): call ``launcher.prepare(instance)`` first, the way the
  daemon and the web UI do (e.g. to start a warm pool);
* ``launcher_instance_settings``: other instance file settings (default: none, embedded SQLite);
* ``kill_worker``: a callable ``kill_worker(run)`` that kills the run's worker hard, as a crash
  would. The default sends SIGKILL to ``run.launcher_info["pid"]`` (a local process);
* ``worker_alive``: a callable ``worker_alive(run) -> bool``. The default checks the local pid
  (and its start time, when ``launcher_info`` has ``pid_start``) in /proc;
* ``worker_session``: a callable ``worker_session(run) -> (pid, process group, session)`` of the
  worker's main process, or ``None`` when that does not apply (a container is isolated by its
  runtime): the default reads the local pid's /proc entry;
* ``launcher_timeout``: seconds a run may take to start or finish (default 60);
* ``launch_bound_seconds``: the longest ``launch_run`` may take (default 10): it starts the worker
  and returns, it never waits for it;
* ``terminate_grace_seconds``: the SIGTERM-to-SIGKILL grace period the launcher was configured
  with (default: the launcher config's ``grace_period_seconds``); keep it short in tests;
* ``kill_bound_seconds``: how long after the grace period a worker that ignores SIGTERM may still
  be running (default 10).

The rules:

* launch: the run goes ``STARTING``, the worker runs it to ``SUCCESS``, ``launcher_info`` says
  which worker it was, and the worker exits;
* launch is quick: ``launch_run`` returns within ``launch_bound_seconds`` while the worker still
  runs;
* own session: the worker leads its own session and process group, so it outlives the process that
  launched it and ``terminate`` can signal everything it started as one group;
* health check: while a worker runs, ``instance.check_run_health`` says ``running`` (``unknown``
  for a launcher without ``supports_health_check``) and changes nothing;
* terminate: ``instance.terminate_run`` on a running run returns True, the run ends ``CANCELED``
  and the worker is gone;
* escalation: a worker that ignores SIGTERM is killed once the grace period is over: it is gone
  within ``terminate_grace_seconds + kill_bound_seconds``, and the run still ends ``CANCELED``
  (through the health check, which finds the killed worker);
* identified from anywhere: what ``launch_run`` recorded in ``launcher_info`` is all another
  process needs: a fresh instance (and so a new launcher object) in a new process checks the
  worker's health and terminates it;
* dead worker: after the worker is killed hard, ``check_run_health`` says ``dead`` and the run ends
  ``FAILURE`` with a reason (skipped for a launcher that cannot check health).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ..storage.records import FINISHED_STATUSES, IN_PROGRESS_STATUSES, RunRecord, RunStatus
from .helpers import SuiteHome, kill_group, wait_until

JOBS = """
import signal
import threading


class WaitConfig(Config):
    go_file: str = ""


@op
def hello(context) -> int:
    context.log.info("hello from the run worker")
    return 1


@op
def bye(x: int) -> None:
    record("bye", x)


@job
def quick():
    bye(hello())


@op
def wait(context, config: WaitConfig) -> None:
    context.log.info("waiting")
    record("waiting", os.getpid())
    wait_for_file(config.go_file)


@job
def waiting():
    wait()


@op
def deaf(context, config: WaitConfig) -> None:
    # A worker stuck where SIGTERM cannot reach it: only SIGKILL ends it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record("ignoring", os.getpid())
    wait_for_file(config.go_file)


@job
def stubborn():
    deaf()
"""

#: run in a new process by the "identified from anywhere" test: a fresh instance on the same home
OTHER_PROCESS = """
import json, sys
from runyard.instance.instance import Instance

home, instance_file, run_id = sys.argv[1:4]
instance = Instance.open(home=home, instance_file=instance_file)
health = instance.check_run_health(run_id)
terminated = instance.terminate_run(run_id)
print(json.dumps({"health": health, "terminated": terminated}))
"""


def _local_pid(run: RunRecord) -> int:
    pid = run.launcher_info.get("pid")
    assert pid, f"launcher_info has no pid ({run.launcher_info}); override the fixture for your launcher"
    return int(pid)


class LauncherConformanceSuite:
    """Subclass and provide ``launcher_config``."""

    @pytest.fixture
    def launcher_config(self) -> dict[str, Any]:  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `launcher_config` fixture: the instance file's `run_launcher:` "
                                  "mapping that selects your launcher, e.g. {'my_launcher': {}}")

    @pytest.fixture
    def prepare_launcher(self) -> bool:
        return False

    @pytest.fixture
    def launcher_instance_settings(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def launcher_timeout(self) -> float:
        return 60.0

    @pytest.fixture
    def launch_bound_seconds(self) -> float:
        return 10.0

    @pytest.fixture
    def terminate_grace_seconds(self, launcher_home) -> float:
        grace = getattr(launcher_home.instance.run_launcher.config, "grace_period_seconds", None)
        assert grace is not None, ("the launcher config has no `grace_period_seconds`: provide a "
                                   "`terminate_grace_seconds` fixture with your launcher's grace period")
        return float(grace)

    @pytest.fixture
    def kill_bound_seconds(self) -> float:
        return 10.0

    @pytest.fixture
    def kill_worker(self) -> Callable[[RunRecord], None]:
        def kill(run: RunRecord) -> None:
            os.kill(_local_pid(run), signal.SIGKILL)

        return kill

    @pytest.fixture
    def worker_alive(self) -> Callable[[RunRecord], bool]:
        from ..launchers.procinfo import is_alive

        def alive(run: RunRecord) -> bool:
            return is_alive(_local_pid(run), run.launcher_info.get("pid_start"))

        return alive

    @pytest.fixture
    def worker_session(self) -> Callable[[RunRecord], tuple[int, int, int] | None]:
        from ..launchers.procinfo import read_stat

        def session(run: RunRecord) -> tuple[int, int, int] | None:
            pid = _local_pid(run)
            stat = read_stat(pid)
            assert stat is not None and stat.alive, f"worker {pid} is not running"
            return pid, stat.pgrp, stat.session

        return session

    @pytest.fixture
    def launcher_home(self, tmp_path, launcher_config, launcher_instance_settings, prepare_launcher):
        home = SuiteHome(tmp_path, {**launcher_instance_settings, "run_launcher": launcher_config})
        launcher = home.instance.run_launcher
        if prepare_launcher:
            launcher.prepare(home.instance)
        yield home
        (home.root / "go").touch()  # lets every waiting op return
        for run in home.instance.storage.get_runs():  # never leave a worker behind
            pid = run.launcher_info.get("pid")
            if run.status not in FINISHED_STATUSES and pid:
                kill_group(int(pid))
                try:  # a worker that is not a group leader is not reached by its pid as a group
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        launcher.dispose()
        home.close()

    # ---- helpers ---------------------------------------------------------------------------------
    def launch(self, home: SuiteHome, source: str, job_name: str,
               run_config: dict[str, Any] | None = None) -> RunRecord:
        """Create a run of ``job_name`` and submit it (coordinator ``default``: launch now)."""
        path = home.write_defs(source, name="launcher_defs.py")
        run, _ = home.create_run(path, job_name, run_config or {})
        run = home.instance.submit_run(run)
        assert run.status in (RunStatus.STARTING, RunStatus.STARTED, RunStatus.SUCCESS), run.status
        return home.instance.get_run(run.run_id)

    @staticmethod
    def go_file(home: SuiteHome) -> str:
        """The file whose existence ends the ``waiting`` and ``stubborn`` ops."""
        return str(home.root / "go")

    def wait_for_op(self, home: SuiteHome, run: RunRecord, marker: str, timeout: float) -> RunRecord:
        """Wait until the run's op wrote ``marker`` (its worker is in the op); return the run."""
        wait_until(lambda: home.out_lines(marker) or home.instance.get_run(run.run_id).status in FINISHED_STATUSES,
                   timeout=timeout, what="the run worker to start the op")
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.STARTED, f"{run.status}\n{home.describe(run.run_id)}"
        return run

    def launch_waiting(self, home: SuiteHome, timeout: float, job_name: str = "waiting",
                       marker: str = "waiting") -> tuple[RunRecord, str]:
        """Launch ``job_name`` (``waiting`` or ``stubborn``) and return once its op runs; the op
        ends when the returned file exists."""
        go = self.go_file(home)
        run = self.launch(home, JOBS, job_name, {"ops": {"wait" if job_name == "waiting" else "deaf":
                                                         {"config": {"go_file": go}}}})
        return self.wait_for_op(home, run, marker, timeout), go

    # ---- launch ----------------------------------------------------------------------------------
    def test_launched_run_succeeds(self, launcher_home, launcher_timeout, worker_alive):
        home = launcher_home
        run = self.launch(home, JOBS, "quick")
        assert run.launcher_info, "launch_run must record_worker(...) what identifies the worker"
        run = home.wait_finished(run.run_id, timeout=launcher_timeout)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("bye") == ["1"]
        kinds = home.types(run.run_id)
        assert kinds.index("RUN_STARTING") < kinds.index("RUN_START") < kinds.index("RUN_SUCCESS")
        assert kinds[-1] == "RUN_SUCCESS"
        wait_until(lambda: not worker_alive(run), timeout=launcher_timeout, what="the worker to exit")
        assert home.instance.check_run_health(run.run_id) == "finished"

    def test_launch_returns_without_waiting_for_the_worker(self, launcher_home, launcher_timeout,
                                                           launch_bound_seconds):
        home = launcher_home
        go = self.go_file(home)
        path = home.write_defs(JOBS, name="launcher_defs.py")
        run, _ = home.create_run(path, "waiting", {"ops": {"wait": {"config": {"go_file": go}}}})
        submitted: list[Any] = []

        def submit() -> None:
            try:
                submitted.append(home.instance.submit_run(run))
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                submitted.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=submit, daemon=True)
        thread.start()
        thread.join(launch_bound_seconds)
        took = time.monotonic() - started
        blocked = thread.is_alive()
        try:
            assert not blocked, (f"launch_run has not returned after {took:.1f}s (bound: {launch_bound_seconds}s): "
                                 "it must start the worker and return at once, never wait for the run")
            assert not isinstance(submitted[0], BaseException), f"submit_run raised {submitted[0]!r}"
            status = home.instance.get_run(run.run_id).status
            assert status in IN_PROGRESS_STATUSES, \
                f"the run is {status} right after launch_run returned\n{home.describe(run.run_id)}"
            self.wait_for_op(home, run, "waiting", launcher_timeout)
        finally:
            open(go, "w").close()
            thread.join(launcher_timeout)
        run = home.wait_finished(run.run_id, timeout=launcher_timeout)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)

    def test_worker_leads_its_own_session(self, launcher_home, launcher_timeout, worker_session):
        home = launcher_home
        run, go = self.launch_waiting(home, launcher_timeout)
        try:
            facts = worker_session(run)
            if facts is None:
                pytest.skip("the launcher's workers are not local processes (worker_session gave None)")
            pid, group, session = facts
            assert (group, session) == (pid, pid), (
                f"worker {pid} is in process group {group} and session {session}: it must lead its own "
                f"(both {pid}; e.g. start_new_session=True or os.setsid()), so that it outlives the "
                "launching process and terminate can signal its whole group")
            assert session != os.getsid(0), "the worker shares the test process's session"
        finally:
            open(go, "w").close()
        assert home.wait_finished(run.run_id, timeout=launcher_timeout).status == RunStatus.SUCCESS

    # ---- health ----------------------------------------------------------------------------------
    def test_health_check_of_a_running_worker(self, launcher_home, launcher_timeout, worker_alive):
        home = launcher_home
        run, go = self.launch_waiting(home, launcher_timeout)
        assert worker_alive(run)
        expected = "running" if home.instance.run_launcher.supports_health_check else "unknown"
        assert home.instance.check_run_health(run.run_id) == expected
        assert home.instance.get_run(run.run_id).status == RunStatus.STARTED
        open(go, "w").close()
        run = home.wait_finished(run.run_id, timeout=launcher_timeout)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.instance.check_run_health(run.run_id) == "finished"

    # ---- terminate -------------------------------------------------------------------------------
    def test_terminate_cancels_the_run_and_stops_the_worker(self, launcher_home, launcher_timeout,
                                                            worker_alive):
        home = launcher_home
        run, _ = self.launch_waiting(home, launcher_timeout)
        assert home.instance.terminate_run(run.run_id) is True
        run = home.wait_finished(run.run_id, timeout=launcher_timeout)
        assert run.status == RunStatus.CANCELED, home.describe(run.run_id)
        kinds = home.types(run.run_id)
        assert kinds.index("RUN_CANCELING") < kinds.index("RUN_CANCELED")
        wait_until(lambda: not worker_alive(run), timeout=launcher_timeout, what="the worker to exit")
        assert home.instance.check_run_health(run.run_id) == "finished"

    def test_terminate_kills_a_worker_that_ignores_sigterm(self, launcher_home, launcher_timeout, worker_alive,
                                                          terminate_grace_seconds, kill_bound_seconds):
        home = launcher_home
        run, go = self.launch_waiting(home, launcher_timeout, job_name="stubborn", marker="ignoring")
        bound = terminate_grace_seconds + kill_bound_seconds
        try:
            started = time.monotonic()
            answer: list[Any] = []
            thread = threading.Thread(target=lambda: answer.append(home.instance.terminate_run(run.run_id)),
                                      daemon=True)
            thread.start()
            thread.join(bound)
            assert not thread.is_alive(), f"terminate has not returned after {bound}s (grace + bound)"
            assert answer == [True], f"terminate_run answered {answer}"
            left = max(0.0, bound - (time.monotonic() - started))
            try:
                wait_until(lambda: not worker_alive(run), timeout=left, interval=0.1, what="the worker to be gone")
            except AssertionError:
                raise AssertionError(
                    f"the worker still runs {time.monotonic() - started:.1f}s after terminate (grace period "
                    f"{terminate_grace_seconds}s + bound {kill_bound_seconds}s): a worker that ignores SIGTERM "
                    f"must be killed (SIGKILL) once the grace period is over\n{home.describe(run.run_id)}"
                ) from None
        finally:
            open(go, "w").close()
        if home.instance.run_launcher.supports_health_check:
            home.instance.check_run_health(run.run_id)  # the killed worker wrote no CANCELED
        run = home.wait_finished(run.run_id, timeout=launcher_timeout)
        assert run.status == RunStatus.CANCELED, home.describe(run.run_id)

    # ---- identified from another process ---------------------------------------------------------
    def test_another_process_checks_and_terminates_the_worker(self, launcher_home, launcher_timeout,
                                                              worker_alive):
        home = launcher_home
        run, go = self.launch_waiting(home, launcher_timeout)
        env = home.worker_env()
        # the launcher may be selected by {module, class}: the other process imports what we do
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            proc = subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(home.home), str(home.instance_file),
                                   run.run_id], env=env, capture_output=True, text=True, timeout=launcher_timeout)
            assert proc.returncode == 0, f"the other process failed:\n{proc.stdout}{proc.stderr}"
            answer = json.loads(proc.stdout.strip().splitlines()[-1])
            expected = "running" if home.instance.run_launcher.supports_health_check else "unknown"
            assert answer == {"health": expected, "terminated": True}, (
                f"from a new process (a new launcher object), with only launcher_info {run.launcher_info}: "
                f"{answer}. launch_run must record_worker(...) everything that identifies the worker; "
                "terminate and check_run_worker_health must work from that alone")
            run = home.wait_finished(run.run_id, timeout=launcher_timeout)
            assert run.status == RunStatus.CANCELED, home.describe(run.run_id)
            wait_until(lambda: not worker_alive(run), timeout=launcher_timeout, what="the worker to exit")
        finally:
            open(go, "w").close()

    # ---- dead worker -----------------------------------------------------------------------------
    def test_dead_worker_is_found_by_the_health_check(self, launcher_home, launcher_timeout, kill_worker,
                                                      worker_alive):
        home = launcher_home
        if not home.instance.run_launcher.supports_health_check:
            pytest.skip("the launcher does not support health checks")
        run, _ = self.launch_waiting(home, launcher_timeout)
        kill_worker(run)
        wait_until(lambda: not worker_alive(run), timeout=launcher_timeout, what="the killed worker to be gone")
        assert home.instance.check_run_health(run.run_id) == "dead"
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.FAILURE
        failure = home.events(run.run_id, "RUN_FAILURE")
        assert len(failure) == 1 and failure[0].data.get("reason"), home.describe(run.run_id)
        assert "died" in failure[0].message
        assert home.instance.check_run_health(run.run_id) == "finished"
