"""Op selection: the grammar (names, globs, ``*``/``+`` up- and downstream operators, clauses), its
errors, and ``--ops`` on ``runyard job execute`` / ``runyard job launch`` (only the selected steps
run; a fresh run cannot take inputs from steps outside the selection, except Nothing outputs).

Needs: real subprocesses (``python -m runyard``) and a SQLite file per test home.

Ops are defined at module level without ``from __future__ import annotations`` (their annotations
must resolve at decoration time).
"""

import re

import pytest

from runyard import Definitions, RunStatus, execute_job, job, op
from runyard.codeserver.snapshot_builder import build_snapshot
from runyard.definitions.graph_view import JobGraph
from runyard.definitions.selection import check_fresh_selection, missing_upstream_inputs, parse_op_selection
from runyard.errors import RunConfigError

RUN_ID = re.compile(r"\b([0-9a-f]{32})\b")


@op
def raw() -> int:
    return 1


@op
def clean(x: int) -> int:
    return x


@op
def load_users(x: int) -> int:
    return x


@op
def load_orders(x: int) -> int:
    return x


@op
def report(users: int, orders: int) -> int:
    return users + orders


@op
def audit() -> int:
    return 0


@job
def warehouse():
    """raw -> clean -> load_users, load_orders -> report; audit stands alone."""
    cleaned = clean(raw())
    report(load_users(cleaned), load_orders(cleaned))
    audit()


ORDER = ["raw", "audit", "clean", "load_users", "load_orders", "report"]


def as_snapshot(job_def):
    """The job as a code server describes it: a JobSnapshot, read through the same JobGraph
    interface as the JobDefinition."""
    return build_snapshot(Definitions(jobs=[job_def])).jobs_by_name[job_def.name]


@pytest.fixture(params=["definition", "snapshot"])
def graph_of(request):
    """Every selection test runs on the JobDefinition and on its snapshot: one implementation."""
    return (lambda j: j) if request.param == "definition" else as_snapshot


def test_the_fixture_job_has_the_expected_plan_order(graph_of):
    graph = graph_of(warehouse)
    assert isinstance(graph, JobGraph)
    assert list(graph.topological_order) == ORDER
    assert graph.downstream_of("clean") == {"load_users", "load_orders", "report"}
    assert graph.upstream_of("report") == {"load_users", "load_orders"}
    assert graph.input_sources("report") == {"users": [("load_users", "result")],
                                             "orders": [("load_orders", "result")]}
    assert graph.has_node("audit") and not graph.has_node("nope")


@pytest.mark.parametrize("selection, expected", [
    ("clean", ["clean"]),
    ("report,raw", ["raw", "report"]),                       # plan order, not clause order
    (" raw , audit ", ["raw", "audit"]),                     # spaces around clauses
    ("load_*", ["load_users", "load_orders"]),               # glob
    ("*_users,audi?", ["audit", "load_users"]),
    ("*", ORDER),                                            # a lone * matches every op
    ("*report", ["raw", "clean", "load_users", "load_orders", "report"]),
    ("*load_users", ["raw", "clean", "load_users"]),
    ("clean*", ["clean", "load_users", "load_orders", "report"]),
    ("raw*", ["raw", "clean", "load_users", "load_orders", "report"]),
    ("+load_users", ["clean", "load_users"]),
    ("++load_users", ["raw", "clean", "load_users"]),
    ("+++++load_users", ["raw", "clean", "load_users"]),      # more levels than exist
    ("clean+", ["clean", "load_users", "load_orders"]),
    ("raw++", ["raw", "clean", "load_users", "load_orders"]),
    ("+clean+", ["raw", "clean", "load_users", "load_orders"]),
    ("*load_orders+", ["raw", "clean", "load_orders", "report"]),
    ("+load_*", ["clean", "load_users", "load_orders"]),      # operators on a glob
    ("load_*+", ["load_users", "load_orders", "report"]),
    ("*load_*", ["load_users", "load_orders"]),              # the * belongs to the glob when it matches
    ("*load_u*", ["load_users"]),
    ("*load_x*", None),                                       # see the error test below
])
def test_selection_grammar(selection, expected, graph_of):
    if expected is None:
        with pytest.raises(RunConfigError):
            parse_op_selection(graph_of(warehouse), selection)
        return
    assert parse_op_selection(graph_of(warehouse), selection) == expected


def test_an_exact_name_wins_over_a_glob_reading():
    @op
    def extract() -> int:
        return 1

    @op
    def to_parquet(x: int) -> int:
        return x

    @op
    def publish(x: int) -> int:
        return x

    @job
    def files():
        publish(to_parquet(extract()))

    assert parse_op_selection(files, "to_*") == ["to_parquet"]
    assert parse_op_selection(files, "*to_*") == ["to_parquet"]
    assert parse_op_selection(files, "+to_*+") == ["extract", "to_parquet", "publish"]
    assert parse_op_selection(files, "to_parquet*") == ["to_parquet", "publish"]
    assert parse_op_selection(files, "*to_parquet") == ["extract", "to_parquet"]


def test_a_list_of_clauses_is_accepted():
    assert parse_op_selection(warehouse, ["audit", "+clean"]) == ["raw", "audit", "clean"]


@pytest.mark.parametrize("selection, message", [
    ("", "the op selection is empty"),
    ("  ", "the op selection is empty"),
    (",", "the op selection is empty"),
    ("raw,,clean", "'raw,,clean' has an empty clause"),
    ("nope", "no op named 'nope'"),
    ("*nope+", "no op is named 'nope' or matches '*nope'"),
    ("raw,nope", "no op named 'nope' (in 'raw,nope')"),
    ("dim_*", "no op is named 'dim_' or matches 'dim_*'"),
    ("*load_x*", "no op is named 'load_x' or matches '*load_x*'"),
    ("load_[xy]", "'load_[xy]' matches no op"),
    ("+", "'+' is not a valid clause"),
    ("raw+*", "'raw+*' is not a valid clause"),
    ("*+raw", "'*+raw' is not a valid clause"),
    ("raw clean", "'raw clean' is not a valid clause"),
])
def test_bad_selections_name_the_problem_and_list_the_ops(selection, message, graph_of):
    with pytest.raises(RunConfigError) as info:
        parse_op_selection(graph_of(warehouse), selection)
    text = str(info.value)
    assert text.startswith("op selection: "), text
    assert message in text
    assert "Ops of job 'warehouse': raw, audit, clean, load_users, load_orders, report" in text
    assert info.value.exit_code == 2


def test_fresh_selection_needs_every_input_inside_it(graph_of):
    graph = graph_of(warehouse)
    check_fresh_selection(graph, ["raw", "clean"])
    check_fresh_selection(graph, ["audit"])
    with pytest.raises(RunConfigError) as info:
        check_fresh_selection(graph, ["load_users", "load_orders", "report"])
    text = str(info.value)
    assert "op 'load_users' input 'x' needs output 'result' of op 'clean'" in text
    assert "op 'load_orders' input 'x' needs output 'result' of op 'clean'" in text
    assert "op 'report'" not in text  # its inputs are inside the selection


def test_nothing_outputs_only_order_steps_and_do_not_block_a_selection(graph_of):
    @op
    def prepare() -> None:
        return None

    @op
    def work(after: None) -> int:
        return 5

    @job
    def ordered():
        work(prepare())

    check_fresh_selection(graph_of(ordered), ["work"])
    assert graph_of(ordered).is_nothing_output("prepare", "result")
    assert missing_upstream_inputs(graph_of(ordered), ["work"]) == []


def test_execute_job_runs_only_the_selected_ops(instance):
    run = execute_job(warehouse, instance=instance, ops="*load_users,audit")
    assert run.status == RunStatus.SUCCESS
    assert run.step_keys_to_execute == ["raw", "audit", "clean", "load_users"]
    started = [e.step_key for e in instance.storage.get_events(run.run_id, event_types=["STEP_START"])]
    assert started == ["raw", "audit", "clean", "load_users"]


def test_execute_job_refuses_a_selection_missing_an_input_and_creates_no_run(instance):
    with pytest.raises(RunConfigError, match="op 'report' input 'users' needs output 'result' of op "
                                             "'load_users'"):
        execute_job(warehouse, instance=instance, ops="report")
    assert instance.storage.get_runs() == []


# ---- the CLI -------------------------------------------------------------------------------------

SELECT_DEFS = '''
from runyard import Definitions, job, op


@op
def extract() -> list[int]:
    return [1, 2, 3]


@op
def transform(rows: list[int]) -> list[int]:
    return [r * 10 for r in rows]


@op
def load(rows: list[int]) -> int:
    return len(rows)


@op
def prepare() -> None:
    pass


@op
def after_prepare(ready: None) -> str:
    return "done"


@op
def audit() -> int:
    return 0


@job
def etl():
    load(transform(extract()))
    after_prepare(prepare())
    audit()


defs = Definitions(jobs=[etl])
'''


@pytest.fixture
def select_defs(write_defs):
    return write_defs(SELECT_DEFS)


def started_steps(instance, run_id):
    return [e.step_key for e in instance.storage.get_events(run_id, event_types=["STEP_START"])]


def test_job_execute_ops_runs_only_the_selection(cli, select_defs, instance):
    proc = cli.ok("job", "execute", "-f", select_defs, "-j", "etl", "--ops", "*transform,audit")
    run_id = RUN_ID.search(proc.stdout).group(1)
    assert "[3 selected step(s): extract, audit, transform]" in proc.stdout
    assert started_steps(instance, run_id) == ["extract", "audit", "transform"]
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "SUCCESS"
    assert run["step_keys_to_execute"] == ["extract", "audit", "transform"]
    assert run["parent_run_id"] is None and run["root_run_id"] is None
    assert [s["step_key"] for s in run["steps"]] == ["extract", "audit", "transform"]


def test_job_launch_ops_runs_only_the_selection(cli, select_defs, instance):
    proc = cli.ok("job", "launch", "-f", select_defs, "-j", "etl", "--ops", "extract+", "--wait")
    run_id = RUN_ID.search(proc.stdout).group(1)
    assert f"Run {run_id} SUCCESS" in proc.stdout
    assert started_steps(instance, run_id) == ["extract", "transform"]


def test_an_input_from_a_nothing_output_outside_the_selection_is_fine(cli, select_defs, instance):
    proc = cli.ok("job", "execute", "-f", select_defs, "-j", "etl", "--ops", "after_prepare")
    assert started_steps(instance, RUN_ID.search(proc.stdout).group(1)) == ["after_prepare"]


def test_job_execute_refuses_a_selection_missing_an_upstream_output(cli, select_defs):
    proc = cli("job", "execute", "-f", select_defs, "-j", "etl", "--ops", "load")
    assert proc.returncode == 2, proc.stderr
    assert "Error: op selection: the selected ops need values from ops outside the selection: op 'load' " \
           "input 'rows' needs output 'result' of op 'transform'" in proc.stderr
    assert "Add 'transform' to the selection" in proc.stderr
    assert cli.json("run", "list", "--json") == []


@pytest.mark.parametrize("command", ["execute", "launch"])
@pytest.mark.parametrize("selection, message", [
    ("lod", "no op named 'lod'"),
    ("dim_*", "no op is named 'dim_' or matches 'dim_*'"),
    ("", "the op selection is empty"),
])
def test_bad_ops_exit_2_list_the_ops_and_create_no_run(cli, select_defs, command, selection, message):
    proc = cli("job", command, "-f", select_defs, "-j", "etl", "--ops", selection)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Ops of job 'etl': extract, prepare, audit, transform, after_prepare, load" in proc.stderr
    assert cli.json("run", "list", "--json") == []
