"""Executor checks for hooks: a mixin of :class:`runyard.testing.executor.ExecutorConformanceSuite`.

Hooks (runyard.definitions.hooks) run in the process that ran the step, after its final attempt.
These checks prove that under the executor:

* a success hook runs once per succeeded step (attached per op and per job: still once), with the
  step's key, run id, job name and output values, in the step's own process, with a resource only
  the hook needs set up there;
* a hook that raises is a ``HOOK_ERRORED`` event with its traceback: the step still succeeds;
* a failure hook runs once, after the last retry (never on ``STEP_UP_FOR_RETRY``), with the op's
  exception; a step skipped because of it runs no hook.

Each step may run in its own process, container or pod: hooks only talk to the test through files
under ``OUT_DIR`` (``record``).
"""

from __future__ import annotations

from typing import Any

from ..storage.records import RunStatus

HOOKS = """
from runyard import failure_hook, resource, success_hook


@resource
def stamp(init):
    return f"stamp-{init.resource_key}"


@success_hook(required_resource_keys={"stamp"})
def on_success(context):
    record("success", f"{context.step_key} {context.op_output_values.get('result')} {context.job_name} "
                      f"{context.run_id} {context.resources.stamp} {os.getpid()}")


@failure_hook
def on_failure(context):
    error = context.op_exception
    record("failure", f"{context.step_key} {type(error).__name__}: {error} {context.job_name} {os.getpid()}")


@success_hook
def broken(context):
    raise RuntimeError(f"hook broken on {context.step_key}")


@op
def first(context) -> int:
    record(f"pid_{context.step_key}", os.getpid())
    return 3


@op
def second(context, x: int) -> int:
    record(f"pid_{context.step_key}", os.getpid())
    return x * 2


@op(retry_policy=RetryPolicy(max_retries=2, delay=0.01))
def recovers(context) -> int:
    record(f"pid_{context.step_key}", os.getpid())  # each attempt may run in a process of its own
    if context.retry_number < 1:
        raise ValueError("first attempt fails")
    return 5


@op(retry_policy=RetryPolicy(max_retries=2, delay=0.01))
def hopeless(context) -> int:
    record("hopeless", context.retry_number)
    record(f"pid_{context.step_key}", os.getpid())
    raise ValueError(f"attempt {context.retry_number + 1} fails")


@op
def never(x: int) -> None:
    record("never", x)


@job(hooks={on_success, on_failure}, resources={"stamp": stamp})
def hooked():
    second.with_hooks({broken, on_success})(first())
    recovers()


@job(hooks={on_success, on_failure}, resources={"stamp": stamp})
def hooked_failing():
    never(hopeless())
"""


class HookChecks:
    """Mixed into the executor conformance suite: uses its ``executor_home`` and
    ``executor_run_config`` fixtures."""

    @staticmethod
    def _run_hooks(home: Any, job_name: str, run_config: dict[str, Any]) -> Any:
        from ..execution.run_worker import execute_run

        path = home.write_defs(HOOKS, "hooks_defs.py")
        run, job = home.create_run(path, job_name, {"execution": run_config})
        return execute_run(home.instance, run.run_id, job=job)

    @staticmethod
    def _last_attempt_pid(home: Any, step_key: str) -> str:
        """The pid of the process that ran the step's last attempt (the op records it)."""
        pids = home.out_lines(f"pid_{step_key}")
        assert pids, f"step {step_key} did not run"
        return pids[-1]

    def test_success_hooks_run_once_per_step_where_it_ran(self, executor_home, executor_run_config):
        home = executor_home
        run = self._run_hooks(home, "hooked", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.SUCCESS, home.describe(rid)
        lines = sorted(home.out_lines("success"))
        expected = sorted(f"{step} {value} hooked {rid} stamp-stamp {self._last_attempt_pid(home, step)}"
                          for step, value in (("first", 3), ("second", 6), ("recovers", 5)))
        assert lines == expected, home.describe(rid)
        assert home.out_lines("failure") == []  # recovers' failed first attempt runs no failure hook
        for step in ("first", "second", "recovers"):
            kinds = home.types(rid, step)
            assert kinds.count("HOOK_COMPLETED") == 1, home.describe(rid)
            assert kinds.index("STEP_SUCCESS") < kinds.index("HOOK_COMPLETED")
        errored = home.events(rid, "HOOK_ERRORED")
        assert [(e.step_key, e.data["hook"]) for e in errored] == [("second", "broken")], home.describe(rid)
        assert "RuntimeError: hook broken on second" in errored[0].data["error"]
        assert "raise RuntimeError" in errored[0].data["traceback"]

    def test_failure_hooks_run_once_after_the_last_retry(self, executor_home, executor_run_config):
        home = executor_home
        run = self._run_hooks(home, "hooked_failing", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.FAILURE, home.describe(rid)
        assert home.out_lines("hopeless") == ["0", "1", "2"]
        assert home.out_lines("failure") == [
            f"hopeless ValueError: attempt 3 fails hooked_failing {self._last_attempt_pid(home, 'hopeless')}"], \
            home.describe(rid)
        kinds = [k for k in home.types(rid, "hopeless") if k.startswith(("STEP_", "HOOK_"))]
        assert kinds[-2:] == ["STEP_FAILURE", "HOOK_COMPLETED"], home.describe(rid)
        assert kinds.count("HOOK_COMPLETED") == 1 and kinds.count("STEP_UP_FOR_RETRY") == 2
        assert home.types(rid, "never") == ["STEP_SKIPPED"] and home.out_lines("success") == []
