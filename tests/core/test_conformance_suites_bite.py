"""The conformance suites catch what they claim to: each broken component below subclasses a
built-in one with exactly one defect, and the suite's check for that defect fails for it (run by
pytester in a pytest subprocess, as a plugin author would run the suite), with a message that says
what is wrong. The built-ins pass the same checks in ``test_conformance_builtins.py``.

Also: the suites' failures show values (``runyard.testing`` registers pytest's assertion rewriting
for its modules), and ``import runyard.testing`` works where pytest is not installed.

Needs: real subprocesses, signals and Linux /proc.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ("pytester",)

BROKEN_LAUNCHERS = '''
import dataclasses
import os
import signal
import subprocess
import sys
import time

from runyard.launchers import procinfo
from runyard.launchers.base import HealthCheckResult, WorkerHealth
from runyard.launchers.process import ProcessRunLauncher


class NeverKills(ProcessRunLauncher):
    """terminate sends SIGTERM and never escalates to SIGKILL."""

    def terminate(self, context):
        os.kill(context.run.launcher_info["pid"], signal.SIGTERM)
        return True


class SharesTheSession(ProcessRunLauncher):
    """Cold workers stay in the launching process's session and process group."""

    def _launch_cold(self, run_id, env, log_path):
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "runyard", "execute-run", run_id],
                                    env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        self._children[proc.pid] = proc
        return proc.pid, procinfo.start_ticks(proc.pid)


class WaitsForTheRun(ProcessRunLauncher):
    """launch_run returns only once the worker exited."""

    def launch_run(self, context):
        super().launch_run(context)
        while procinfo.is_alive(context.run.launcher_info["pid"]):
            time.sleep(0.05)


class RemembersInMemory(ProcessRunLauncher):
    """Records nothing that finds the worker again; only this launcher object knows its pid."""

    def __init__(self, config=None):
        super().__init__(config)
        self._workers = {}

    def launch_run(self, context):
        run_id = context.run.run_id
        log_path = self.log_path(context.instance.home, run_id)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        pid, start = self._launch_cold(run_id, self._worker_env(context), log_path)
        self._workers[run_id] = {"pid": pid, "pid_start": start}
        context.record_worker(launched=True)

    def _known(self, context):
        info = self._workers.get(context.run.run_id)
        return None if info is None else dataclasses.replace(
            context, run=dataclasses.replace(context.run, launcher_info=info))

    def check_run_worker_health(self, context):
        known = self._known(context)
        if known is None:
            return HealthCheckResult(WorkerHealth.UNKNOWN, "not launched by this launcher object")
        return super().check_run_worker_health(known)

    def terminate(self, context):
        known = self._known(context)
        return False if known is None else super().terminate(known)
'''

LAUNCHER_SUITE = '''
import pytest

from runyard.testing.launcher import LauncherConformanceSuite


class TestBroken(LauncherConformanceSuite):
    @pytest.fixture
    def launcher_config(self):
        return {{"module": "broken_launchers", "class": "{cls}",
                 "config": {{"warm": False, "grace_period_seconds": 1}}}}

    @pytest.fixture
    def launch_bound_seconds(self):
        return 3.0

    @pytest.fixture
    def kill_bound_seconds(self):
        return 3.0

    @pytest.fixture
    def launcher_timeout(self):
        return 30.0
'''


def run_launcher_check(pytester: pytest.Pytester, cls: str, test: str) -> pytest.RunResult:
    """Run one check of the launcher suite against ``broken_launchers.<cls>``."""
    pytester.makepyfile(broken_launchers=BROKEN_LAUNCHERS)
    pytester.makepyfile(test_broken_launcher=LAUNCHER_SUITE.format(cls=cls))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", test, timeout=180)


@pytest.mark.parametrize("cls, test, says", [
    ("NeverKills", "test_terminate_kills_a_worker_that_ignores_sigterm",
     ["*the worker still runs*after terminate*must be killed (SIGKILL) once the grace period is over*"]),
    ("SharesTheSession", "test_worker_leads_its_own_session",
     ["*worker * is in process group * and session *: it must lead its own*",
      # assertion rewriting: the compared values, not just the message
      "*assert (*, *) == (*, *)*"]),
    ("WaitsForTheRun", "test_launch_returns_without_waiting_for_the_worker",
     ["*launch_run has not returned after *s (bound: 3.0s)*"]),
    ("RemembersInMemory", "test_another_process_checks_and_terminates_the_worker",
     ["*from a new process (a new launcher object), with only launcher_info {'launched': True}: "
      "{'health': 'unknown', 'terminated': False}. launch_run must record_worker(...) everything*"]),
])
def test_launcher_suite_catches_the_defect(pytester, cls, test, says):
    result = run_launcher_check(pytester, cls, test)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(says)


BROKEN_COORDINATORS = '''
from runyard.coordinators.default import DefaultRunCoordinator
from runyard.coordinators.queued import QueuedRunCoordinator
from runyard.launchers.base import LaunchRunContext
from runyard.storage.records import RunStatus


class SwallowsLaunchErrors(DefaultRunCoordinator):
    """Launches by itself and ignores a launcher that raises: the run stays STARTING, unexplained."""

    def submit_run(self, context):
        instance, run = context.instance, context.run
        instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING, "launching")
        try:
            instance.run_launcher.launch_run(LaunchRunContext(instance=instance, run=instance.get_run(run.run_id)))
        except Exception:
            pass
        return instance.get_run(run.run_id)


class QueuesSilently(QueuedRunCoordinator):
    """Marks runs QUEUED without the RUN_ENQUEUED event."""

    def submit_run(self, context):
        storage = context.instance.storage
        storage.transition_run(context.run.run_id, [RunStatus.NOT_STARTED], RunStatus.QUEUED, [])
        return context.instance.get_run(context.run.run_id)
'''

COORDINATOR_SUITE = '''
import pytest

from runyard.testing.coordinator import CoordinatorConformanceSuite


class TestBroken(CoordinatorConformanceSuite):
    @pytest.fixture
    def coordinator_config(self):
        return {{"module": "broken_coordinators", "class": "{cls}", "config": {{}}}}
'''


@pytest.mark.parametrize("cls, test, says", [
    ("SwallowsLaunchErrors", "test_a_run_the_launcher_cannot_start_ends_with_a_reason",
     ["*left the run STARTING*"]),
    ("QueuesSilently", "test_submitted_run_is_launched_or_queued",
     ["*RUN_ENQUEUED*"]),
])
def test_coordinator_suite_catches_the_defect(pytester, cls, test, says):
    pytester.makepyfile(broken_coordinators=BROKEN_COORDINATORS)
    pytester.makepyfile(test_broken_coordinator=COORDINATOR_SUITE.format(cls=cls))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", test, timeout=180)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(says)


def test_suite_modules_are_rewritten_by_pytest():
    import runyard.testing.coordinator
    import runyard.testing.executor
    import runyard.testing.helpers
    import runyard.testing.launcher
    import runyard.testing.storage

    for module in (runyard.testing.coordinator, runyard.testing.executor, runyard.testing.helpers,
                   runyard.testing.launcher, runyard.testing.storage):
        assert "@pytest_ar" in vars(module), f"{module.__name__} was imported without assertion rewriting"


def test_runyard_testing_imports_without_pytest():
    code = textwrap.dedent("""
        import sys
        sys.modules["pytest"] = None  # as if pytest were not installed
        import runyard.testing
        print(runyard.testing.wait_until(lambda: "ok", timeout=1))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr
