"""The run coordinator conformance suite.

Checks the rules of :mod:`runyard.coordinators.base` with real runs: each test creates a
``NOT_STARTED`` run, hands it to the coordinator under test through ``instance.submit_run`` (as the
CLI, the web UI and daemon ticks do), lets the run be launched (at once, or by dequeuing it the way
the daemon does) and watches it through storage. Runs are launched by the ``process`` launcher,
cold, unless ``coordinator_instance_settings`` selects another.

A coordinator plugin subclasses :class:`CoordinatorConformanceSuite` and provides the
``coordinator_config`` fixture: the instance file's ``run_coordinator:`` mapping that selects it::

    from runyard.testing.coordinator import CoordinatorConformanceSuite

    class TestMyCoordinator(CoordinatorConformanceSuite):
        @pytest.fixture
        def coordinator_config(self):
            return {"my_coordinator": {"max_concurrent_runs": 2}}

Optional fixtures:

* ``coordinator_instance_settings``: other instance file settings (default: the ``process``
  launcher with ``warm: false``, embedded SQLite);
* ``dequeue_runs``: a callable ``dequeue_runs(instance)`` that launches what a coordinator with
  ``queues_runs`` holds, as its daemon would. The default makes one pass of runyard's daemon queue
  loop (claim under ``claim_limits()``, launch), which is what the daemon runs for any coordinator;
* ``coordinator_timeout``: seconds a run may take to finish (default 60).

The rules:

* submit: ``submit_run`` takes a ``NOT_STARTED`` run and returns it as stored. A coordinator that
  launches at once (``queues_runs = False``) returns it ``STARTING`` or later, with the launcher's
  ``RUN_STARTING`` event; one that queues (``queues_runs = True``) returns it ``QUEUED`` with exactly
  one ``RUN_ENQUEUED`` event and no worker yet. Either way the run then finishes ``SUCCESS``;
* once: a run that is no longer ``NOT_STARTED`` is refused with ``InvalidTransitionError`` and
  nothing about it changes (no second launch, no second event);
* refused by the launcher: when the launcher cannot start a worker, the run ends ``FAILURE`` with a
  ``RUN_FAILURE`` event that carries the launcher's error. It never stays ``NOT_STARTED``,
  ``QUEUED`` or ``STARTING`` with nothing saying why;
* a job that cannot be loaded: the run ends ``FAILURE`` with a ``RUN_FAILURE`` event that names the
  job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..errors import InvalidTransitionError
from ..launchers.base import RunLauncher
from ..storage.records import (
    FINISHED_STATUSES,
    IN_PROGRESS_STATUSES,
    PENDING_STATUSES,
    CodePointer,
    RunRecord,
    RunStatus,
)
from .helpers import SuiteHome, kill_group
from .launcher import JOBS  # its `quick` job: hello -> bye, which records 1

#: the message of the launcher that refuses every run (the "refused by the launcher" rule)
REFUSAL = "the test launcher refuses every run"


class RefusingLauncher(RunLauncher):
    """A run launcher that cannot start any worker."""

    def launch_run(self, context) -> None:
        raise RuntimeError(REFUSAL)

    def terminate(self, context) -> bool:
        return False


def dequeue_with_the_daemon(instance) -> list[RunRecord]:
    """One pass of the daemon's queue loop: claim what the coordinator's limits allow and launch it."""
    from ..daemon.daemon import Daemon

    daemon = Daemon(instance)
    try:
        assert daemon.lease.tick(), "another daemon holds this test instance's lease"
        return daemon.dequeue()
    finally:
        daemon.stop()


class CoordinatorConformanceSuite:
    """Subclass and provide ``coordinator_config``."""

    @pytest.fixture
    def coordinator_config(self) -> dict[str, Any]:  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `coordinator_config` fixture: the instance file's `run_coordinator:` "
                                  "mapping that selects your coordinator, e.g. {'my_coordinator': {}}")

    @pytest.fixture
    def coordinator_instance_settings(self) -> dict[str, Any]:
        return {"run_launcher": {"process": {"warm": False}}}

    @pytest.fixture
    def coordinator_timeout(self) -> float:
        return 60.0

    @pytest.fixture
    def dequeue_runs(self) -> Callable[[Any], list[RunRecord]]:
        return dequeue_with_the_daemon

    @pytest.fixture
    def coordinator_home_factory(self, tmp_path, coordinator_config, coordinator_instance_settings):
        """``make(**settings)``: a SuiteHome with the coordinator under test (and ``settings`` over
        the instance settings); every home is closed and its workers stopped at the end."""
        homes: list[SuiteHome] = []

        def make(**settings: Any) -> SuiteHome:
            root = tmp_path / f"home{len(homes)}"
            homes.append(SuiteHome(root, {**coordinator_instance_settings, **settings,
                                          "run_coordinator": coordinator_config}))
            return homes[-1]

        yield make
        for home in homes:
            for run in home.instance.storage.get_runs():  # never leave a worker behind
                pid = run.launcher_info.get("pid")
                if run.status not in FINISHED_STATUSES and pid:
                    kill_group(int(pid))
            home.instance.run_launcher.dispose()
            home.close()

    @pytest.fixture
    def coordinator_home(self, coordinator_home_factory) -> SuiteHome:
        return coordinator_home_factory()

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def new_run(home: SuiteHome, job_name: str = "quick") -> RunRecord:
        """A stored NOT_STARTED run of ``job_name`` from the launcher suite's jobs."""
        path = home.write_defs(JOBS, name="coordinator_defs.py")
        run, _ = home.create_run(path, job_name, {})
        assert run.status == RunStatus.NOT_STARTED
        return run

    @staticmethod
    def submit(home: SuiteHome, run: RunRecord, dequeue_runs) -> RunRecord | BaseException:
        """Submit ``run``; dequeue it when the coordinator queues. Returns what ``submit_run``
        returned, or the exception it raised."""
        try:
            submitted: RunRecord | BaseException = home.instance.submit_run(run)
        except Exception as exc:  # noqa: BLE001 - the rules say what may be raised
            submitted = exc
        if home.instance.run_coordinator.queues_runs:
            dequeue_runs(home.instance)
        return submitted

    # ---- submit ----------------------------------------------------------------------------------
    def test_submitted_run_is_launched_or_queued(self, coordinator_home, dequeue_runs, coordinator_timeout):
        home = coordinator_home
        coordinator = home.instance.run_coordinator
        run = self.new_run(home)
        returned = home.instance.submit_run(run)
        stored = home.instance.get_run(run.run_id)
        assert returned.run_id == run.run_id
        kinds = home.types(run.run_id)
        if coordinator.queues_runs:
            assert (returned.status, stored.status) == (RunStatus.QUEUED, RunStatus.QUEUED), home.describe(run.run_id)
            assert kinds.count("RUN_ENQUEUED") == 1, f"a queued run has one RUN_ENQUEUED event: {kinds}"
            assert "RUN_STARTING" not in kinds and not stored.launcher_info, "a queued run has no worker yet"
            dequeue_runs(home.instance)
        else:
            assert returned.status not in PENDING_STATUSES, returned.status
            assert stored.status in IN_PROGRESS_STATUSES | FINISHED_STATUSES, stored.status
            assert "RUN_STARTING" in kinds and "RUN_ENQUEUED" not in kinds, kinds
        run = home.wait_finished(run.run_id, timeout=coordinator_timeout)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("bye") == ["1"]

    def test_a_run_is_submitted_once(self, coordinator_home, dequeue_runs, coordinator_timeout):
        home = coordinator_home
        run = self.new_run(home)
        home.instance.submit_run(run)
        before = home.instance.get_run(run.run_id)
        events = home.types(run.run_id)
        with pytest.raises(InvalidTransitionError):
            home.instance.submit_run(before)
        after = home.instance.get_run(run.run_id)
        assert (after.status, after.launcher_info) == (before.status, before.launcher_info) or \
            after.status in FINISHED_STATUSES, f"a refused second submit changed the run: {before} -> {after}"
        assert home.types(run.run_id)[:len(events)] == events
        if home.instance.run_coordinator.queues_runs:
            dequeue_runs(home.instance)
        run = home.wait_finished(run.run_id, timeout=coordinator_timeout)
        kinds = home.types(run.run_id)
        assert run.status == RunStatus.SUCCESS and kinds.count("RUN_STARTING") == 1, home.describe(run.run_id)

    # ---- refused runs ----------------------------------------------------------------------------
    def test_a_run_the_launcher_cannot_start_ends_with_a_reason(self, coordinator_home_factory, dequeue_runs):
        home = coordinator_home_factory(run_launcher={"module": __name__, "class": RefusingLauncher.__name__})
        run = self.new_run(home)
        self.submit(home, run, dequeue_runs)
        run = home.instance.get_run(run.run_id)
        assert run.status == RunStatus.FAILURE, (
            f"the launcher refused the run, and the coordinator left the run {run.status}: it must end FAILURE "
            f"with the launcher's error\n{home.describe(run.run_id)}")
        failures = home.events(run.run_id, "RUN_FAILURE")
        assert len(failures) == 1, home.describe(run.run_id)
        assert REFUSAL in failures[0].message + str(failures[0].data), \
            f"the RUN_FAILURE event does not say why: {failures[0].message!r} {failures[0].data}"

    def test_a_run_whose_job_cannot_be_loaded_ends_failure(self, coordinator_home, dequeue_runs,
                                                           coordinator_timeout):
        home = coordinator_home
        path = home.write_defs(JOBS, name="coordinator_defs.py")
        run = home.instance.create_run(job_name="no_such_job", code_pointer=CodePointer(python_file=str(path)))
        self.submit(home, run, dequeue_runs)
        run = home.wait_finished(run.run_id, timeout=coordinator_timeout)
        assert run.status == RunStatus.FAILURE, home.describe(run.run_id)
        failures = home.events(run.run_id, "RUN_FAILURE")
        assert len(failures) == 1 and "no_such_job" in failures[0].message + str(failures[0].data), \
            home.describe(run.run_id)
