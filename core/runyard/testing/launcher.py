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
            return {"my_launcher": {"image": "runyard-test:latest"}}

Optional fixtures:

* ``prepare_launcher`` (default ``False``): call ``launcher.prepare(instance)`` first, the way the
  daemon and the web UI do (e.g. to start a warm pool);
* ``launcher_instance_settings``: other instance file settings (default: none, embedded SQLite);
* ``kill_worker``: a callable ``kill_worker(run)`` that kills the run's worker hard, as a crash
  would. The default sends SIGKILL to ``run.launcher_info["pid"]`` (a local process);
* ``worker_alive``: a callable ``worker_alive(run) -> bool``. The default checks the local pid
  (and its start time, when ``launcher_info`` has ``pid_start``) in /proc;
* ``launcher_timeout``: seconds a run may take to start or finish (default 60).

The rules:

* launch: the run goes ``STARTING``, the worker runs it to ``SUCCESS``, ``launcher_info`` says
  which worker it was, and the worker exits;
* health check: while a worker runs, ``instance.check_run_health`` says ``running`` (``unknown``
  for a launcher without ``supports_health_check``) and changes nothing;
* terminate: ``instance.terminate_run`` on a running run returns True, the run ends ``CANCELED``
  and the worker is gone;
* dead worker: after the worker is killed hard, ``check_run_health`` says ``dead`` and the run ends
  ``FAILURE`` with a reason (skipped for a launcher that cannot check health).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from ..storage.records import RunRecord, RunStatus
from ._util import SuiteHome, kill_group, wait_until

JOBS = """
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
    def launcher_home(self, tmp_path, launcher_config, launcher_instance_settings, prepare_launcher):
        home = SuiteHome(tmp_path, {**launcher_instance_settings, "run_launcher": launcher_config})
        launcher = home.instance.run_launcher
        if prepare_launcher:
            launcher.prepare(home.instance)
        yield home
        for run in home.instance.storage.get_runs():  # never leave a worker behind
            pid = run.launcher_info.get("pid")
            if run.status not in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED) and pid:
                kill_group(int(pid))
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

    def launch_waiting(self, home: SuiteHome, timeout: float) -> tuple[RunRecord, str]:
        """Launch the ``waiting`` job and return once its op runs; the op ends when ``go`` exists."""
        go = str(home.root / "go")
        run = self.launch(home, JOBS, "waiting", {"ops": {"wait": {"config": {"go_file": go}}}})
        wait_until(lambda: home.out_lines("waiting") or
                   home.instance.get_run(run.run_id).status in (RunStatus.FAILURE, RunStatus.CANCELED),
                   timeout=timeout, what="the run worker to start the op")
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.STARTED, f"{run.status}\n{home.describe(run.run_id)}"
        return run, go

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
