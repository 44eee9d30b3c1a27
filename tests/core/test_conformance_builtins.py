"""The built-in components against the conformance suites of ``runyard.testing``: the
``in_process`` executor, the ``process`` launcher cold (``warm: false``) and warm (a zygote
started by ``prepare``), and the ``default`` and ``queued`` run coordinators.

Needs: real subprocesses, signals and Linux /proc (the suites check that no process is left).
"""

from __future__ import annotations

import pytest

from runyard.testing.coordinator import CoordinatorConformanceSuite
from runyard.testing.executor import ExecutorConformanceSuite
from runyard.testing.launcher import JOBS, LauncherConformanceSuite


class TestInProcessExecutor(ExecutorConformanceSuite):
    @pytest.fixture
    def executor_run_config(self):
        return {"in_process": {}}


class TestProcessLauncherCold(LauncherConformanceSuite):
    @pytest.fixture
    def launcher_config(self):
        return {"process": {"warm": False, "grace_period_seconds": 5}}


class TestProcessLauncherWarm(LauncherConformanceSuite):
    @pytest.fixture
    def launcher_config(self):
        return {"process": {"warm": True, "grace_period_seconds": 5}}

    @pytest.fixture
    def prepare_launcher(self):
        return True

    def test_workers_are_forked_from_the_zygote(self, launcher_home, launcher_config):
        run = self.launch(launcher_home, JOBS, "quick")
        assert run.launcher_info.get("mode") == "warm"
        assert launcher_home.wait_finished(run.run_id).status.value == "SUCCESS"


class TestDefaultCoordinator(CoordinatorConformanceSuite):
    @pytest.fixture
    def coordinator_config(self):
        return {"default": {}}


class TestQueuedCoordinator(CoordinatorConformanceSuite):
    @pytest.fixture
    def coordinator_config(self):
        return {"queued": {"max_concurrent_runs": 2}}
