"""Success and failure hooks (runyard.definitions.hooks, docs/hooks.md): attached to one op with
``with_hooks`` or to every op with ``@job(hooks=...)``, run once after a step's final attempt with
the step's context and resources, logged as HOOK_COMPLETED / HOOK_ERRORED, never changing a step's
outcome. The executor-level checks (a step process per step) are in runyard.testing.executor_hooks.

Needs: nothing beyond Python (SQLite files under pytest's tmp_path).
"""

from __future__ import annotations

import pytest

from runyard import (
    Config,
    Definitions,
    HookContext,
    HookDefinition,
    RetryPolicy,
    execute_job,
    failure_hook,
    job,
    op,
    resource,
    success_hook,
)
from runyard.errors import DefinitionError

# ---- helpers ----------------------------------------------------------------------------------------

calls: list[tuple[str, HookContext]] = []


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()
    yield
    calls.clear()


@success_hook
def on_ok(context: HookContext) -> None:
    calls.append(("on_ok", context))


@failure_hook
def on_fail(context: HookContext) -> None:
    calls.append(("on_fail", context))


@success_hook(name="noisy")
def raising_hook(context: HookContext) -> None:
    raise ValueError(f"hook broke on {context.step_key}")


@failure_hook
def raising_failure_hook(context: HookContext) -> None:
    raise KeyError("also broken")


@op
def one() -> int:
    return 1


@op
def plus_one(x: int) -> int:
    return x + 1


@op
def explode(x: int) -> int:
    raise RuntimeError(f"cannot take {x}")


def kinds(result, step_key=None, *types):
    return [str(e.event_type) for e in result.all_events
            if (step_key is None or e.step_key == step_key) and (not types or str(e.event_type) in types)]


def hook_events(result):
    return [(e.step_key, str(e.event_type), e.data["hook"]) for e in result.all_events
            if str(e.event_type).startswith("HOOK_")]


# ---- declaring hooks ----------------------------------------------------------------------------------

def test_decorators_bare_and_with_arguments():
    assert isinstance(on_ok, HookDefinition)
    assert (on_ok.name, on_ok.kind, on_ok.required_resource_keys) == ("on_ok", "success", frozenset())
    assert (raising_hook.name, on_fail.kind) == ("noisy", "failure")

    @failure_hook(required_resource_keys={"slack"}, name="alert")
    def tell(context):
        """Tell the channel."""

    assert (tell.name, tell.kind, tell.required_resource_keys, tell.description) == (
        "alert", "failure", frozenset({"slack"}), "Tell the channel.")


def test_bad_hook_declarations_are_definition_errors():
    with pytest.raises(DefinitionError, match="@success_hook 'two_args': the function must take exactly one"):
        @success_hook
        def two_args(context, extra):
            pass
    with pytest.raises(DefinitionError, match="takes a set of resource keys, not the string 'db'"):
        success_hook(required_resource_keys="db")
    with pytest.raises(DefinitionError, match=r"job 'j': hooks must be a set of hooks"):
        @job(hooks=on_ok)
        def j():
            one()
    with pytest.raises(DefinitionError, match=r"op 'one'.with_hooks: .* is not a hook"):
        one.with_hooks({print})
    twin = success_hook(name="on_ok")(lambda context: None)
    with pytest.raises(DefinitionError, match="two different hooks are named 'on_ok'"):
        @job(hooks={on_ok, twin})
        def clash():
            one()
    with pytest.raises(DefinitionError, match="op 'one' with hooks can only be called inside a @job body"):
        one.with_hooks({on_ok})()


def test_hooks_attach_per_node_and_per_job():
    @job(hooks={on_fail})
    def attached():
        plus_one.with_hooks({on_ok}).alias("second")(one.alias("first").with_hooks({on_ok, raising_hook})())
        plus_one(one())

    nodes = attached.nodes
    assert nodes["first"].hooks == {on_ok, raising_hook}
    assert nodes["second"].hooks == {on_ok}
    assert nodes["one"].hooks == frozenset() and attached.hook_defs == {on_fail}
    from runyard.definitions.hooks import node_hooks

    assert [h.name for h in node_hooks(attached, nodes["first"])] == ["noisy", "on_fail", "on_ok"]
    # a graph turned into a job keeps its nodes' hooks and takes the job's
    from runyard import graph

    @graph
    def g():
        plus_one.with_hooks({on_ok})(one())

    made = g.to_job(hooks={on_fail})
    assert made.nodes["plus_one"].hooks == {on_ok} and made.hook_defs == {on_fail}


# ---- running them --------------------------------------------------------------------------------------

class NumberConfig(Config):
    n: int = 5


@op
def configured(context, config: NumberConfig) -> int:
    return config.n


def test_success_hooks_see_the_step_context_and_outputs():
    @job(hooks={on_ok})
    def seen():
        plus_one.with_hooks({on_ok})(configured())  # attached both ways: runs once

    result = seen.execute_in_process(run_config={"ops": {"configured": {"config": {"n": 41}}}})
    assert result.success
    assert [(name, c.step_key) for name, c in calls] == [("on_ok", "configured"), ("on_ok", "plus_one")]
    first, second = calls[0][1], calls[1][1]
    assert (first.run_id, first.job_name, first.op_name, first.hook_name) == (
        result.run_id, "seen", "configured", "on_ok")
    assert first.op_config == NumberConfig(n=41) and first.op_output_values == {"result": 41}
    assert second.op_output_values == {"result": 42} and second.op_exception is None
    assert hook_events(result) == [("configured", "HOOK_COMPLETED", "on_ok"), ("plus_one", "HOOK_COMPLETED", "on_ok")]
    # the hook event follows the step's success
    assert kinds(result, "plus_one")[-2:] == ["STEP_SUCCESS", "HOOK_COMPLETED"]
    with pytest.raises(AttributeError):  # frozen
        first.step_key = "other"


def test_failure_hooks_get_the_exception_and_skipped_steps_run_none():
    @job(hooks={on_ok, on_fail})
    def failing():
        plus_one(explode(one()))

    result = failing.execute_in_process(raise_on_error=False)
    assert not result.success
    assert [(name, c.step_key) for name, c in calls] == [("on_ok", "one"), ("on_fail", "explode")]
    failed = calls[1][1]
    assert isinstance(failed.op_exception, RuntimeError) and str(failed.op_exception) == "cannot take 1"
    assert failed.op_output_values == {}
    assert kinds(result, "explode")[-2:] == ["STEP_FAILURE", "HOOK_COMPLETED"]
    assert "HOOK_COMPLETED" not in kinds(result, "plus_one")  # skipped: no hook


def test_a_raising_hook_is_logged_and_changes_nothing():
    @job(hooks={raising_hook, raising_failure_hook, on_ok})
    def noisy():
        explode(one())

    result = noisy.execute_in_process(raise_on_error=False)
    assert result.status.value == "FAILURE"  # explode's own failure, nothing more
    errored = [e for e in result.all_events if str(e.event_type) == "HOOK_ERRORED"]
    assert [(e.step_key, e.data["hook"], e.data["kind"]) for e in errored] == [
        ("one", "noisy", "success"), ("explode", "raising_failure_hook", "failure")]
    assert errored[0].level == "ERROR" and "ValueError: hook broke on one" in errored[0].message
    assert "raise ValueError" in errored[0].data["traceback"] and errored[0].data["error_class"] == "ValueError"
    assert [c.step_key for _, c in calls] == ["one"]  # on_ok still ran after the raising hook
    assert kinds(result, "one", "STEP_SUCCESS") == ["STEP_SUCCESS"]

    @job(hooks={raising_hook})
    def fine():
        one()

    assert fine.execute_in_process().success  # a raising success hook never fails the run


def test_failure_hooks_wait_for_the_last_retry(instance):
    attempts: list[int] = []

    @op(retry_policy=RetryPolicy(max_retries=2))
    def flaky(context) -> int:
        attempts.append(context.retry_number)
        raise RuntimeError("still down")

    @op(retry_policy=RetryPolicy(max_retries=2))
    def recovers(context) -> int:
        if context.retry_number < 1:
            raise RuntimeError("once")
        return 7

    @job(hooks={on_ok, on_fail})
    def retried():
        flaky()
        recovers()

    result = execute_job(retried, instance=instance)
    assert result.status.value == "FAILURE" and attempts == [0, 1, 2]
    assert [(n, c.step_key) for n, c in calls] == [("on_fail", "flaky"), ("on_ok", "recovers")]
    assert kinds(result, "flaky", "STEP_UP_FOR_RETRY", "STEP_FAILURE", "HOOK_COMPLETED") == [
        "STEP_UP_FOR_RETRY", "STEP_UP_FOR_RETRY", "STEP_FAILURE", "HOOK_COMPLETED"]
    assert calls[1][1].op_output_values == {"result": 7}


def test_hook_resources_are_set_up_with_the_step():
    log: list[str] = []

    @resource
    def channel(init):
        log.append("setup")
        yield f"#{init.resource_key}"
        log.append("teardown")

    @failure_hook(required_resource_keys={"alerts"})
    def alert(context):
        log.append(f"alert {context.resources.alerts} {context.step_key}")

    @job(resources={"alerts": channel})
    def guarded():
        explode.with_hooks({alert})(one())

    assert "alerts" in guarded.required_resource_keys()
    guarded.execute_in_process(raise_on_error=False)
    assert log == ["setup", "alert #alerts explode", "teardown"]


def test_a_missing_hook_resource_names_the_hook_and_key():
    @success_hook(required_resource_keys={"pager"})
    def page(context):
        pass

    @job(hooks={page})
    def unguarded():
        one()

    missing = r"job 'unguarded' is missing resource\(s\): 'pager' \(needed by hook 'page'\)"
    with pytest.raises(DefinitionError, match=missing):
        Definitions(jobs=[unguarded])
    with pytest.raises(DefinitionError, match="hook 'page'"):
        unguarded.execute_in_process()
    # provided at the Definitions level, it is fine
    Definitions(jobs=[unguarded], resources={"pager": object()})


def test_hook_logs_go_to_the_step():
    @success_hook
    def chatty(context):
        context.log.info(f"hello from {context.hook_name}")

    @job(hooks={chatty})
    def talking():
        one()

    result = talking.execute_in_process()
    logs = [e for e in result.all_events if str(e.event_type) == "LOG"]
    assert [(e.step_key, e.message) for e in logs] == [("one", "hello from chatty")]


def test_the_snapshot_lists_each_ops_hooks():
    from runyard.codeserver.snapshot_builder import build_snapshot

    @success_hook(required_resource_keys={"pager"})
    def page(context):
        """Page someone."""

    @job(hooks={on_fail}, resources={"pager": object()})
    def shown():
        plus_one.with_hooks({page})(one())

    snapshot = build_snapshot(Definitions(jobs=[shown]))
    ops = {o.name: o for o in snapshot.jobs[0].ops}
    assert [(h.name, h.kind, h.required_resources, h.description) for h in ops["plus_one"].hooks] == [
        ("on_fail", "failure", [], None), ("page", "success", ["pager"], "Page someone.")]
    assert [h.name for h in ops["one"].hooks] == ["on_fail"]
    data = snapshot.to_json()
    assert data["jobs"][0]["ops"][0]["hooks"][0]["name"] == "on_fail"

    @job
    def plain():
        one()

    assert "hooks" not in build_snapshot(Definitions(jobs=[plain])).to_json()["jobs"][0]["ops"][0]


def test_hooks_follow_ops_into_nested_graphs_and_mapped_steps():
    from runyard import DynamicOut, DynamicOutput, graph

    @op(out=DynamicOut(int))
    def fan():
        for i in range(3):
            yield DynamicOutput(i, mapping_key=f"k{i}")

    @op
    def square(x: int) -> int:
        return x * x

    @op
    def total(xs: list) -> int:
        return sum(xs)

    @graph
    def inner(x):
        return plus_one.with_hooks({on_fail})(x)

    @job(hooks={on_ok})
    def shaped():
        inner(one())
        total(fan().map(square).collect())

    assert shaped.nodes["inner.plus_one"].hooks == {on_fail}
    assert shaped.execute_in_process().success
    seen = {c.step_key: c.op_output_values for name, c in calls if name == "on_ok"}
    assert seen == {"one": {"result": 1}, "inner.plus_one": {"result": 2},
                    "fan": {"result": {"k0": 0, "k1": 1, "k2": 2}},
                    "square[k0]": {"result": 0}, "square[k1]": {"result": 1}, "square[k2]": {"result": 4},
                    "total": {"result": 5}}
