"""Nested graphs: ``@graph`` with inputs and outputs inside jobs and other graphs, flattened into dotted
step keys; nested run config and config mapping; op selection of graphs; running and re-executing
nested steps; the graph tree in the code server snapshot.

Needs: nothing beyond Python (SQLite file under pytest's tmp_path).

Ops are defined at module level or inside tests, so this module does not use ``from __future__
import annotations`` (their annotations must resolve at decoration time).
"""

import pickle

import pytest

from runyard import Config, ConfigMapping, GraphIn, GraphOut, RunStatus, config_mapping, execute_job, graph, job, op
from runyard.codeserver.snapshot import JobSnapshot
from runyard.codeserver.snapshot_builder import _job as job_snapshot_json
from runyard.definitions.config import resolve_run_config
from runyard.definitions.selection import parse_op_selection
from runyard.errors import DefinitionError, RunConfigError


@op
def one() -> int:
    return 1


@op
def ten() -> int:
    return 10


class AddConfig(Config):
    n: int = 1


@op
def add(config: AddConfig, x: int) -> int:
    return x + config.n


@op
def total(values: list) -> int:
    return sum(values)


@op
def pair(a: int, b: int) -> int:
    return a * 100 + b


@graph
def plus_two(x):
    """Adds two."""
    return add(add(x))


@graph(ins={"x": GraphIn(description="the number")},
       out={"small": GraphOut(), "big": GraphOut("x plus 4"), "same": GraphOut()})
def outer(x):
    return {"small": add(x), "big": plus_two(plus_two(x)), "same": x}


@job
def nested():
    o = outer(one())
    total([o.small, o.big, o.same])


def stored(home, run_id, step):
    return pickle.loads((home / "storage" / run_id / step / "result").read_bytes())


# ---- building ------------------------------------------------------------------------------------

def test_graph_calls_flatten_into_dotted_nodes_with_the_tree_kept():
    assert nested.topological_order[0] == "one"
    assert set(nested.nodes) == {"one", "outer.add", "outer.plus_two.add", "outer.plus_two.add_2",
                                 "outer.plus_two_2.add", "outer.plus_two_2.add_2", "total"}
    assert nested.nodes["outer.add"].inputs == {"x": [("one", "result")]}
    assert nested.nodes["outer.plus_two.add"].inputs == {"x": [("one", "result")]}
    assert nested.nodes["outer.plus_two_2.add"].inputs == {"x": [("outer.plus_two.add_2", "result")]}
    # the pass-through output "same" is the graph input, i.e. one's result
    assert nested.nodes["total"].inputs == {"values": [("outer.add", "result"), ("outer.plus_two_2.add_2", "result"),
                                                       ("one", "result")]}
    tree = nested.structure.subgraphs
    assert sorted(tree) == ["outer", "outer.plus_two", "outer.plus_two_2"]
    assert tree["outer.plus_two"].graph_name == "plus_two"
    assert tree["outer.plus_two"].description == "Adds two."
    assert tree["outer"].inputs[0].targets == (("outer.add", "x"), ("outer.plus_two.add", "x"))
    assert nested.graph_members("outer.plus_two") == ["outer.plus_two.add", "outer.plus_two.add_2"]
    assert nested.graph_members("nope") == []


def test_alias_reuse_fan_in_into_a_graph_input_and_to_job_of_a_nested_graph():
    @graph
    def summed(values):
        return add(total(values))

    @graph
    def top():
        a = plus_two.alias("first")(one())
        b = plus_two(ten())
        c = plus_two(a)
        return summed([a, b, c])

    assert sorted(top.structure.subgraphs) == ["first", "plus_two", "plus_two_2", "summed"]
    assert top.nodes["summed.total"].inputs == {"values": [("first.add_2", "result"), ("plus_two.add_2", "result"),
                                                           ("plus_two_2.add_2", "result")]}
    assert top.nodes["summed.total"].fan_in == frozenset({"values"})
    made = top.to_job(name="top_job")
    assert set(made.nodes) == set(top.nodes)
    assert sorted(made.structure.subgraphs) == sorted(top.structure.subgraphs)

    @job
    def twice():
        top()
        top()

    assert "top_2.summed.add" in twice.nodes and "top_2.first" in twice.structure.subgraphs


def test_a_graph_input_feeding_several_ops_and_a_graph_without_outputs():
    @graph
    def sink(x):
        pair(x, x)
        add(x)

    @job
    def j():
        assert sink(one()) is None

    assert j.nodes["sink.pair"].inputs == {"a": [("one", "result")], "b": [("one", "result")]}


def test_graph_with_several_outputs_unpacks_in_declared_order():
    @job
    def j():
        small, big, same = outer(one())
        pair(small, big)

    assert j.nodes["pair"].inputs == {"a": [("outer.add", "result")], "b": [("outer.plus_two_2.add_2", "result")]}


def test_existing_graph_forms_keep_working():
    @graph
    def plain():
        add(one())

    made = plain.to_job()
    assert set(made.nodes) == {"one", "add"} and made.structure.subgraphs == {}


# ---- definition-time errors ------------------------------------------------------------------------

def test_unconnected_graph_input_errors():
    @graph
    def inner(x):
        return add(x)

    with pytest.raises(DefinitionError, match=r"'middle': graph 'inner': input 'x' is not connected "
                                               r"\(it feeds add\.x"):
        @graph
        def middle():
            return inner()

    with pytest.raises(DefinitionError, match=r"job 'inner_job': input 'x' of graph 'inner' is not connected"):
        inner.to_job(name="inner_job")


def test_graph_call_errors():
    with pytest.raises(DefinitionError, match="graph 'plus_two' can only be called inside a @job or @graph body"):
        plus_two(1)
    with pytest.raises(DefinitionError, match="graph 'plus_two' has no input 'y'"):
        @job
        def j1():
            plus_two(y=one())
    with pytest.raises(DefinitionError, match="input 'x' must be the output of an op or graph"):
        @job
        def j2():
            plus_two(3)
    with pytest.raises(DefinitionError, match="graph 'outer' has no output 'nope'"):
        @job
        def j3():
            add(outer(one()).nope)
    with pytest.raises(DefinitionError, match="declares outputs a, b but returns a"):
        @graph(out={"a": GraphOut(), "b": GraphOut()})
        def g1(x):
            return {"a": add(x)}
    with pytest.raises(DefinitionError, match="returns a tuple"):
        @graph
        def g2(x):
            return add(x), add(x)
    with pytest.raises(DefinitionError, match="takes no 'context'"):
        @graph
        def g3(context):
            pass
    with pytest.raises(DefinitionError, match="job 'nested' cannot be called inside a body"):
        @job
        def j5():
            nested()
    with pytest.raises(DefinitionError, match="must not contain '.'"):
        @job
        def j4():
            add.alias("a.b")(one())


def test_an_op_and_a_graph_never_share_a_node_name():
    @op(name="plus_two")
    def clash() -> int:
        return 2

    @job
    def j():
        plus_two(one())
        clash()

    assert "plus_two_2" in j.nodes and "plus_two.add" in j.nodes


def test_cycles_through_dotted_names_are_reported():
    from runyard import DependencyOn, JobDefinition

    with pytest.raises(DefinitionError, match="has a cycle"):
        JobDefinition("cyclic", ops=[add, pair], dependencies={"add": {"x": DependencyOn("pair")},
                                                               "pair": {"a": DependencyOn("add"),
                                                                        "b": DependencyOn("add")}})


# ---- run config ----------------------------------------------------------------------------------

def test_nested_run_config_resolves_to_dotted_step_keys():
    resolved = resolve_run_config(nested, {"ops": {"outer": {"ops": {
        "add": {"config": {"n": 7}},
        "plus_two_2": {"ops": {"add_2": {"config": {"n": 3}}}}}}}})
    assert resolved.op_configs["outer.add"].n == 7
    assert resolved.op_configs["outer.plus_two_2.add_2"].n == 3
    assert resolved.op_configs["outer.plus_two.add"].n == 1
    assert resolved.op_configs["one"] is None


def test_nested_run_config_problems_are_all_reported_at_their_key_path():
    with pytest.raises(RunConfigError) as err:
        resolve_run_config(nested, {"ops": {
            "outer": {"ops": {"add": {"config": {"n": "x"}}, "nope": {}, "plus_two": {"config": {}}}},
            "outer.add": {"config": {"n": 2}}}})
    paths = {p.path: p.message for p in err.value.problems}
    assert "ops.outer.ops.add.config.n" in paths
    assert "graph 'outer' has no op or graph named 'nope'" in paths["ops.outer.ops.nope"]
    assert "unknown key (allowed: ops)" in paths["ops.outer.ops.plus_two.config"]
    assert "nest it as outer: {ops: {...}}" in next(m for p, m in paths.items() if "outer.add" in p
                                                     and p.startswith("ops.outer.add"))
    assert len(err.value.problems) == 4


class Scale(Config):
    factor: int


@config_mapping
def scale_mapping(cfg: Scale) -> dict:
    return {"ops": {"add": {"config": {"n": cfg.factor}},
                    "plus_two": {"ops": {"add": {"config": {"n": cfg.factor * 10}}}}}}


@graph(config=scale_mapping)
def scaled(x):
    return plus_two(add(x))


@job
def mapped_job():
    total([scaled(one())])


def test_config_mapping_maps_the_graph_config_into_its_ops():
    resolved = resolve_run_config(mapped_job, {"ops": {"scaled": {"config": {"factor": 2}}}})
    assert resolved.op_configs["scaled.add"].n == 2
    assert resolved.op_configs["scaled.plus_two.add"].n == 20
    assert resolved.op_configs["scaled.plus_two.add_2"].n == 1
    with pytest.raises(RunConfigError) as err:
        resolve_run_config(mapped_job, {"ops": {"scaled": {"config": {"factor": "many"}, "ops": {}}}})
    paths = {p.path for p in err.value.problems}
    assert paths == {"ops.scaled.config.factor", "ops.scaled.ops"}


def test_config_mapping_output_problems_name_the_graph():
    bad = ConfigMapping(lambda cfg: {"add": {"config": {"n": "nan-number"}}, "ghost": {}})

    @graph(config=bad)
    def badly(x):
        return add(x)

    @job
    def j():
        badly(one())

    with pytest.raises(RunConfigError) as err:
        resolve_run_config(j, {"ops": {"badly": {"config": {"anything": 1}}}})
    messages = [p.message for p in err.value.problems]
    assert all(p.path == "ops.badly.config" for p in err.value.problems)
    assert any("config mapping of graph 'badly' gave invalid config: add.config.n" in m for m in messages)
    assert any("ghost" in m for m in messages)


def test_a_graph_config_dict_is_the_default_of_its_ops():
    @graph(config={"ops": {"add": {"config": {"n": 40}}}})
    def defaulted(x):
        return add(x)

    @job
    def j():
        defaulted(one())

    assert resolve_run_config(j, {}).op_configs["defaulted.add"].n == 40
    over = {"ops": {"defaulted": {"ops": {"add": {"config": {"n": 41}}}}}}
    assert resolve_run_config(j, over).op_configs["defaulted.add"].n == 41

    @graph(config={"ops": {"add": {"config": {"n": 5}}, "one": {}}})
    def whole():
        add(one())

    assert resolve_run_config(whole.to_job(), {}).op_configs["add"].n == 5


# ---- selection -----------------------------------------------------------------------------------

@pytest.mark.parametrize("as_snapshot", [False, True], ids=["definition", "snapshot"])
def test_selection_understands_graphs(as_snapshot):
    graph_view = JobSnapshot.model_validate(job_snapshot_json(nested)) if as_snapshot else nested
    assert parse_op_selection(graph_view, "outer.plus_two") == ["outer.plus_two.add", "outer.plus_two.add_2"]
    assert parse_op_selection(graph_view, "outer.add") == ["outer.add"]
    assert parse_op_selection(graph_view, "outer") == [n for n in nested.topological_order
                                                        if n.startswith("outer.")]
    assert parse_op_selection(graph_view, "*outer.plus_two") == ["one", "outer.plus_two.add",
                                                                  "outer.plus_two.add_2"]
    assert parse_op_selection(graph_view, "outer.plus_two_2+") == ["outer.plus_two_2.add", "outer.plus_two_2.add_2",
                                                                   "total"]
    assert parse_op_selection(graph_view, "outer.plus_two*") == [n for n in nested.topological_order
                                                                 if n.startswith("outer.plus_two") or n == "total"]
    assert parse_op_selection(graph_view, "outer.*.add_2") == ["outer.plus_two.add_2", "outer.plus_two_2.add_2"]
    with pytest.raises(RunConfigError, match="no op named 'outer.ghost'"):
        parse_op_selection(graph_view, "outer.ghost")


# ---- snapshot ------------------------------------------------------------------------------------

def test_snapshot_holds_the_graph_tree():
    snap = JobSnapshot.model_validate(job_snapshot_json(mapped_job))
    assert [g.path for g in snap.graphs] == ["scaled", "scaled.plus_two"]
    scaled_snap = snap.graphs[0]
    assert scaled_snap.name == "scaled" and scaled_snap.config_mapped
    assert scaled_snap.config_schema["properties"]["factor"]["type"] == "integer"
    assert [t.model_dump() for t in scaled_snap.inputs[0].targets] == [{"op": "scaled.add", "input": "x"}]
    assert scaled_snap.outputs[0].source.op == "scaled.plus_two.add_2"
    assert snap.node("scaled.plus_two.add").graph_path == "scaled.plus_two"
    outer_snap = JobSnapshot.model_validate(job_snapshot_json(nested)).graphs[0]
    assert [(o.name, o.from_input) for o in outer_snap.outputs] == [("small", None), ("big", None), ("same", "x")]
    # a job without nested graphs serializes as before
    flat = JobSnapshot.model_validate(job_snapshot_json(job(lambda: add(one()), name="flat")))
    assert "graphs" not in flat.to_json() and flat.graphs == []


# ---- running ---------------------------------------------------------------------------------------

def test_values_flow_through_nested_graphs(instance, home):
    run = execute_job(nested, instance=instance,
                      run_config={"ops": {"outer": {"ops": {"plus_two": {"ops": {"add": {"config": {"n": 100}}}}}}}})
    assert run.status == RunStatus.SUCCESS
    assert stored(home, run.run_id, "outer.add") == 2
    assert stored(home, run.run_id, "outer.plus_two_2.add_2") == 1 + 100 + 1 + 1 + 1
    assert stored(home, run.run_id, "total") == 2 + 104 + 1
    started = [e.step_key for e in instance.storage.get_events(run.run_id, event_types=["STEP_START"])]
    assert started == nested.topological_order


def test_a_selection_of_a_graph_runs_its_steps(instance, home):
    run = execute_job(nested, instance=instance, ops="*outer.plus_two")
    assert run.status == RunStatus.SUCCESS
    assert run.step_keys_to_execute == ["one", "outer.plus_two.add", "outer.plus_two.add_2"]
    assert stored(home, run.run_id, "outer.plus_two.add_2") == 3


REEXEC_DEFS = '''
from pathlib import Path

from runyard import Definitions, graph, job, op

HERE = Path(__file__).parent


@op
def start() -> int:
    return int((HERE / "start_value").read_text())


@op
def flaky(x: int) -> int:
    if (HERE / "fail").exists():
        raise RuntimeError("fail flag is set")
    return x + 1


@op
def double(x: int) -> int:
    return x * 2


@graph
def inner(x):
    return double(flaky(x))


@graph
def middle(x):
    return double(inner(x))


@job
def deep():
    double(middle(start()))


defs = Definitions(jobs=[deep])
'''


def test_reexecution_from_failure_of_a_nested_step(instance, home, write_defs, tmp_path):
    from runyard.execution.api import prepare_reexecution
    from runyard.execution.run_worker import execute_run
    from runyard.storage.records import CodePointer
    from runyard.workspace.loader import load_definitions

    path = write_defs(REEXEC_DEFS)
    (tmp_path / "start_value").write_text("5")
    (tmp_path / "fail").touch()
    pointer = CodePointer(python_file=str(path))
    deep = load_definitions(pointer).get_job("deep")
    parent = execute_job(deep, instance=instance, code_pointer=pointer)
    assert parent.status == RunStatus.FAILURE
    (tmp_path / "fail").unlink()
    (tmp_path / "start_value").write_text("1000")  # a re-run of start would see this

    child = prepare_reexecution(instance, parent.run_id, mode="from_failure")
    assert child.step_keys_to_execute == ["middle.inner.flaky", "middle.inner.double", "middle.double", "double"]
    done = execute_run(instance, child.run_id)
    assert done.status == RunStatus.SUCCESS
    assert stored(home, child.run_id, "double") == (5 + 1) * 2 * 2 * 2

    again = prepare_reexecution(instance, child.run_id, ops="middle.inner*")
    assert again.step_keys_to_execute == ["middle.inner.flaky", "middle.inner.double", "middle.double", "double"]
    assert execute_run(instance, again.run_id).status == RunStatus.SUCCESS
