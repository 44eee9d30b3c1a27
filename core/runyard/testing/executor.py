"""The executor conformance suite.

Checks the rules of :mod:`runyard.executors.base` against a real run worker: every test writes a
definitions file, creates a run of one of its jobs with the executor selected in run config, and
executes it with :func:`runyard.execution.run_worker.execute_run` on a fresh SQLite instance (the
termination test starts ``runyard execute-run`` as a real process and sends it SIGTERM).

An executor plugin subclasses :class:`ExecutorConformanceSuite` and provides the
``executor_run_config`` fixture: the ``execution:`` mapping of run config that selects it::

    from runyard.testing.executor import ExecutorConformanceSuite

    class TestMyExecutor(ExecutorConformanceSuite):
        @pytest.fixture
        def executor_run_config(self):
            return {"my_executor": {"workers": 2}}

Optional fixtures: ``executor_instance_settings`` (a mapping written to the instance file; default
``{}``, the SQLite defaults) and ``executor_timeout`` (seconds any one run may take; default 60).

The rules:

* ordering: a step starts (``STEP_START``) only after every upstream step's ``STEP_SUCCESS``;
* fan-in: an input fed by several outputs receives every value, in the order they were wired;
* failure: a failed step reports ``STEP_FAILURE`` with its error, everything downstream of it is
  ``STEP_SKIPPED``, independent branches still run and succeed, and the run ends ``FAILURE``;
* retry: a retried step reports ``STEP_UP_FOR_RETRY`` then ``STEP_RESTARTED``, the op sees
  ``context.retry_number`` go 0, 1, 2, the step succeeds on its third attempt and its downstream
  step runs; once retries are exhausted the step fails and the run ends ``FAILURE``;
* termination: SIGTERM to the run worker while an op sleeps ends the run ``CANCELED``, every step
  that started has ended (``STEP_FAILURE`` for an interrupted one), and no process is left behind
  (every pid reported in ``STEP_START`` events and every process in the worker's process group is
  gone);
* nested graphs, dynamic fan-out and optional outputs, hooks and partitions: the mixins of
  :mod:`.executor_graphs`, :mod:`.executor_dynamic`, :mod:`.executor_hooks` and
  :mod:`.executor_partitions`, each run with a process per step in mind (ops and hooks report
  through files, not memory shared with the test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from ..storage.records import RunRecord, RunStatus
from .executor_dynamic import DynamicOutputChecks
from .executor_graphs import NestedGraphChecks
from .executor_hooks import HookChecks
from .executor_partitions import PartitionChecks
from .helpers import SuiteHome, kill_group, live_pids_in_group, pid_gone, wait_until

ORDERING = """
@op
def source() -> int:
    return 1


@op
def left(x: int) -> int:
    return x + 10


@op
def right(x: int) -> int:
    return x + 100


@op
def join(a: int, b: int) -> int:
    record("join", a + b)
    return a + b


@op
def last(total: int) -> None:
    record("last", total)


@op
def lone() -> None:
    record("lone", "ran")


@job
def diamond():
    s = source()
    last(join(left(s), right(s)))
    lone()
"""

FAN_IN = """
def make(i):
    @op(name=f"part_{i}")
    def part() -> int:
        time.sleep(0.05 * (5 - i))  # later parts finish first where steps run in parallel
        return i * 10
    return part


PARTS = [make(i) for i in range(5)]


@op
def gather(values: list[int]) -> int:
    record("gather", ",".join(map(str, values)))
    return sum(values)


@job
def fan_in():
    gather([part() for part in PARTS])
"""

FAILURE = """
@op
def start() -> int:
    return 1


@op
def explode(x: int) -> int:
    raise ValueError(f"boom {x + 41}")


@op
def below(x: int) -> int:
    record("ran", "below")
    return x


@op
def further(x: int) -> None:
    record("ran", "further")


@op
def other() -> int:
    time.sleep(0.2)
    return 2


@op
def other_after(x: int) -> None:
    record("ran", "other_after")


@job
def failing():
    further(below(explode(start())))
    other_after(other())
"""

RETRY = """
@op(retry_policy=RetryPolicy(max_retries=3, delay=0.05))
def flaky(context) -> int:
    record("flaky", context.retry_number)
    if context.retry_number < 2:
        raise RuntimeError(f"attempt {context.retry_number + 1} fails")
    return 7


@op
def after_flaky(x: int) -> None:
    record("after_flaky", x)


@job
def retrying():
    after_flaky(flaky())


@op(retry_policy=RetryPolicy(max_retries=1))
def hopeless(context) -> int:
    record("hopeless", context.retry_number)
    raise RuntimeError("never works")


@op
def after_hopeless(x: int) -> None:
    record("after_hopeless", x)


@job
def exhausted():
    after_hopeless(hopeless())


@op
def asks(context) -> None:
    record("asks", context.retry_number)
    if context.retry_number < 2:
        raise RetryRequested(max_retries=2)


@job
def requested():
    asks()
"""

SLEEPERS = """
@op
def sleep_a(context) -> None:
    context.log.info("sleeping")
    record("sleeping", "a")
    time.sleep(120)


@op
def sleep_b(context) -> None:
    context.log.info("sleeping")
    record("sleeping", "b")
    time.sleep(120)


@op
def after_sleep(context) -> None:
    record("ran", "after_sleep")


@job
def sleepers():
    sleep_a()
    sleep_b()
    after_sleep()
"""


class ExecutorConformanceSuite(NestedGraphChecks, DynamicOutputChecks, HookChecks, PartitionChecks):
    """Subclass and provide ``executor_run_config``. The mixins hold the checks of nested graphs,
    dynamic and optional outputs, hooks and partitions (their modules list them)."""

    @pytest.fixture
    def executor_run_config(self) -> dict[str, Any]:  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide an `executor_run_config` fixture: the run config `execution:` "
                                  "mapping that selects your executor, e.g. {'my_executor': {}}")

    @pytest.fixture
    def executor_instance_settings(self) -> dict[str, Any]:
        """The instance file's settings (default: none, an embedded SQLite instance)."""
        return {}

    @pytest.fixture
    def executor_timeout(self) -> float:
        return 60.0

    @pytest.fixture
    def executor_home(self, tmp_path, executor_instance_settings):
        home = SuiteHome(tmp_path, executor_instance_settings)
        yield home
        home.close()

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def execute(home: SuiteHome, source: str, job_name: str, run_config: dict[str, Any],
                extra_config: dict[str, Any] | None = None) -> RunRecord:
        """Run ``job_name`` of ``source`` to completion in this process with the executor."""
        from ..execution.run_worker import execute_run

        path = home.write_defs(source)
        run, job = home.create_run(path, job_name, {"execution": run_config, **(extra_config or {})})
        return execute_run(home.instance, run.run_id, job=job)

    @staticmethod
    def index(home: SuiteHome, run_id: str, event_type: str, step_key: str) -> int:
        events = home.instance.storage.get_events(run_id)
        found = [i for i, e in enumerate(events) if str(e.event_type) == event_type and e.step_key == step_key]
        assert len(found) == 1, f"expected one {event_type} of step {step_key}:\n{home.describe(run_id)}"
        return found[0]

    # ---- ordering --------------------------------------------------------------------------------
    def test_steps_start_after_their_upstream_steps_succeed(self, executor_home, executor_run_config):
        home = executor_home
        run = self.execute(home, ORDERING, "diamond", executor_run_config)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        edges = [("source", "left"), ("source", "right"), ("left", "join"), ("right", "join"),
                 ("join", "last")]
        for up, down in edges:
            assert (self.index(home, run.run_id, "STEP_SUCCESS", up)
                    < self.index(home, run.run_id, "STEP_START", down)), \
                f"{down} started before {up} succeeded:\n{home.describe(run.run_id)}"
        for step in ("source", "left", "right", "join", "last", "lone"):
            assert self.index(home, run.run_id, "STEP_START", step) < \
                self.index(home, run.run_id, "STEP_SUCCESS", step)
        assert home.out_lines("join") == ["112"] and home.out_lines("last") == ["112"]
        assert home.out_lines("lone") == ["ran"]
        kinds = home.types(run.run_id)
        assert kinds[-1] == "RUN_SUCCESS" and "STEP_SKIPPED" not in kinds and "STEP_FAILURE" not in kinds

    def test_fan_in_receives_every_value_in_wiring_order(self, executor_home, executor_run_config):
        home = executor_home
        run = self.execute(home, FAN_IN, "fan_in", executor_run_config)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("gather") == ["0,10,20,30,40"]
        for i in range(5):
            assert (self.index(home, run.run_id, "STEP_SUCCESS", f"part_{i}")
                    < self.index(home, run.run_id, "STEP_START", "gather"))

    # ---- failure ---------------------------------------------------------------------------------
    def test_failure_skips_downstream_and_independent_steps_finish(self, executor_home, executor_run_config):
        home = executor_home
        run = self.execute(home, FAILURE, "failing", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.FAILURE, home.describe(rid)
        failure = home.events(rid, "STEP_FAILURE", "explode")
        assert len(failure) == 1, home.describe(rid)
        assert "ValueError: boom 42" in failure[0].data["error"]
        assert failure[0].level == "ERROR"
        assert "STEP_SUCCESS" not in home.types(rid, "explode")
        for step in ("below", "further"):
            assert home.types(rid, step) == ["STEP_SKIPPED"], home.describe(rid)
        for step in ("start", "other", "other_after"):
            assert "STEP_SUCCESS" in home.types(rid, step), home.describe(rid)
        assert home.out_lines("ran") == ["other_after"]
        run_failure = home.events(rid, "RUN_FAILURE")
        assert len(run_failure) == 1 and home.types(rid)[-1] == "RUN_FAILURE"
        assert "explode" in run_failure[0].message

    # ---- retries ---------------------------------------------------------------------------------
    def test_retried_step_succeeds_on_its_third_attempt(self, executor_home, executor_run_config):
        home = executor_home
        run = self.execute(home, RETRY, "retrying", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.SUCCESS, home.describe(rid)
        assert home.out_lines("flaky") == ["0", "1", "2"]
        kinds = [k for k in home.types(rid, "flaky") if k.startswith("STEP_")]
        assert [k for k in kinds if k not in ("STEP_OUTPUT",)] == [
            "STEP_START", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_UP_FOR_RETRY", "STEP_RESTARTED",
            "STEP_SUCCESS"], home.describe(rid)
        restarted = home.events(rid, "STEP_RESTARTED", "flaky")
        assert [e.data.get("attempt") for e in restarted] == [2, 3]
        retry = home.events(rid, "STEP_UP_FOR_RETRY", "flaky")
        assert "attempt 1 fails" in retry[0].data["error"]
        assert home.out_lines("after_flaky") == ["7"]
        assert (self.index(home, rid, "STEP_SUCCESS", "flaky")
                < self.index(home, rid, "STEP_START", "after_flaky"))

    def test_exhausted_retries_fail_the_step_and_the_run(self, executor_home, executor_run_config):
        home = executor_home
        run = self.execute(home, RETRY, "exhausted", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.FAILURE, home.describe(rid)
        assert home.out_lines("hopeless") == ["0", "1"]
        kinds = home.types(rid, "hopeless")
        assert kinds.count("STEP_UP_FOR_RETRY") == 1 and kinds.count("STEP_RESTARTED") == 1
        failure = home.events(rid, "STEP_FAILURE", "hopeless")
        assert len(failure) == 1 and failure[0].data.get("attempt") == 2
        assert home.types(rid, "after_hopeless") == ["STEP_SKIPPED"]
        assert home.out_lines("after_hopeless") == []

    def test_retry_requested_by_the_op(self, executor_home, executor_run_config):
        home = executor_home
        run = self.execute(home, RETRY, "requested", executor_run_config)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("asks") == ["0", "1", "2"]
        assert home.types(run.run_id, "asks").count("STEP_RESTARTED") == 2

    # ---- termination -----------------------------------------------------------------------------
    def test_sigterm_to_the_worker_cancels_the_run_and_leaves_no_process(
            self, executor_home, executor_run_config, executor_timeout, tmp_path):
        home = executor_home
        path = home.write_defs(SLEEPERS)
        run, _ = home.create_run(path, "sleepers", {"execution": executor_run_config})
        rid = run.run_id
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "runyard", "execute-run", rid],
                                      env=home.worker_env(), stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

        def worker_output() -> str:
            return log_path.read_text(errors="replace")

        try:
            wait_until(lambda: home.out_lines("sleeping") or worker.poll() is not None,
                       timeout=executor_timeout, what="an op to start sleeping")
            assert worker.poll() is None, f"the worker exited early:\n{worker_output()}\n{home.describe(rid)}"
            wait_until(lambda: home.events(rid, "STEP_START"), timeout=10, what="STEP_START to be stored")
            os.kill(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=executor_timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the run worker did not exit after SIGTERM:\n{worker_output()}\n{home.describe(rid)}")
            run = home.instance.get_run(rid)
            assert run.status == RunStatus.CANCELED, f"{worker_output()}\n{home.describe(rid)}"
            kinds = home.types(rid)
            assert kinds.index("RUN_CANCELING") < kinds.index("RUN_CANCELED") == len(kinds) - 1
            for start in home.events(rid, "STEP_START"):  # no step is left looking like it still runs
                ends = [k for k in home.types(rid, start.step_key) if k in ("STEP_SUCCESS", "STEP_FAILURE")]
                assert ends, f"step {start.step_key} started but never ended:\n{home.describe(rid)}"
            step_pids = {e.data["pid"] for e in home.events(rid, "STEP_START") if e.data.get("pid")}
            assert step_pids, "STEP_START events must carry the pid of the process running the step"
            wait_until(lambda: all(pid_gone(pid) for pid in step_pids), timeout=15,
                       what=f"step processes {sorted(step_pids)} to exit")
            wait_until(lambda: not live_pids_in_group(worker.pid), timeout=15,
                       what=f"the worker's process group to be empty (left: {live_pids_in_group(worker.pid)})")
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            kill_group(worker.pid)
