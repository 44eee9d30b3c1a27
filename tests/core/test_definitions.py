"""The definitions API at definition time: graphs, fan-out/fan-in wiring, config models, retry
policy math, and every definition-time error with a message that names the problem.

Needs: nothing beyond Python.
"""

import pytest

from runyard import (
    Backoff,
    Config,
    Definitions,
    DependencyOn,
    Jitter,
    JobDefinition,
    RetryPolicy,
    ScheduleDefinition,
    job,
    op,
    resource,
)
from runyard.errors import DefinitionError


@op
def source() -> int:
    return 1


@op
def double(x: int) -> int:
    return 2 * x


@op
def total(values: list[int]) -> int:
    return sum(values)


# ---- building graphs -----------------------------------------------------------------------------

def test_job_body_records_nodes_dependencies_and_order():
    @job
    def etl():
        s = source()
        total([double(s), double.alias("double_again")(s)])

    assert set(etl.nodes) == {"source", "double", "double_again", "total"}
    assert etl.nodes["double"].inputs == {"x": [("source", "result")]}
    assert etl.nodes["total"].inputs == {"values": [("double", "result"), ("double_again", "result")]}
    assert etl.nodes["total"].fan_in == frozenset({"values"})
    order = etl.topological_order
    assert order[0] == "source" and order[-1] == "total"


def test_same_op_twice_gets_numbered_node_names():
    @job
    def twice():
        s = source()
        double(s)
        double(s)

    assert set(twice.nodes) == {"source", "double", "double_2"}


def test_explicit_dependencies_build_the_same_graph():
    j = JobDefinition("explicit", ops=[source, double, total],
                      dependencies={"double": {"x": DependencyOn("source")},
                                    "total": {"values": [DependencyOn("double"), DependencyOn("source")]}})
    assert j.topological_order == ["source", "double", "total"]
    assert j.nodes["total"].fan_in == frozenset({"values"})


def test_op_signature_defines_inputs_config_and_output_type():
    class Cfg(Config):
        factor: int = 2

    @op
    def scale(context, config: Cfg, x: int, offset: int = 0) -> float:
        return 0.0

    assert scale.takes_context
    assert scale.config_model is Cfg
    assert list(scale.ins) == ["x", "offset"]
    assert not scale.ins["x"].has_default and scale.ins["offset"].has_default
    assert scale.outs["result"].type is float


def test_config_models_reject_unknown_keys():
    class Cfg(Config):
        n: int = 1

    assert Cfg.model_validate({"n": 3}).n == 3
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Cfg.model_validate({"m": 3})


def test_config_parameter_must_be_a_config_model():
    with pytest.raises(DefinitionError, match="parameter 'config' must be annotated"):
        @op
        def bad(config: dict) -> None:
            pass


# ---- definition-time errors ----------------------------------------------------------------------

def test_cycle_is_rejected_with_the_cycle_in_the_message():
    @op
    def a(x: int) -> int:
        return x

    @op
    def b(y: int) -> int:
        return y

    with pytest.raises(DefinitionError) as err:
        JobDefinition("cyclic", ops=[a, b],
                      dependencies={"a": {"x": DependencyOn("b")}, "b": {"y": DependencyOn("a")}})
    message = str(err.value)
    assert "cyclic" in message and "has a cycle" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_unconnected_required_input_is_rejected():
    with pytest.raises(DefinitionError) as err:
        @job
        def lonely():
            double()

    message = str(err.value)
    assert "input 'x' of op 'double' is not connected" in message
    assert "lonely" in message


def test_input_with_default_may_stay_unconnected():
    @op
    def maybe(x: int = 5) -> int:
        return x

    @job
    def fine():
        maybe()

    assert fine.nodes["maybe"].inputs == {}


def test_two_different_ops_with_one_name_are_rejected():
    @op(name="dup")
    def first() -> int:
        return 1

    @op(name="dup")
    def second() -> int:
        return 2

    with pytest.raises(DefinitionError, match="two different ops are named 'dup'"):
        JobDefinition("dups", ops=[first, second])


def test_duplicate_alias_in_job_body_is_rejected():
    with pytest.raises(DefinitionError, match="two ops are named 'same'"):
        @job
        def aliased():
            source.alias("same")()
            source.alias("same")()


def test_dependency_on_unknown_op_is_rejected():
    with pytest.raises(DefinitionError, match="depends on unknown op 'nowhere'"):
        JobDefinition("dangling", ops=[double], dependencies={"double": {"x": DependencyOn("nowhere")}})


def test_duplicate_job_names_in_definitions_are_rejected():
    @job(name="report")
    def report_a():
        source()

    @job(name="report")
    def report_b():
        source()

    with pytest.raises(DefinitionError, match="two different jobs are named 'report'"):
        Definitions(jobs=[report_a, report_b])


def test_missing_resource_is_rejected_naming_key_and_op():
    @op(required_resource_keys={"warehouse"})
    def load() -> None:
        pass

    @job
    def needs_warehouse():
        load()

    with pytest.raises(DefinitionError) as err:
        Definitions(jobs=[needs_warehouse])
    message = str(err.value)
    assert "needs_warehouse" in message and "missing resource" in message
    assert "'warehouse' (needed by load)" in message


def test_resource_bound_at_definitions_level_satisfies_ops():
    @resource
    def warehouse(context):
        return "conn"

    @op(required_resource_keys={"warehouse"})
    def load() -> None:
        pass

    @job
    def loads():
        load()

    defs = Definitions(jobs=[loads], resources={"warehouse": warehouse})
    assert defs.get_job("loads").resource_defs["warehouse"] is warehouse


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *", "* * *"])
def test_invalid_cron_string_is_rejected_with_the_string_in_the_message(cron):
    with pytest.raises(DefinitionError) as err:
        ScheduleDefinition(name="nightly", cron_schedule=cron, job="etl")
    assert f"'{cron}'" in str(err.value)
    assert "nightly" in str(err.value)


def test_valid_cron_and_unknown_timezone():
    ScheduleDefinition(name="nightly", cron_schedule="0 6 * * *", job="etl", execution_timezone="UTC")
    with pytest.raises(DefinitionError, match="Mars/Olympus"):
        ScheduleDefinition(name="nightly", cron_schedule="0 6 * * *", job="etl",
                           execution_timezone="Mars/Olympus")


def test_schedule_targeting_unknown_job_is_rejected():
    @job
    def etl():
        source()

    with pytest.raises(DefinitionError, match="targets unknown job 'other'"):
        Definitions(jobs=[etl], schedules=[ScheduleDefinition("s", "0 * * * *", job="other")])


def test_unknown_job_lists_the_jobs():
    @job
    def etl():
        source()

    from runyard.errors import JobNotFoundError

    with pytest.raises(JobNotFoundError, match="No job named 'elt'. Jobs defined here: etl."):
        Definitions(jobs=[etl]).get_job("elt")


# ---- retry policies ------------------------------------------------------------------------------

def test_constant_delay():
    policy = RetryPolicy(max_retries=3, delay=0.5)
    assert [policy.delay_for(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


def test_linear_backoff_grows_by_the_delay():
    policy = RetryPolicy(max_retries=4, delay=0.5, backoff=Backoff.LINEAR)
    assert [policy.delay_for(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 2.0]


def test_exponential_backoff_doubles():
    policy = RetryPolicy(max_retries=4, delay=0.5, backoff=Backoff.EXPONENTIAL)
    assert [policy.delay_for(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_no_delay_means_retry_at_once():
    assert RetryPolicy(max_retries=2).delay_for(1) == 0.0


def test_jitter_stays_within_bounds():
    full = RetryPolicy(max_retries=1, delay=1.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.FULL)
    plus_minus = RetryPolicy(max_retries=1, delay=1.0, jitter=Jitter.PLUS_MINUS)
    for _ in range(200):
        assert 0.0 <= full.delay_for(3) <= 4.0
        assert 0.0 <= plus_minus.delay_for(1) <= 2.0


@pytest.mark.parametrize("kwargs, message", [
    ({"max_retries": -1}, "max_retries must be >= 0"),
    ({"delay": -1.0}, "delay must be >= 0"),
    ({"backoff": Backoff.LINEAR}, "backoff and jitter need a delay"),
])
def test_invalid_retry_policies(kwargs, message):
    with pytest.raises(DefinitionError, match=message):
        RetryPolicy(**kwargs)
