"""Executor checks for nested graphs: a mixin of :class:`runyard.testing.executor.ExecutorConformanceSuite`.

A job made of graphs is flattened into steps keyed by dotted paths (``outer.inner.op``); an executor
never sees the graphs, only those keys. These checks prove that under the executor:

* values flow into a graph through its inputs, out through its outputs, two levels deep, with a
  graph input passed straight through to an output and several graph outputs fanned into one op;
* every step key is the dotted path, and nested run config (``ops: {outer: {ops: {...}}}``) and a
  graph's config mapping reach the ops inside;
* re-executing a run from failure re-runs only the failed nested step and what is downstream of it,
  reading the other values from the parent run.

Each step may run in its own process, container or pod: the ops only talk to the test through
files under ``OUT_DIR`` (``record``).
"""

from __future__ import annotations

from typing import Any

from ..storage.records import RunStatus

NESTED = """
from runyard import ConfigMapping, graph


class AddConfig(Config):
    n: int = 1


@op
def seed() -> int:
    return 2


@op
def add(config: AddConfig, x: int) -> int:
    return x + config.n


@op
def double(x: int) -> int:
    if os.path.exists(os.path.join(OUT_DIR, "fail_double")):
        raise RuntimeError("fail_double is set")
    return x * 2


@op
def gather(context, values: list) -> int:
    record("gather", ",".join(map(str, values)))
    record("gather_step", context.step_key)
    return sum(values)


@graph
def inner(x):
    return double(add(x))


class Scale(Config):
    n: int


@graph(config=ConfigMapping(lambda cfg: {"add": {"config": {"n": cfg.n}}}, config_schema=Scale))
def mapped(x):
    return add(x)


@graph
def outer(x):
    first = inner(x)
    return {"deep": inner(first), "same": x, "mapped": mapped(first)}


@job
def nested_graphs():
    out = outer(seed())
    gather([out["deep"], out["same"], out["mapped"]])
"""

STEPS = ["seed", "outer.inner.add", "outer.inner.double", "outer.inner_2.add", "outer.mapped.add",
         "outer.inner_2.double", "gather"]

RUN_CONFIG = {"ops": {"outer": {"ops": {"inner_2": {"ops": {"add": {"config": {"n": 10}}}},
                                        "mapped": {"config": {"n": 100}}}}}}


class NestedGraphChecks:
    """Mixed into the executor conformance suite: uses its ``executor_home`` and
    ``executor_run_config`` fixtures."""

    @staticmethod
    def _run_nested(home: Any, run_config: dict[str, Any], parent_run_id: str | None = None) -> Any:
        from ..execution.api import prepare_reexecution
        from ..execution.run_worker import execute_run

        if parent_run_id is not None:
            run = prepare_reexecution(home.instance, parent_run_id, mode="from_failure")
            _, job = home.load_job(home.root / "nested_graphs_defs.py", "nested_graphs")
            return execute_run(home.instance, run.run_id, job=job)
        path = home.write_defs(NESTED, "nested_graphs_defs.py")
        run, job = home.create_run(path, "nested_graphs", {"execution": run_config, **RUN_CONFIG})
        return execute_run(home.instance, run.run_id, job=job)

    def test_values_flow_through_nested_graphs_under_dotted_step_keys(self, executor_home, executor_run_config):
        home = executor_home
        run = self._run_nested(home, executor_run_config)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        # seed 2 -> inner: (2+1)*2 = 6 -> inner_2: (6+10)*2 = 32; mapped: 6+100 = 106; same: 2
        assert home.out_lines("gather") == ["32,2,106"]
        assert home.out_lines("gather_step") == ["gather"]
        succeeded = {e.step_key for e in home.events(run.run_id, "STEP_SUCCESS")}
        assert succeeded == set(STEPS), home.describe(run.run_id)
        starts = [e.step_key for e in home.events(run.run_id, "STEP_START")]
        assert sorted(starts) == sorted(STEPS)
        for up, down in [("outer.inner.double", "outer.inner_2.add"), ("outer.inner.double", "outer.mapped.add"),
                         ("outer.inner_2.double", "gather"), ("outer.mapped.add", "gather")]:
            assert starts.index(up) < starts.index(down), home.describe(run.run_id)

    def test_reexecution_from_failure_reruns_the_failed_nested_step(self, executor_home, executor_run_config):
        home = executor_home
        flag = home.out_dir / "fail_double"
        flag.write_text("")
        parent = self._run_nested(home, executor_run_config)
        assert parent.status == RunStatus.FAILURE, home.describe(parent.run_id)
        failed = [e.step_key for e in home.events(parent.run_id, "STEP_FAILURE")]
        assert failed == ["outer.inner.double"], home.describe(parent.run_id)
        flag.unlink()
        child = self._run_nested(home, executor_run_config, parent_run_id=parent.run_id)
        assert child.status == RunStatus.SUCCESS, home.describe(child.run_id)
        assert sorted(child.step_keys_to_execute) == sorted(s for s in STEPS if s not in ("seed",
                                                                                           "outer.inner.add"))
        started = {e.step_key for e in home.events(child.run_id, "STEP_START")}
        assert "seed" not in started and "outer.inner.add" not in started
        assert home.out_lines("gather") == ["32,2,106"]
