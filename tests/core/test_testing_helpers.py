"""Unit-testing helpers (docs/testing.md): ``build_op_context``, direct op calls,
``job.execute_in_process`` and the :class:`JobExecutionResult` that it and ``execute_job`` return.

Needs: nothing beyond Python (SQLite files under temp directories).
"""

from __future__ import annotations

import gc
import os

import pytest

from runyard import (
    Config,
    DynamicOut,
    DynamicOutput,
    JobExecutionResult,
    Out,
    Output,
    RunFailedError,
    build_hook_context,
    build_op_context,
    execute_job,
    graph,
    job,
    op,
    resource,
    success_hook,
)
from runyard.errors import DefinitionError, RunConfigError, RunyardError
from runyard.execution.direct import InvalidInvocationError
from runyard.execution.outputs import StepOutputError

# ---- ops used below -------------------------------------------------------------------------------------


class ScaleConfig(Config):
    factor: int = 2


@op
def add(x: int, y: int = 10) -> int:
    return x + y


@op
def scaled(context, x: int, config: ScaleConfig) -> int:
    context.log.info(f"scaling {x}")
    return x * config.factor


@op(required_resource_keys={"db"})
def query(context, table: str) -> list:
    return context.resources.db.rows(table)


@op(outs={"even": Out(int, is_required=False), "odd": Out(int, is_required=False)})
def branch(x: int):
    if x % 2:
        yield Output(x, "odd")
    else:
        yield Output(x, "even")


@op(out=DynamicOut(str))
def split(words: str):
    for w in words.split():
        yield DynamicOutput(w.upper(), mapping_key=w)


@op(outs={"a": Out(int), "b": Out(str)})
def pair() -> tuple:
    return 1, "b"


class FakeDb:
    def __init__(self):
        self.closed = False

    def rows(self, table: str) -> list:
        return [f"{table}:1", f"{table}:2"]


# ---- build_op_context and direct calls ------------------------------------------------------------------


def test_an_op_without_context_is_called_like_a_function():
    assert add(1) == 11 and add(1, y=2) == 3 and add(x=5, y=5) == 10


def test_an_op_with_context_gets_one_built_when_none_is_passed():
    assert scaled(3) == 6  # a context built, config from the Config's defaults
    assert scaled(3, config=ScaleConfig(factor=5)) == 15
    assert scaled(3, config={"factor": 4}) == 12
    ctx = build_op_context(op_config={"factor": 10})
    assert scaled(ctx, 3) == 30 and scaled(ctx, x=1) == 10
    assert scaled(context=ctx, x=2) == 20
    assert scaled(ctx, 2, ScaleConfig(factor=7)) == 14  # positional, in the function's parameter order
    with pytest.raises(InvalidInvocationError, match="op 'scaled' got config twice"):
        scaled(ctx, 2, ScaleConfig(), config={"factor": 1})


def test_build_op_context_sets_up_resources_and_tears_them_down():
    log: list[str] = []

    @resource
    def db(init):
        log.append(f"setup {init.resource_key}")
        yield FakeDb()
        log.append("teardown")

    with build_op_context(resources={"db": db}) as ctx:
        assert query(ctx, "users") == ["users:1", "users:2"]
        assert log == ["setup db"]
    assert log == ["setup db", "teardown"]
    plain = FakeDb()
    ctx = build_op_context(resources={"db": plain})
    assert ctx.resources.db is plain  # a plain object is passed as it is
    assert query(ctx, table="t") == ["t:1", "t:2"]


def test_resource_config_is_validated():
    class Conn(Config):
        url: str

    @resource(config=Conn)
    def conn(init):
        return init.config.url

    assert build_op_context(resources={"c": conn}, resources_config={"c": {"url": "x://"}}).resources.c == "x://"
    with pytest.raises(InvalidInvocationError, match="resource 'c': invalid config"):
        build_op_context(resources={"c": conn})


def test_context_fields_partition_tags_and_run_id():
    from runyard.tags import PARTITION_TAG

    seen = {}

    @op
    def look(context) -> None:
        seen.update(run_id=context.run_id, op=context.op_name, step=context.step_key, tags=context.run_tags,
                    partition=context.partition_key)

    look(build_op_context(partition_key="2024-01-01", run_tags={"team": "x"}, run_id="r1"))
    assert seen == {"run_id": "r1", "op": "look", "step": "look",
                    "tags": {"team": "x", PARTITION_TAG: "2024-01-01"}, "partition": "2024-01-01"}


def test_direct_calls_of_generators_and_outputs_return_values():
    assert branch(3) == (None, 3) and branch(4) == (4, None)
    assert split("a b") == {"a": "A", "b": "B"}
    assert pair() == (1, "b")

    @op
    def wrapped() -> int:
        return Output(5)

    assert wrapped() == 5

    @op
    def yields_twice():
        yield Output(1)
        yield Output(2)

    with pytest.raises(StepOutputError, match="yields_twice"):
        yields_twice()


def test_wrong_arguments_name_the_op():
    with pytest.raises(InvalidInvocationError, match=r"op 'add' is missing input 'x'"):
        add()
    with pytest.raises(InvalidInvocationError, match=r"op 'add' has no input 'z' \(inputs: x, y\)"):
        add(1, z=2)
    with pytest.raises(InvalidInvocationError, match=r"op 'add' takes 2 argument\(s\) \(x, y\) but was called with 3"):
        add(1, 2, 3)
    with pytest.raises(InvalidInvocationError, match="op 'add' got input 'x' twice"):
        add(1, x=2)
    with pytest.raises(InvalidInvocationError, match="input 'x' of op 'add' expected int, got str"):
        add("1")
    with pytest.raises(InvalidInvocationError, match="op 'add' has no 'context' parameter"):
        add(build_op_context(), 1)
    with pytest.raises(InvalidInvocationError, match="op 'add' takes no config"):
        add(1, config={"a": 1})
    with pytest.raises(InvalidInvocationError, match=r"op 'scaled': invalid config ScaleConfig: factor"):
        scaled(1, config={"factor": "many"})
    with pytest.raises(InvalidInvocationError, match="op 'scaled' takes config ScaleConfig, got a Other"):
        class Other(Config):
            pass

        scaled(1, config=Other())
    with pytest.raises(InvalidInvocationError, match="op 'query' requires resource.s. db: call it with a context"):
        query("t")
    with pytest.raises(InvalidInvocationError, match="op 'query' requires resource.s. db that its context"):
        query(build_op_context(), "t")
    assert isinstance(InvalidInvocationError("x"), DefinitionError)


def test_build_hook_context_for_hook_unit_tests():
    got = []

    @success_hook(required_resource_keys={"pager"})
    def page(context):
        got.append((context.resources.pager, context.op_name, context.op_output_values))

    page(build_hook_context(resources={"pager": "p"}, op=add, op_output_values={"result": 1}))
    assert got == [("p", "add", {"result": 1})]


# ---- execute_in_process and the result -----------------------------------------------------------------


@op
def five() -> int:
    return 5


@job
def chain():
    scaled(add(five()))


def test_execute_in_process_returns_outputs_and_events():
    result = chain.execute_in_process(run_config={"ops": {"scaled": {"config": {"factor": 3}}}})
    assert isinstance(result, JobExecutionResult) and result.success
    assert result.output_for_node("add") == 15 and result.output_for_node("scaled") == 45
    assert [e.step_key for e in result.get_step_success_events()] == ["five", "add", "scaled"]
    assert result.get_step_failure_events() == []
    assert {str(e.event_type) for e in result.events_for_node("scaled")} >= {"STEP_START", "STEP_SUCCESS", "LOG"}
    assert str(result.all_events[0].event_type) == "RUN_START"
    assert result.run.status.value == "SUCCESS" and result.status.value == "SUCCESS"  # delegated to .run
    assert result.dagster_run is result.run and result.job_def.name == "chain"
    with pytest.raises(RunyardError, match="op node 'scaled' has no output 'nope'"):
        result.output_for_node("scaled", "nope")
    with pytest.raises(RunyardError, match="job 'chain' has no op node 'missing'"):
        result.output_for_node("missing")
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        result.nonsense  # noqa: B018


def test_the_ephemeral_instance_is_a_temp_dir_removed_with_the_result(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNYARD_HOME", str(tmp_path / "user-home"))
    result = chain.execute_in_process()
    home = result.instance.home
    assert os.path.isdir(home) and not home.startswith(str(tmp_path))
    assert not (tmp_path / "user-home").exists()
    del result
    gc.collect()
    assert not os.path.exists(home)


def test_execute_in_process_on_a_given_instance(instance):
    result = chain.execute_in_process(instance=instance, tags={"team": "data"})
    assert instance.get_run(result.run_id).tags["team"] == "data"
    assert result.instance is instance and os.path.isdir(instance.home)


def test_multiple_optional_and_dynamic_outputs():
    @op
    def number() -> int:
        return 7

    @op
    def text() -> str:
        return "a b c"

    @job
    def shapes():
        branch(number())
        split(text())
        pair()

    result = shapes.execute_in_process()
    assert result.output_for_node("branch", "odd") == 7
    with pytest.raises(RunyardError, match="op node 'branch' did not produce output 'even'"):
        result.output_for_node("branch", "even")
    assert result.output_for_node("split") == {"a": "A", "b": "B", "c": "C"}
    assert (result.output_for_node("pair", "a"), result.output_for_node("pair", "b")) == (1, "b")


def test_raise_on_error_reraises_the_op_exception():
    @op
    def boom(x: int) -> int:
        raise ZeroDivisionError(f"boom {x}")

    @job
    def broken():
        boom(five())

    with pytest.raises(ZeroDivisionError, match="boom 5"):
        broken.execute_in_process()
    result = broken.execute_in_process(raise_on_error=False)
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["boom"]
    assert result.output_for_node("five") == 5


def test_run_config_errors_raise_before_running():
    with pytest.raises(RunConfigError, match="ops.scaled.config.factor"):
        chain.execute_in_process(run_config={"ops": {"scaled": {"config": {"factor": "x"}}}})


def test_op_selection_resources_and_partition_key():
    from runyard.tags import PARTITION_TAG

    @op
    def name() -> str:
        return "users"

    @job(resources={"db": FakeDb()}, executor="multiprocess")
    def reads_users():
        query(name())

    other = FakeDb()
    other.rows = lambda table: ["other"]
    result = reads_users.execute_in_process(resources={"db": other}, partition_key="p1")
    assert result.output_for_node("query") == ["other"]
    assert result.run.tags[PARTITION_TAG] == "p1"
    picked = chain.execute_in_process(op_selection="five,add")
    assert [e.step_key for e in picked.get_step_success_events()] == ["five", "add"]
    assert reads_users.executor_name == "multiprocess"  # the job itself is left as it was
    assert "executor': 'in_process'" in str([e.data for e in result.all_events if e.data.get("executor")])


def test_a_graph_executes_in_process_too():
    @graph
    def small():
        add(five())

    assert small.execute_in_process().output_for_node("add") == 15


def test_execute_job_returns_the_same_result_reading_outputs_back(instance):
    result = execute_job(chain, instance=instance)
    assert isinstance(result, JobExecutionResult)
    assert result.status.value == "SUCCESS" and result.run_id == result.run.run_id
    assert not result._capture.outputs  # nothing kept in memory: read through the IO manager
    assert result.output_for_node("scaled") == 30


def test_multiprocess_steps_outputs_come_through_the_io_manager(write_defs, instance):
    from runyard.workspace.loader import code_pointer_for, load_definitions

    path = write_defs('''
from runyard import Definitions, job, op

@op
def five() -> int:
    return 5

@op
def double(x: int) -> int:
    if x > 100:
        raise ValueError("too big")
    return x * 2

@job(executor="multiprocess")
def mp():
    double(five())

defs = Definitions(jobs=[mp])
''')
    pointer = code_pointer_for(python_file=str(path))
    job_def = load_definitions(pointer).get_job("mp")
    result = execute_job(job_def, instance=instance, code_pointer=pointer,
                         run_config={"execution": {"multiprocess": {}}})
    assert result.success and result.output_for_node("double") == 10
    pids = {e.data["pid"] for e in result.get_step_success_events() + [
        e for e in result.all_events if str(e.event_type) == "STEP_START"] if "pid" in e.data}
    assert pids and os.getpid() not in pids  # the steps ran in other processes


def test_raise_on_error_for_a_step_in_another_process_is_run_failed_error(write_defs, instance):
    from runyard.workspace.loader import code_pointer_for, load_definitions

    path = write_defs('''
from runyard import Definitions, job, op

@op
def explode() -> int:
    raise ValueError("far away")

@job(executor="multiprocess")
def mp_broken():
    explode()

defs = Definitions(jobs=[mp_broken])
''')
    pointer = code_pointer_for(python_file=str(path))
    job_def = load_definitions(pointer).get_job("mp_broken")
    with pytest.raises(RunFailedError, match="step 'explode' failed: ValueError: far away") as info:
        execute_job(job_def, instance=instance, code_pointer=pointer, raise_on_error=True)
    assert info.value.result.status.value == "FAILURE"


def test_outputs_of_mapped_and_nested_steps_in_memory_and_through_the_io_manager(instance):
    @op
    def text() -> str:
        return "x y"

    @op
    def length(word: str) -> int:
        return len(word)

    @graph
    def inner(words):
        return length(words)

    @job
    def mapped():
        split(text()).map(length)
        inner(text())

    for result in (mapped.execute_in_process(), execute_job(mapped, instance=instance)):
        assert result.success
        assert result.output_for_node("split") == {"x": "X", "y": "Y"}
        assert result.output_for_node("length") == {"x": 1, "y": 1}
        assert result.output_for_node("inner.length") == 3
        assert {e.step_key for e in result.events_for_node("length")} == {"length[x]", "length[y]"}


def test_run_failed_error_when_runyard_failed_the_step_or_the_run():
    @op
    def wrong() -> int:
        return "not an int"

    @job
    def mistyped():
        wrong()

    with pytest.raises(RunFailedError, match="step 'wrong' failed: op 'wrong' output 'result' must be int, got str"):
        mistyped.execute_in_process()

    @resource
    def broken(init):
        raise ConnectionError("no database")

    @job(resources={"db": broken})
    def needs_db():
        query(text_source())

    with pytest.raises(RunFailedError, match="resource 'db' failed to initialize: ConnectionError: no database") \
            as info:
        needs_db.execute_in_process()
    assert info.value.result.status.value == "FAILURE"


@op
def text_source() -> str:
    return "users"


class RegionConfig(Config):
    suffix: str = "!"


@op
def label(context, config: RegionConfig, region: str) -> str:
    return region + config.suffix


def test_a_positional_argument_skips_the_config_slot_unless_it_is_a_config_object():
    with build_op_context() as ctx:
        assert label(ctx, "north") == "north!"
        assert label(ctx, RegionConfig(suffix="?"), "south") == "south?"
    with build_op_context(op_config={"suffix": "."}) as ctx:
        assert label(ctx, "east") == "east."
