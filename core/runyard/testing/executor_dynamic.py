"""Executor checks for dynamic fan-out and optional outputs: a mixin of
:class:`runyard.testing.executor.ExecutorConformanceSuite`.

A dynamic step's plan grows at run time: when it finishes, the executor adds one step per mapping
key and mapped op (``square[a]``), and the step that ``.collect()``\\ s waits for them. These checks
prove that under the executor:

* values fan out through ``.map()`` (a chain of two mapped ops) and back in through ``.collect()``
  in the order the mapping keys were produced; the mapped steps are keyed ``op[key]`` and the run's
  stored plan lists them;
* an optional output left out skips what is downstream of it (not a failure) and the run succeeds;
* a failing mapped step skips the collecting step and fails the run, the other keys still run;
* re-executing that run from failure re-runs only the failed key's steps and the collecting step,
  reading the other keys' values and the mapping keys from the parent run.

Each step may run in its own process, container or pod: the ops only talk to the test through
files under ``OUT_DIR`` (``record``), and a step process learns what it needs (a mapped step's
value, the keys a collect reads) from its step key and the run's stored events.
"""

from __future__ import annotations

from typing import Any

from ..storage.records import RunStatus

DYNAMIC = """
from runyard import DynamicOut, DynamicOutput, Out, Output


@op(out=DynamicOut(int))
def split():
    for value, key in enumerate(["c", "a", "b"], start=1):
        yield DynamicOutput(value, mapping_key=key)


@op
def square(context, x: int) -> int:
    record("square_steps", context.step_key)
    if os.path.exists(os.path.join(OUT_DIR, f"fail_{x}")):
        raise RuntimeError(f"fail_{x} is set")
    return x * x


@op
def plus(x: int) -> int:
    return x + 100


@op
def total(values: list) -> int:
    record("total", ",".join(map(str, values)))
    return sum(values)


@job
def fanned():
    total(split().map(lambda v: plus(square(v))).collect())


@op(outs={"even": Out(int, is_required=False), "odd": Out(int, is_required=False)})
def parity():
    yield Output(3, "odd")


@op
def on_even(x: int) -> None:
    record("ran", "on_even")


@op
def on_odd(x: int) -> None:
    record("ran", f"on_odd {x}")


@job
def branches():
    even, odd = parity()
    on_even(even)
    on_odd(odd)
"""

def _index(home: Any, run_id: str, event_type: str, step_key: str) -> int:
    events = home.instance.storage.get_events(run_id)
    found = [i for i, e in enumerate(events) if str(e.event_type) == event_type and e.step_key == step_key]
    assert len(found) == 1, f"expected one {event_type} of step {step_key}:\n{home.describe(run_id)}"
    return found[0]


MAPPED = ["square[c]", "square[a]", "square[b]", "plus[c]", "plus[a]", "plus[b]"]


class DynamicOutputChecks:
    """Mixed into the executor conformance suite: uses its ``executor_home`` and
    ``executor_run_config`` fixtures."""

    @staticmethod
    def _run_dynamic(home: Any, job_name: str, run_config: dict[str, Any],
                     parent_run_id: str | None = None) -> Any:
        from ..execution.api import prepare_reexecution
        from ..execution.run_worker import execute_run

        path = home.root / "dynamic_defs.py"
        if parent_run_id is not None:
            run = prepare_reexecution(home.instance, parent_run_id, mode="from_failure")
            _, job = home.load_job(path, job_name)
            return execute_run(home.instance, run.run_id, job=job)
        if not path.exists():
            home.write_defs(DYNAMIC, "dynamic_defs.py")
        run, job = home.create_run(path, job_name, {"execution": run_config})
        return execute_run(home.instance, run.run_id, job=job)

    def test_dynamic_fan_out_and_collect(self, executor_home, executor_run_config):
        from ..execution.plan import stored_plan

        home = executor_home
        run = self._run_dynamic(home, "fanned", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.SUCCESS, home.describe(rid)
        # c=1, a=2, b=3 squared plus 100, in the order split produced the keys
        assert home.out_lines("total") == ["101,104,109"], home.describe(rid)
        succeeded = [e.step_key for e in home.events(rid, "STEP_SUCCESS")]
        assert sorted(succeeded) == sorted(["split", "total", *MAPPED]), home.describe(rid)
        assert sorted(home.out_lines("square_steps")) == ["square[a]", "square[b]", "square[c]"]
        for key in MAPPED:
            assert _index(home, rid, "STEP_SUCCESS", "split") < _index(home, rid, "STEP_START", key)
            assert _index(home, rid, "STEP_SUCCESS", key) < _index(home, rid, "STEP_START", "total")
        for key in "cab":
            assert (_index(home, rid, "STEP_SUCCESS", f"square[{key}]")
                    < _index(home, rid, "STEP_START", f"plus[{key}]"))
        outputs = home.events(rid, "STEP_OUTPUT", "split")
        assert [e.data.get("mapping_key") for e in outputs] == ["c", "a", "b"]
        plan = stored_plan(home.instance.storage, rid)
        assert plan is not None and sorted(s.key for s in plan) == sorted(["split", "total", *MAPPED])
        keys = [s.key for s in plan]
        assert keys[0] == "split" and keys[-1] == "total"
        assert set(next(s for s in plan if s.key == "total").upstream) >= {"plus[a]", "plus[b]", "plus[c]"}

    def test_an_optional_output_left_out_skips_its_branch(self, executor_home, executor_run_config):
        home = executor_home
        run = self._run_dynamic(home, "branches", executor_run_config)
        rid = run.run_id
        assert run.status == RunStatus.SUCCESS, home.describe(rid)
        assert home.out_lines("ran") == ["on_odd 3"]
        skipped = home.events(rid, "STEP_SKIPPED")
        assert [e.step_key for e in skipped] == ["on_even"], home.describe(rid)
        assert skipped[0].data.get("not_produced") is True
        assert "parity.even was not produced" in skipped[0].message

    def test_a_failing_mapped_step_skips_the_collect_and_reexecution_reruns_it(
            self, executor_home, executor_run_config):
        home = executor_home
        flag = home.out_dir / "fail_2"  # key "a" carries 2
        flag.write_text("")
        parent = self._run_dynamic(home, "fanned", executor_run_config)
        pid = parent.run_id
        assert parent.status == RunStatus.FAILURE, home.describe(pid)
        assert [e.step_key for e in home.events(pid, "STEP_FAILURE")] == ["square[a]"], home.describe(pid)
        assert sorted(e.step_key for e in home.events(pid, "STEP_SKIPPED")) == ["plus[a]", "total"]
        for key in ("square[c]", "square[b]", "plus[c]", "plus[b]"):
            assert "STEP_SUCCESS" in home.types(pid, key), home.describe(pid)
        assert home.out_lines("total") == []

        flag.unlink()
        child = self._run_dynamic(home, "fanned", executor_run_config, parent_run_id=pid)
        cid = child.run_id
        assert child.status == RunStatus.SUCCESS, home.describe(cid)
        assert child.step_keys_to_execute == ["square[a]", "plus[a]", "total"]
        started = sorted(e.step_key for e in home.events(cid, "STEP_START"))
        assert started == ["plus[a]", "square[a]", "total"], home.describe(cid)
        # the other keys' values and the mapping keys' order come from the parent run
        assert home.out_lines("total") == ["101,104,109"]
