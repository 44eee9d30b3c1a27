"""Re-execution: ``runyard run reexecute RUN_ID [--from-failure | --all-steps | --ops SEL]`` creates a
new run linked to its parent and root, launches it through the run coordinator, and lets the steps
it does not execute reuse the outputs stored by the parent chain. Also ``runyard.execution.api.
reexecute_run`` / ``prepare_reexecution``, and every refused input (nothing is created).

Needs: real subprocesses (``python -m runyard``, the ``process`` launcher), a SQLite file per test
home, and the ``runyard-executor-multiprocess`` plugin installed (one test runs the chain with it).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from runyard.errors import InvalidTransitionError, RunConfigError, RunNotFoundError, RunyardError
from runyard.execution.api import prepare_reexecution, reexecute_run
from runyard.execution.run_worker import execute_run
from runyard.storage.records import CodePointer, RunStatus
from runyard.tags import os_user

RUN_ID = re.compile(r"\b([0-9a-f]{32})\b")

DEFS = '''
from pathlib import Path

from runyard import Definitions, job, op

HERE = Path(__file__).parent


@op
def a(context) -> int:
    value = int((HERE / "a_value").read_text())
    context.log.info(f"a read {value}")
    return value


@op
def b(x: int) -> int:
    if (HERE / "fail_b").exists():
        raise RuntimeError("fail_b flag is set")
    return x + 1


@op
def c(y: int) -> int:
    return y * 2


@job(tags={"team": "data"})
def abc():
    c(b(a()))


@op
def left(x: int) -> int:
    return x + 100


@op
def right(x: int) -> int:
    if (HERE / "fail_right").exists():
        raise RuntimeError("fail_right flag is set")
    return x + 200


@op
def join(values: list[int]) -> int:
    return sum(values)


@job
def wide():
    value = a()
    join([left(value), right(value)])


defs = Definitions(jobs=[abc, wide])
'''

MULTIPROCESS = '{"execution": {"multiprocess": {"max_concurrent": 2}}}'


@pytest.fixture
def defs(write_defs, tmp_path: Path) -> Path:
    (tmp_path / "a_value").write_text("10")
    return write_defs(DEFS)


@pytest.fixture
def flag(tmp_path: Path):
    """``flag("fail_b", True)`` makes op b fail until ``flag("fail_b", False)``."""

    def set_flag(name: str, on: bool) -> None:
        path = tmp_path / name
        if on:
            path.touch()
        elif path.exists():
            path.unlink()

    return set_flag


def new_run_id(proc) -> str:
    match = RUN_ID.search(proc.stdout)
    assert match, f"no run id in output:\n{proc.stdout}\n{proc.stderr}"
    return match.group(1)


def launch(cli, defs: Path, job: str = "abc", *args: str) -> tuple[str, int]:
    proc = cli("job", "launch", "-f", defs, "-j", job, "--wait", *args)
    return new_run_id(proc), proc.returncode


def reexecute(cli, run_id: str, *args: str) -> tuple[str, int, str]:
    proc = cli("run", "reexecute", run_id, "--wait", *args)
    assert f"of run {run_id}" in proc.stdout, proc.stdout + proc.stderr
    return new_run_id(proc), proc.returncode, proc.stdout


def started(instance, run_id: str) -> list[str]:
    return [e.step_key for e in instance.storage.get_events(run_id, event_types=["STEP_START"])]


def stored(home: Path, run_id: str, step: str):
    return pickle.loads((home / "storage" / run_id / step / "result").read_bytes())


def run_count(cli) -> int:
    return len(cli.json("run", "list", "--json"))


# ---- from failure --------------------------------------------------------------------------------

def test_from_failure_reuses_the_parents_outputs(cli, defs, flag, instance, home, tmp_path):
    flag("fail_b", True)
    parent, code = launch(cli, defs)
    assert code == 1
    assert started(instance, parent) == ["a", "b"]
    flag("fail_b", False)
    (tmp_path / "a_value").write_text("999")  # a re-run would see this; a reused value is still 10

    child, code, out = reexecute(cli, parent, "--from-failure")
    assert code == 0, out
    assert f"Launched run {child} of job 'abc'" in out
    assert "re-executing 2 step(s): b, c" in out
    assert started(instance, child) == ["b", "c"]  # no STEP_START for a
    assert stored(home, child, "c") == (10 + 1) * 2
    assert not (home / "storage" / child / "a").exists()

    shown = cli.json("run", "show", child, "--json")
    assert shown["status"] == "SUCCESS"
    assert shown["parent_run_id"] == parent
    assert shown["root_run_id"] == parent
    assert shown["step_keys_to_execute"] == ["b", "c"]
    # runyard/user: who launched the parent from the CLI (kept with the parent's other tags)
    assert shown["tags"] == {"team": "data", "runyard/parent_run_id": parent, "runyard/root_run_id": parent,
                             "runyard/user": os_user()}
    assert shown["run_config"] == cli.json("run", "show", parent, "--json")["run_config"]
    assert shown["code_pointer"] == cli.json("run", "show", parent, "--json")["code_pointer"]
    assert [s["step_key"] for s in shown["steps"]] == ["b", "c"]
    parent_shown = cli.json("run", "show", parent, "--json")
    assert parent_shown["parent_run_id"] is None and parent_shown["root_run_id"] is None


def test_a_chain_of_three_runs_keeps_the_root_and_walks_the_parents(cli, defs, flag, instance, home, tmp_path):
    flag("fail_b", True)
    first, code = launch(cli, defs)
    assert code == 1
    second, code, _ = reexecute(cli, first, "--from-failure")  # b still fails
    assert code == 1
    assert started(instance, second) == ["b"]
    flag("fail_b", False)
    (tmp_path / "a_value").write_text("500")

    third, code, out = reexecute(cli, second, "--from-failure")
    assert code == 0, out
    assert started(instance, third) == ["b", "c"]
    # a succeeded neither in `second` nor here: its value comes from `first`, two runs up
    assert stored(home, third, "c") == (10 + 1) * 2
    shown = cli.json("run", "show", third, "--json")
    assert (shown["parent_run_id"], shown["root_run_id"]) == (second, first)
    assert shown["tags"]["runyard/parent_run_id"] == second
    assert shown["tags"]["runyard/root_run_id"] == first

    # and the third run is re-executable too: c alone, b from `third`, a from `first`
    fourth, code, _ = reexecute(cli, third, "--ops", "c")
    assert code == 0
    assert started(instance, fourth) == ["c"]
    assert stored(home, fourth, "c") == 22
    shown = cli.json("run", "show", fourth, "--json")
    assert (shown["parent_run_id"], shown["root_run_id"]) == (third, first)


def test_from_failure_with_the_multiprocess_executor(cli, defs, flag, instance, home, tmp_path):
    config = tmp_path / "mp.yaml"
    config.write_text(MULTIPROCESS)
    flag("fail_right", True)
    parent, code = launch(cli, defs, "wide", "-c", config)
    assert code == 1
    assert sorted(started(instance, parent)) == ["a", "left", "right"]
    flag("fail_right", False)
    (tmp_path / "a_value").write_text("7")

    child, code, out = reexecute(cli, parent, "--from-failure", "-v")
    assert code == 0, out
    assert "with the multiprocess executor" in out  # the parent's run config, executor included
    assert sorted(started(instance, child)) == ["join", "right"]
    assert stored(home, child, "join") == (10 + 100) + (10 + 200)  # left and a reused from the parent
    assert cli.json("run", "show", child, "--json")["run_config"] == {
        "execution": {"multiprocess": {"max_concurrent": 2}}}

    # a chain with the multiprocess executor: right again, left from the grandparent
    grandchild, code, _ = reexecute(cli, child, "--ops", "right+")
    assert code == 0
    assert sorted(started(instance, grandchild)) == ["join", "right"]
    assert stored(home, grandchild, "join") == (10 + 100) + (10 + 200)


def test_a_parent_canceled_before_it_started_reruns_every_step(cli, defs, instance):
    stub = instance.create_run(job_name="abc", code_pointer=CodePointer(python_file=str(defs)),
                               status=RunStatus.QUEUED)
    instance.terminate_run(stub.run_id)
    assert instance.get_run(stub.run_id).status == RunStatus.CANCELED
    child, code, out = reexecute(cli, stub.run_id, "--from-failure")
    assert code == 0, out
    assert started(instance, child) == ["a", "b", "c"]


# ---- all steps and op selections -----------------------------------------------------------------

@pytest.mark.parametrize("option", [[], ["--all-steps"]])
def test_all_steps_reruns_everything(cli, defs, instance, home, tmp_path, option):
    parent, code = launch(cli, defs)
    assert code == 0
    (tmp_path / "a_value").write_text("20")
    child, code, out = reexecute(cli, parent, *option, "--tag", "why=backfill")
    assert code == 0, out
    assert "re-executing all steps" in out
    assert started(instance, child) == ["a", "b", "c"]
    assert stored(home, child, "c") == 42
    shown = cli.json("run", "show", child, "--json")
    assert shown["step_keys_to_execute"] is None
    assert (shown["parent_run_id"], shown["root_run_id"]) == (parent, parent)
    assert shown["tags"] == {"team": "data", "why": "backfill", "runyard/parent_run_id": parent,
                             "runyard/root_run_id": parent, "runyard/user": os_user()}


def test_ops_reexecutes_only_the_selection(cli, defs, instance, home, tmp_path):
    parent, _ = launch(cli, defs)
    (tmp_path / "a_value").write_text("1000")
    child, code, out = reexecute(cli, parent, "--ops", "b*")
    assert code == 0, out
    assert "re-executing 2 step(s): b, c" in out
    assert started(instance, child) == ["b", "c"]
    assert stored(home, child, "c") == 22


def test_reexecute_without_wait_returns_once_launched(cli, defs, instance, wait_for):
    parent, _ = launch(cli, defs)
    proc = cli.ok("run", "reexecute", parent, "--ops", "c")
    child = new_run_id(proc)
    assert "STEP_START" not in proc.stdout
    wait_for(lambda: instance.get_run(child).status == RunStatus.SUCCESS, what="the re-execution")


# ---- refused inputs: clear message, non-zero exit, nothing created -------------------------------

def test_unknown_run(cli, defs):
    proc = cli("run", "reexecute", "0" * 32)
    assert proc.returncode == 1
    assert f"Error: No run with id '{'0' * 32}' in this instance." in proc.stderr
    assert run_count(cli) == 0


@pytest.mark.parametrize("status", ["NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING"])
def test_a_run_in_progress_is_refused(cli, defs, instance, status):
    run = instance.create_run(job_name="abc", code_pointer=CodePointer(python_file=str(defs)),
                              status=RunStatus(status))
    proc = cli("run", "reexecute", run.run_id)
    assert proc.returncode == 1
    assert f"Error: Run {run.run_id} is {status}; only a finished run (SUCCESS, FAILURE or CANCELED) can " \
           "be re-executed." in proc.stderr
    assert run_count(cli) == 1


def test_a_really_running_run_is_refused(cli, sample_defs, waiting_config, tmp_path, instance, wait_for):
    go = tmp_path / "go"
    run_id = new_run_id(cli.ok("job", "launch", "-f", sample_defs, "-j", "waiting", "-c",
                               waiting_config(go_file=go)))
    try:
        wait_for(lambda: instance.get_run(run_id).status == RunStatus.STARTED, what="the run to start")
        proc = cli("run", "reexecute", run_id, "--all-steps")
        assert proc.returncode == 1
        assert f"Run {run_id} is STARTED; only a finished run" in proc.stderr
        assert run_count(cli) == 1
    finally:
        go.touch()
        wait_for(lambda: instance.get_run(run_id).status.is_finished, what="the run to finish")


def test_from_failure_on_a_successful_run(cli, defs):
    parent, code = launch(cli, defs)
    assert code == 0
    proc = cli("run", "reexecute", parent, "--from-failure")
    assert proc.returncode == 1
    assert f"Error: Run {parent} (SUCCESS) has no failed, skipped or unstarted step: there is nothing to " \
           "re-execute from failure." in proc.stderr
    assert run_count(cli) == 1


@pytest.mark.parametrize("options", [["--from-failure", "--ops", "b"], ["--all-steps", "--ops", "b"],
                                     ["--all-steps", "--from-failure"]])
def test_conflicting_options(cli, defs, flag, options):
    flag("fail_b", True)
    parent, _ = launch(cli, defs)
    proc = cli("run", "reexecute", parent, *options)
    assert proc.returncode == 2
    assert "cannot be combined" in proc.stderr
    assert run_count(cli) == 1


def test_a_selection_needing_an_output_no_run_produced(cli, defs, flag):
    flag("fail_b", True)
    parent, _ = launch(cli, defs)
    proc = cli("run", "reexecute", parent, "--ops", "c")
    assert proc.returncode == 2
    assert f"Error: op selection: op 'c' input 'y' needs output 'result' of op 'b', but 'b' did not succeed " \
           f"in run {parent} or its ancestors. Include it in the op selection" in proc.stderr
    assert run_count(cli) == 1


def test_a_bad_selection(cli, defs):
    parent, _ = launch(cli, defs)
    proc = cli("run", "reexecute", parent, "--ops", "nope")
    assert proc.returncode == 2
    assert "no op named 'nope'. Ops of job 'abc': a, b, c" in proc.stderr
    assert run_count(cli) == 1


def test_a_stored_output_missing_on_disk_fails_the_step_clearly(cli, defs, flag, instance, home):
    flag("fail_b", True)
    parent, _ = launch(cli, defs)
    stored_a = home / "storage" / parent / "a" / "result"
    stored_a.unlink()
    flag("fail_b", False)
    child, code, out = reexecute(cli, parent, "--from-failure")
    assert code == 1
    assert instance.get_run(child).status == RunStatus.FAILURE
    failure, = instance.storage.get_events(child, event_types=["STEP_FAILURE"])
    assert failure.step_key == "b"
    assert failure.data["error"] == (
        f"could not load input 'x' from a.result: FileNotFoundError: no stored value for output 'result' "
        f"of step 'a' (run {parent}) at {stored_a}")
    assert "no stored value for output 'result' of step 'a'" in out


# ---- the Python API ------------------------------------------------------------------------------

def test_python_api(cli, defs, flag, instance, home, wait_for):
    flag("fail_b", True)
    parent, _ = launch(cli, defs)
    flag("fail_b", False)
    with pytest.raises(RunNotFoundError):
        reexecute_run(instance, "missing")
    with pytest.raises(RunyardError, match="cannot also take an op selection"):
        reexecute_run(instance, parent, mode="from_failure", ops="b")
    with pytest.raises(RunyardError, match="unknown re-execution mode 'some'"):
        reexecute_run(instance, parent, mode="some")
    with pytest.raises(RunConfigError, match="no op named 'x'"):
        reexecute_run(instance, parent, ops="x")
    assert len(instance.storage.get_runs()) == 1

    # prepared only, then executed in this process: the plan reads a from the parent
    run = prepare_reexecution(instance, parent, mode="from_failure", tags={"k": "v"})
    assert run.status == RunStatus.NOT_STARTED
    assert run.step_keys_to_execute == ["b", "c"]
    assert run.tags["k"] == "v" and run.tags["runyard/parent_run_id"] == parent
    done = execute_run(instance, run.run_id)
    assert done.status == RunStatus.SUCCESS
    assert stored(home, run.run_id, "c") == 22

    # submitted through the coordinator and launcher
    launched = reexecute_run(instance, run.run_id, ops=["c"])
    assert launched.parent_run_id == run.run_id and launched.root_run_id == parent
    wait_for(lambda: instance.get_run(launched.run_id).status == RunStatus.SUCCESS, what="the launched run")
    assert started(instance, launched.run_id) == ["c"]


def test_a_run_of_a_deleted_parent_fails_before_any_step(cli, defs, flag, instance):
    flag("fail_b", True)
    parent, _ = launch(cli, defs)
    flag("fail_b", False)
    child = prepare_reexecution(instance, parent, mode="from_failure")
    instance.delete_run(parent)  # the lineage is gone before the worker runs
    done = execute_run(instance, child.run_id)
    assert done.status == RunStatus.FAILURE
    assert started(instance, child.run_id) == []
    failure, = instance.storage.get_events(child.run_id, event_types=["RUN_FAILURE"])
    assert "Could not prepare the run" in failure.message
    assert "op 'b' input 'x' needs output 'result' of op 'a', but 'a' did not succeed" in failure.message


def test_nothing_is_reexecuted_for_a_run_without_a_code_pointer(instance):
    run = instance.create_run(job_name="abc", status=RunStatus.NOT_STARTED)
    instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.CANCELED)
    with pytest.raises(RunyardError, match=f"Run {run.run_id} has no code pointer"):
        reexecute_run(instance, run.run_id)
    assert len(instance.storage.get_runs()) == 1


def test_invalid_transition_error_is_what_the_api_raises_for_a_run_in_progress(instance, defs):
    run = instance.create_run(job_name="abc", code_pointer=CodePointer(python_file=str(defs)))
    with pytest.raises(InvalidTransitionError):
        reexecute_run(instance, run.run_id)


def test_planning_on_the_snapshot_matches_planning_on_the_job(cli, defs, flag, instance):
    """The web UI plans a re-execution from the job's snapshot (no user code), the CLI from the job
    itself: one implementation behind the JobGraph interface, so the same plan from both."""
    from runyard.codeserver.snapshot_builder import build_snapshot
    from runyard.execution.api import check_reexecutable, plan_reexecution
    from runyard.workspace.loader import code_pointer_for, load_definitions

    flag("fail_right", True)
    parent_id, _ = launch(cli, defs, "wide")
    flag("fail_right", False)
    loaded = load_definitions(code_pointer_for(str(defs)))
    definition = loaded.get_job("wide")
    snapshot = build_snapshot(loaded).jobs_by_name["wide"]
    parent = check_reexecutable(instance, parent_id, "from_failure", None)
    plans = [plan_reexecution(instance, parent, graph, "from_failure", None) for graph in (definition, snapshot)]
    assert plans[0] == plans[1]
    assert plans[0][0] == ["right", "join"]
    with pytest.raises(RunConfigError, match="op 'join' input 'values' needs output 'result' of op 'right'") as one:
        plan_reexecution(instance, parent, definition, "all", ["join"])
    with pytest.raises(RunConfigError) as two:
        plan_reexecution(instance, parent, snapshot, "all", ["join"])
    assert str(one.value) == str(two.value)
