"""Several named outputs, ``Output``, generators and ``Out(is_required=False)``: what
``op_result_values`` makes of an op body's result, and how a run branches — a step whose input was
not produced is skipped, the run still succeeds, a fan-in runs with what was produced.

Needs: nothing beyond Python (SQLite file under pytest's tmp_path).

Ops are defined inside the tests, so this module does not use ``from __future__ import
annotations``.
"""

import pickle

import pytest

from runyard import Config, DynamicOut, DynamicOutput, Out, Output, RunStatus, execute_job, job, op
from runyard.execution.outputs import ProducedOutput, StepOutputError, op_result_values


def gen(items):
    yield from items


def events(instance, run_id, *types, step_key=None):
    found = instance.storage.get_events(run_id, step_key=step_key)
    return [e for e in found if not types or str(e.event_type) in types]


# ---- op_result_values --------------------------------------------------------------------------------
@op(outs={"a": Out(int), "b": Out(str, is_required=False)})
def two_outs():
    yield Output(1, "a")


def test_a_generator_may_leave_out_an_optional_output():
    assert op_result_values(two_outs, two_outs.fn()) == [ProducedOutput("a", 1)]


def test_return_forms():
    @op
    def plain() -> int:
        return 3

    @op
    def wrapped():
        return Output(4, metadata={"rows": 4})

    @op(outs={"a": Out(int), "b": Out(int, is_required=False)})
    def tuple_with_none():
        return 1, None

    @op(outs={"a": Out(int), "b": Out(int)})
    def tuple_of_outputs():
        return Output(1, "a"), 2

    assert op_result_values(plain, 3) == [ProducedOutput("result", 3)]
    assert op_result_values(wrapped, wrapped.fn()) == [ProducedOutput("result", 4, None, {"rows": 4})]
    # None for an optional output in a return: not produced
    assert op_result_values(tuple_with_none, tuple_with_none.fn()) == [ProducedOutput("a", 1)]
    assert [p.value for p in op_result_values(tuple_of_outputs, tuple_of_outputs.fn())] == [1, 2]


def test_dynamic_outputs_keep_production_order():
    @op(out=DynamicOut(int))
    def fan():
        for key in ("z", "a", "m"):
            yield DynamicOutput(ord(key), mapping_key=key)

    assert [(p.mapping_key, p.value) for p in op_result_values(fan, fan.fn())] == [
        ("z", 122), ("a", 97), ("m", 109)]
    assert [p.mapping_key for p in op_result_values(fan, [DynamicOutput(1, "x"), DynamicOutput(2, "y")])] == [
        "x", "y"]


def test_a_generator_may_skip_an_ordering_only_output():
    @op(outs={"done": Out(None), "value": Out(int)})
    def orders():
        yield Output(5, "value")

    assert {p.output_name for p in op_result_values(orders, orders.fn())} == {"done", "value"}


@pytest.mark.parametrize("body, message", [
    (lambda: gen([Output(1, "a"), Output(2, "a")]), "op 'bad' produced output 'a' twice"),
    (lambda: gen([Output(1, "c")]), "op 'bad' produced output 'c', which it does not declare (outputs: a, b)"),
    (lambda: gen([Output("x", "b")]), "op 'bad' did not yield required output(s) a"),
    (lambda: gen([Output("x", "a")]), "op 'bad' output 'a' must be int, got str"),
    (lambda: gen([1]), "op 'bad' yielded a int; a generator op yields Output or DynamicOutput objects"),
    (lambda: gen([DynamicOutput(1, "k", "a")]), "yielded a DynamicOutput for output 'a', which is not a DynamicOut"),
    (lambda: (1,), "op 'bad' declares 2 outputs (a, b) and must return a tuple of that length"),
    (lambda: (Output(1, "b"), 2), "returned Output 'b' in the place of output 'a'"),
])
def test_bad_results_name_the_op_and_output(body, message):
    @op(name="bad", outs={"a": Out(int), "b": Out(str, is_required=False)})
    def bad():
        pass

    with pytest.raises(StepOutputError) as err:
        op_result_values(bad, body())
    assert message in str(err.value)


@pytest.mark.parametrize("result, message", [
    ([DynamicOutput(1, "a-b")], "mapping key 'a-b' is not valid: use letters, digits and _ only"),
    ([DynamicOutput(1, "k"), DynamicOutput(2, "k")], "mapping key 'k' was produced twice"),
    (gen([Output(1)]), "output 'result' is a DynamicOut: yield DynamicOutput(value, mapping_key=...)"),
    (5, "output 'result' is a DynamicOut: yield DynamicOutput(value, mapping_key=...) objects (or return a "
        "list of them), not a int"),
    (gen([]), "op 'dyn' did not yield required output(s) result"),
])
def test_bad_dynamic_results(result, message):
    @op(name="dyn", out=DynamicOut(int))
    def dyn():
        pass

    with pytest.raises(StepOutputError) as err:
        op_result_values(dyn, result)
    assert message in str(err.value)


def test_an_optional_dynamic_output_may_produce_nothing():
    @op(out=DynamicOut(int, is_required=False))
    def maybe():
        yield from ()

    assert op_result_values(maybe, maybe.fn()) == []


# ---- runs ------------------------------------------------------------------------------------------------
class RouteConfig(Config):
    value: int = 5


@op(outs={"big": Out(int, is_required=False), "small": Out(int, is_required=False)})
def route(config: RouteConfig):
    if config.value >= 10:
        yield Output(config.value, "big")
    else:
        yield Output(config.value, "small")


@op
def handle_big(x: int) -> str:
    return f"big {x}"


@op
def handle_small(x: int) -> str:
    return f"small {x}"


@op
def report(lines: list) -> str:
    return "; ".join(lines)


@op
def after_big(text: str) -> str:
    return text.upper()


@job
def branching():
    big, small = route()
    report([handle_big(big), handle_small(small)])
    after_big(handle_big.alias("handle_big_again")(big))


def test_branching_skips_what_was_not_produced_and_the_run_succeeds(instance, home):
    run = execute_job(branching, instance=instance)
    assert run.status == RunStatus.SUCCESS
    skipped = {e.step_key: e for e in events(instance, run.run_id, "STEP_SKIPPED")}
    assert set(skipped) == {"handle_big", "handle_big_again", "after_big"}
    assert skipped["handle_big"].data["not_produced"] is True
    assert "input 'x' has no value: route.big was not produced" in skipped["handle_big"].message
    assert skipped["handle_big"].level == "INFO"
    # the fan-in ran with the one value that was produced
    assert pickle.loads((home / "storage" / run.run_id / "report" / "result").read_bytes()) == "small 5"
    assert not (home / "storage" / run.run_id / "route" / "big").exists()
    finished = events(instance, run.run_id, "RUN_SUCCESS")[0]
    assert "3 skipped (an input was not produced)" in finished.message


def test_the_other_branch(instance, home):
    run = execute_job(branching, instance=instance, run_config={"ops": {"route": {"config": {"value": 12}}}})
    assert run.status == RunStatus.SUCCESS
    assert {e.step_key for e in events(instance, run.run_id, "STEP_SKIPPED")} == {"handle_small"}
    assert pickle.loads((home / "storage" / run.run_id / "after_big" / "result").read_bytes()) == "BIG 12"


def test_a_fan_in_with_nothing_produced_is_skipped(instance):
    @op(outs={"a": Out(int, is_required=False), "b": Out(int, is_required=False)})
    def neither():
        yield from ()

    @op
    def gather(xs: list) -> int:
        return len(xs)

    @op
    def downstream(n: int) -> int:
        return n

    @job
    def empty_fan_in():
        a, b = neither()
        downstream(gather([a, b]))

    run = execute_job(empty_fan_in, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert [e.step_key for e in events(instance, run.run_id, "STEP_SKIPPED")] == ["gather", "downstream"]


def test_a_missing_required_output_fails_the_step_and_skips_downstream(instance):
    @op(outs={"a": Out(int), "b": Out(int)})
    def forgets():
        yield Output(1, "a")

    @op
    def uses(x: int) -> int:
        return x

    @job
    def forgetful():
        a, b = forgets()
        uses(a)
        uses.alias("uses_b")(b)

    run = execute_job(forgetful, instance=instance)
    assert run.status == RunStatus.FAILURE
    failure = events(instance, run.run_id, "STEP_FAILURE")[0]
    assert failure.step_key == "forgets"
    assert "op 'forgets' did not yield required output(s) b" in failure.data["error"]
    skipped = events(instance, run.run_id, "STEP_SKIPPED")
    assert {e.step_key for e in skipped} == {"uses", "uses_b"}
    assert not any(e.data.get("not_produced") for e in skipped)


def test_an_optional_nothing_output_orders_a_branch(instance):
    calls = []

    @op(outs={"go": Out(None, is_required=False), "stop": Out(None, is_required=False)})
    def decide():
        yield Output(None, "go")

    @op
    def on_go(start: None) -> None:
        calls.append("go")

    @op
    def on_stop(start: None) -> None:
        calls.append("stop")

    @job
    def nothing_branch():
        go, stop = decide()
        on_go(go)
        on_stop(stop)

    run = execute_job(nothing_branch, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert calls == ["go"]
    outputs = events(instance, run.run_id, "STEP_OUTPUT", step_key="decide")
    assert [e.data["output"] for e in outputs] == ["go"]


def test_outputs_of_a_step_travel_in_its_outcome(instance):
    from runyard.execution.step import StepOutcome  # noqa: F401 - the type whose data is checked

    seen = []

    def listener(event):
        if str(event.event_type) == "STEP_OUTPUT":
            seen.append((event.step_key, event.data["output"], event.data.get("mapping_key")))

    run = execute_job(branching, instance=instance, listeners=[listener])
    assert run.status == RunStatus.SUCCESS
    assert ("route", "small", None) in seen and not any(out == "big" for _, out, _ in seen)


def test_from_failure_does_not_rerun_a_branch_that_was_not_produced(tmp_path):
    from runyard.errors import RunyardError
    from runyard.execution.api import prepare_reexecution
    from runyard.execution.run_worker import execute_run
    from runyard.testing import SuiteHome

    defs = '''
from runyard import Out, Output


@op(outs={"a": Out(int, is_required=False), "b": Out(int, is_required=False)})
def pick():
    yield Output(1, "a")


@op
def use_a(x: int) -> int:
    if os.path.exists(os.path.join(OUT_DIR, "fail")):
        raise RuntimeError("fail is set")
    return x


@op
def use_b(x: int) -> int:
    return x


@job
def picked():
    a, b = pick()
    use_a(a)
    use_b(b)
'''
    home = SuiteHome(tmp_path)
    try:
        run, job_def = home.create_run(home.write_defs(defs), "picked", {})
        ok = execute_run(home.instance, run.run_id, job=job_def)
        assert ok.status == RunStatus.SUCCESS
        with pytest.raises(RunyardError, match="nothing to re-execute from failure"):
            prepare_reexecution(home.instance, ok.run_id, mode="from_failure")
        (home.out_dir / "fail").write_text("")
        run, _ = home.create_run(home.root / "suite_defs_1.py", "picked", {})
        failed = execute_run(home.instance, run.run_id, job=job_def)
        assert failed.status == RunStatus.FAILURE
        (home.out_dir / "fail").unlink()
        child = prepare_reexecution(home.instance, failed.run_id, mode="from_failure")
        assert child.step_keys_to_execute == ["use_a"]
        assert execute_run(home.instance, child.run_id, job=job_def).status == RunStatus.SUCCESS
    finally:
        home.close()
