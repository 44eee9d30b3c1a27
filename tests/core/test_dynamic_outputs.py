"""Dynamic fan-out: ``DynamicOut``/``DynamicOutput``, ``.map()`` and ``.collect()`` — definition-time
errors, mapped steps keyed ``op[key]`` added to the plan at run time (and stored with the run), IO
manager contexts with mapping keys, mapped steps run as step processes (what the ``docker`` and
``k8s`` executors do), and re-execution of an op selection that maps over a parent's keys.

Needs: nothing beyond Python (SQLite files under pytest's tmp_path, local subprocesses).

Ops are defined inside the tests, so this module does not use ``from __future__ import
annotations``.
"""

import pickle
import subprocess
import sys
from typing import Any

import pytest

from runyard import (
    Config,
    DynamicOut,
    DynamicOutput,
    IOManager,
    Out,
    RunStatus,
    execute_job,
    job,
    op,
)
from runyard.errors import DefinitionError
from runyard.execution.plan import stored_plan
from runyard.execution.step_process import parse_outcome
from runyard.storage.records import StepStatus
from runyard.testing import SuiteHome


def events(instance, run_id, *types, step_key=None):
    found = instance.storage.get_events(run_id, step_key=step_key)
    return [e for e in found if not types or str(e.event_type) in types]


@op(out=DynamicOut(int))
def split():
    for value, key in zip((5, 1, 3), ("e", "a", "c"), strict=True):
        yield DynamicOutput(value, mapping_key=key)


@op
def square(x: int) -> int:
    return x * x


@op
def negate(x: int) -> int:
    return -x


@op
def total(values: list) -> list:
    return values


@op
def single() -> int:
    return 1


# ---- definitions -------------------------------------------------------------------------------------
def test_a_dynamic_output_is_passed_through_map_or_collect():
    with pytest.raises(DefinitionError) as err:
        @job
        def direct():
            square(split())
    assert ("input 'x' of op 'square' takes the DynamicOut 'result' of 'split' directly; use .map(op) to run "
            "'square' once per value or .collect() to receive them all as a list") in str(err.value)


def test_map_and_collect_need_a_dynamic_output():
    with pytest.raises(DefinitionError) as err:
        @job
        def static_map():
            single().map(square)
    assert "output 'result' of 'single' is not dynamic: .map() needs a DynamicOut output" in str(err.value)
    with pytest.raises(DefinitionError) as err:
        @job
        def static_collect():
            total(single().collect())
    assert "output 'result' of 'single' is not dynamic: .collect() needs a DynamicOut output" in str(err.value)


def test_nested_fan_out_and_two_dynamic_sources_are_refused():
    @op(out=DynamicOut(int))
    def again(x: int):
        yield DynamicOutput(x, mapping_key="k")

    with pytest.raises(DefinitionError) as err:
        @job
        def nested():
            split().map(again)
    assert "op 'again' is mapped and has a DynamicOut; nested dynamic fan-out is not supported" in str(err.value)

    @op
    def pair(a: int, b: int) -> int:
        return a + b

    with pytest.raises(DefinitionError) as err:
        @job
        def two():
            other = split.alias("split_2")()
            split().map(lambda x: other.map(lambda y: pair(x, y)))
    assert "op 'pair' is mapped over several dynamic outputs (split.result, split_2.result)" in str(err.value)


def test_collect_inside_a_fan_in_list_is_refused():
    with pytest.raises(DefinitionError) as err:
        @job
        def mixed():
            total([split().collect(), single()])
    assert "input 'values' of op 'total' mixes .collect() into a fan-in list" in str(err.value)


# ---- in-process runs ----------------------------------------------------------------------------------
def test_map_chain_and_collect(instance, home):
    @job
    def fanned():
        total(split().map(square).map(negate).collect())

    run = execute_job(fanned, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert run.output_for_node("total") == [-25, -1, -9]  # the order split produced the keys in
    assert run.output_for_node("split") == {"e": 5, "a": 1, "c": 3}
    succeeded = [e.step_key for e in events(instance, run.run_id, "STEP_SUCCESS")]
    assert succeeded == ["split", "square[e]", "square[a]", "square[c]", "negate[e]", "negate[a]", "negate[c]",
                         "total"]
    # one file per mapping key
    assert pickle.loads((home / "storage" / run.run_id / "split" / "result" / "a").read_bytes()) == 1
    assert pickle.loads((home / "storage" / run.run_id / "square[c]" / "result").read_bytes()) == 9
    plan = stored_plan(instance.storage, run.run_id)
    assert [s.key for s in plan] == ["split", "square[e]", "square[a]", "square[c]", "negate[e]", "negate[a]",
                                     "negate[c]", "total"]
    assert dict((s.key, s.upstream) for s in plan)["negate[a]"] == ("square[a]",)
    added = [e for e in events(instance, run.run_id, "ENGINE_EVENT") if e.data.get("mapped_from") == "split"]
    assert len(added) == 1 and len(added[0].data["plan"]) == 6


def test_mapped_ops_take_config_static_inputs_and_see_their_step_key(instance):
    seen = []

    class Scale(Config):
        factor: int

    @op
    def scale(context, config: Scale, x: int, offset: int) -> int:
        seen.append(context.step_key)
        assert context.step_key == f"scale[{context.get_mapping_key()}]"
        return x * config.factor + offset

    @op
    def offset() -> int:
        return 1000

    @job
    def scaled():
        o = offset()
        total(split().map(lambda x: scale(x, o)).collect())

    run = execute_job(scaled, instance=instance, run_config={"ops": {"scale": {"config": {"factor": 2}}}})
    assert run.status == RunStatus.SUCCESS
    assert run.output_for_node("total") == [1010, 1002, 1006]
    assert seen == ["scale[e]", "scale[a]", "scale[c]"]


def test_io_manager_contexts_carry_mapping_keys(instance):
    stored: dict = {}
    loads: list = []

    class Recording(IOManager):
        def handle_output(self, context, obj):
            stored[(context.step_key, context.output_name, context.mapping_key)] = obj

        def load_input(self, context):
            loads.append((context.step_key, context.upstream_step_key, context.upstream_mapping_key))
            return stored[(context.upstream_step_key, context.upstream_output_name, context.upstream_mapping_key)]

    @job(resources={"io_manager": Recording()})
    def recorded():
        split().map(square).collect()

    @op
    def noop(values: list) -> None:
        pass

    @job(resources={"io_manager": Recording()})
    def recorded_collect():
        noop(split().map(square).collect())

    for j in (recorded, recorded_collect):
        run = execute_job(j, instance=instance)
        assert run.status == RunStatus.SUCCESS
    assert stored[("split", "result", "a")] == 1 and stored[("square[a]", "result", None)] == 1
    assert ("square[c]", "split", "c") in loads
    assert [entry for entry in loads if entry[0] == "noop"] == [
        ("noop", "square[e]", None), ("noop", "square[a]", None), ("noop", "square[c]", None)]


def test_an_empty_optional_fan_out_skips_the_collect_and_succeeds(instance):
    @op(out=DynamicOut(int, is_required=False))
    def nothing():
        yield from ()

    @job
    def empty():
        total(nothing().map(square).collect())

    run = execute_job(empty, instance=instance)
    assert run.status == RunStatus.SUCCESS
    (skipped,) = events(instance, run.run_id, "STEP_SKIPPED")
    assert skipped.step_key == "total" and skipped.data["not_produced"] is True
    assert [s.key for s in stored_plan(instance.storage, run.run_id)] == ["nothing", "total"]


def test_a_bad_mapping_key_fails_the_dynamic_step(instance):
    @op(out=DynamicOut(int))
    def bad_keys():
        yield DynamicOutput(1, mapping_key="has space")

    @job
    def bad():
        bad_keys().map(square)

    run = execute_job(bad, instance=instance)
    assert run.status == RunStatus.FAILURE
    (failure,) = events(instance, run.run_id, "STEP_FAILURE")
    assert failure.step_key == "bad_keys"
    assert "mapping key 'has space' is not valid: use letters, digits and _ only" in failure.data["error"]


def test_a_collect_of_mapped_steps_with_optional_outputs_gets_the_produced_ones(instance):
    @op(out=Out(int, is_required=False))
    def odd_only(x: int):
        from runyard import Output

        if x % 2:
            yield Output(x)

    @op
    def keep(x: int) -> int:
        return x

    @op
    def evens_or_not() -> list:
        return []

    @op(out=DynamicOut(int))
    def numbers():
        for i in range(4):
            yield DynamicOutput(i, mapping_key=f"n{i}")

    @job
    def odd():
        total(numbers().map(lambda x: keep(odd_only(x))).collect())

    run = execute_job(odd, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert run.output_for_node("total") == [1, 3]
    skipped = sorted(e.step_key for e in events(instance, run.run_id, "STEP_SKIPPED"))
    assert skipped == ["keep[n0]", "keep[n2]"]


# ---- step processes -----------------------------------------------------------------------------------
DEFS = """
from runyard import DynamicOut, DynamicOutput


@op(out=DynamicOut(int))
def split():
    for value, key in zip((5, 1, 3), ("e", "a", "c")):
        yield DynamicOutput(value, mapping_key=key)


@op
def square(x: int) -> int:
    return x * x


@op
def total(values: list) -> None:
    record("total", ",".join(map(str, values)))


@job
def fanned():
    total(split().map(square).collect())
"""


def _step(home: SuiteHome, run_id: str, key: str) -> Any:
    proc = subprocess.run([sys.executable, "-m", "runyard.execution.step_process", run_id, key, "0"],
                          env=home.worker_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return parse_outcome(proc.stdout, key, 0)


def test_mapped_and_collect_steps_run_as_step_processes_from_their_key_and_storage(tmp_path):
    """What the docker and k8s executors do: each step a process of its own, which rebuilds the
    plan as it was at run start and knows nothing but its step key."""
    home = SuiteHome(tmp_path)
    try:
        run, _ = home.create_run(home.write_defs(DEFS), "fanned", {})
        outcome = _step(home, run.run_id, "split")
        assert outcome.status == StepStatus.SUCCESS and outcome.data["outputs"] == {"result": ["e", "a", "c"]}
        for key in ("c", "e", "a"):
            mapped = _step(home, run.run_id, f"square[{key}]")
            assert mapped.status == StepStatus.SUCCESS, home.describe(run.run_id)
            assert mapped.data["outputs"] == {"result": None}
        assert _step(home, run.run_id, "total").status == StepStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("total") == ["25,1,9"]
        unknown = _step(home, run.run_id, "square[zz]")
        assert unknown.status == StepStatus.FAILURE
        assert "mapping key 'zz'" in unknown.error and "of step 'split'" in unknown.error
    finally:
        home.close()


# ---- re-execution -------------------------------------------------------------------------------------
def test_reexecuting_a_selection_maps_over_the_parents_keys(tmp_path):
    from runyard.execution.api import prepare_reexecution
    from runyard.execution.run_worker import execute_run

    home = SuiteHome(tmp_path)
    try:
        path = home.write_defs(DEFS)
        run, job_def = home.create_run(path, "fanned", {})
        parent = execute_run(home.instance, run.run_id, job=job_def)
        assert parent.status == RunStatus.SUCCESS, home.describe(parent.run_id)
        child = prepare_reexecution(home.instance, parent.run_id, mode="all", ops="square*")
        assert child.step_keys_to_execute == ["square", "total"]
        child = execute_run(home.instance, child.run_id, job=job_def)
        assert child.status == RunStatus.SUCCESS, home.describe(child.run_id)
        started = [e.step_key for e in home.events(child.run_id, "STEP_START")]
        assert started == ["square[e]", "square[a]", "square[c]", "total"]
        assert home.out_lines("total") == ["25,1,9", "25,1,9"]
        assert [s.key for s in stored_plan(home.instance.storage, child.run_id)] == started
    finally:
        home.close()


def test_a_graph_can_be_mapped_and_hold_a_fan_out(instance):
    from runyard import graph

    @op
    def inc(x: int) -> int:
        return x + 1

    @graph
    def per_item(x):
        return inc(square(x))

    @graph
    def inside():
        return total(split().map(per_item).collect())

    @job
    def graphs():
        total.alias("outer_total")([inside()])

    run = execute_job(graphs, instance=instance)
    assert run.status == RunStatus.SUCCESS
    succeeded = [e.step_key for e in events(instance, run.run_id, "STEP_SUCCESS")]
    assert "inside.per_item.square[a]" in succeeded and "inside.per_item.inc[c]" in succeeded
    assert run.output_for_node("inside.total") == [26, 2, 10]


def test_reexecuting_selected_mapped_steps(tmp_path):
    from runyard.definitions.selection import parse_op_selection
    from runyard.execution.api import prepare_reexecution
    from runyard.execution.run_worker import execute_run

    home = SuiteHome(tmp_path)
    try:
        path = home.write_defs(DEFS)
        run, job_def = home.create_run(path, "fanned", {})
        assert parse_op_selection(job_def, "total, square[a]") == ["total", "square[a]"]
        parent = execute_run(home.instance, run.run_id, job=job_def)
        child = prepare_reexecution(home.instance, parent.run_id, mode="all", ops="square[a],total")
        child = execute_run(home.instance, child.run_id, job=job_def)
        assert child.status == RunStatus.SUCCESS, home.describe(child.run_id)
        assert [e.step_key for e in home.events(child.run_id, "STEP_START")] == ["square[a]", "total"]
        loaded = [e.data["upstream"] for e in home.events(child.run_id, "LOADED_INPUT", "total")]
        assert loaded == ["square[e].result", "square[a].result", "square[c].result"]
        assert home.out_lines("total") == ["25,1,9", "25,1,9"]
    finally:
        home.close()


def test_from_failure_of_a_failed_dynamic_step_maps_again(tmp_path):
    from runyard.execution.api import prepare_reexecution
    from runyard.execution.run_worker import execute_run

    home = SuiteHome(tmp_path)
    try:
        path = home.write_defs(DEFS.replace('def split():\n', 'def split():\n'
                                            '    if os.path.exists(os.path.join(OUT_DIR, "fail")):\n'
                                            '        raise RuntimeError("fail is set")\n'))
        (home.out_dir / "fail").write_text("")
        run, job_def = home.create_run(path, "fanned", {})
        parent = execute_run(home.instance, run.run_id, job=job_def)
        assert parent.status == RunStatus.FAILURE
        (home.out_dir / "fail").unlink()
        child = prepare_reexecution(home.instance, parent.run_id, mode="from_failure")
        assert child.step_keys_to_execute == ["split", "total", "square"]
        child = execute_run(home.instance, child.run_id, job=job_def)
        assert child.status == RunStatus.SUCCESS, home.describe(child.run_id)
        assert home.out_lines("total") == ["25,1,9"]
    finally:
        home.close()


def test_a_fresh_run_cannot_select_one_mapped_step(instance):
    from runyard.errors import RunConfigError

    @job
    def fanned():
        total(split().map(square).collect())

    with pytest.raises(RunConfigError) as err:
        execute_job(fanned, instance=instance, ops="square[a]")
    assert "step(s) square[a] of a mapped op can only be selected when re-executing a run" in str(err.value)
