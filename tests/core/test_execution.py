"""Running jobs in this process with ``runyard.execute_job`` against a real SQLite instance: typed
inputs and outputs, fan-out and fan-in, op and resource config, resource setup/teardown, retries,
``context.log``, and the filesystem IO manager.

Needs: nothing beyond Python (SQLite file under pytest's tmp_path).

Ops are defined inside the tests, so this module does not use ``from __future__ import
annotations`` (their annotations must resolve at decoration time).
"""

import pickle
import time
from typing import Any

import pytest

from runyard import (
    Backoff,
    Config,
    Failure,
    IOManager,
    Out,
    RetryPolicy,
    RetryRequested,
    RunStatus,
    execute_job,
    job,
    op,
    resource,
)
from runyard.errors import DefinitionError, RunConfigError


def events(instance, run_id, *types, step_key=None):
    found = instance.storage.get_events(run_id, step_key=step_key)
    return [e for e in found if not types or str(e.event_type) in types]


def step_events(instance, run_id, step_key):
    return [str(e.event_type) for e in instance.storage.get_events(run_id, step_key=step_key)
            if str(e.event_type).startswith("STEP_") and str(e.event_type) != "STEP_OUTPUT"]


# ---- types, wiring, IO ---------------------------------------------------------------------------

def test_typed_values_flow_between_steps_and_land_in_home_storage(instance, home):
    @op
    def numbers() -> list[int]:
        return [1, 2, 3]

    @op
    def total(values: list[int]) -> int:
        return sum(values)

    @job
    def sums():
        total(numbers())

    run = execute_job(sums, instance=instance)
    assert run.status == RunStatus.SUCCESS
    stored = home / "storage" / run.run_id / "total" / "result"
    assert pickle.loads(stored.read_bytes()) == 6
    assert pickle.loads((home / "storage" / run.run_id / "numbers" / "result").read_bytes()) == [1, 2, 3]
    handled = events(instance, run.run_id, "HANDLED_OUTPUT", step_key="total")
    assert handled[0].data["path"] == str(stored)
    loaded = events(instance, run.run_id, "LOADED_INPUT", step_key="total")
    assert loaded[0].data == {"input": "values", "upstream": "numbers.result"}


def test_wrong_output_type_fails_the_step_with_a_clear_message(instance):
    @op
    def count() -> int:
        return "three"

    @op
    def after(n: int) -> int:
        return n

    @job
    def typed():
        after(count())

    run = execute_job(typed, instance=instance)
    assert run.status == RunStatus.FAILURE
    failure, = events(instance, run.run_id, "STEP_FAILURE")
    assert failure.step_key == "count"
    assert failure.data["error"] == "op 'count' output 'result' must be int, got str"
    assert step_events(instance, run.run_id, "after") == ["STEP_SKIPPED"]


def test_optional_and_union_output_types_are_accepted(instance):
    @op
    def maybe() -> int | None:
        return None

    @op
    def either(x: int | None) -> str | int:
        return "none" if x is None else x

    @job
    def unions():
        either(maybe())

    assert execute_job(unions, instance=instance).status == RunStatus.SUCCESS


def test_fan_out_and_fan_in(instance, home):
    @op
    def base() -> int:
        return 10

    @op
    def plus_one(x: int) -> int:
        return x + 1

    @op
    def times_two(x: int) -> int:
        return x * 2

    @op
    def collect(values: list[int]) -> list[int]:
        return sorted(values)

    @job
    def fan():
        b = base()
        collect([plus_one(b), times_two(b), plus_one.alias("plus_one_again")(b)])

    run = execute_job(fan, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert pickle.loads((home / "storage" / run.run_id / "collect" / "result").read_bytes()) == [11, 11, 20]
    loaded = [e.data["upstream"] for e in events(instance, run.run_id, "LOADED_INPUT", step_key="collect")]
    assert loaded == ["plus_one.result", "times_two.result", "plus_one_again.result"]
    starts = [e.step_key for e in events(instance, run.run_id, "STEP_START")]
    assert starts[0] == "base" and starts[-1] == "collect"


def test_several_outputs(instance, home):
    @op(outs={"evens": Out(list), "odds": Out(list)})
    def split() -> tuple:
        return [0, 2], [1, 3]

    @op
    def count(items: list) -> int:
        return len(items)

    @job
    def splitter():
        evens, odds = split()
        count(evens)
        count(odds)

    run = execute_job(splitter, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert pickle.loads((home / "storage" / run.run_id / "split" / "odds").read_bytes()) == [1, 3]
    assert pickle.loads((home / "storage" / run.run_id / "count_2" / "result").read_bytes()) == 2


def test_custom_io_manager_replaces_the_filesystem_one(instance, home):
    stored: dict[str, Any] = {}

    class MemoryIOManager(IOManager):
        def handle_output(self, context, obj):
            stored[f"{context.step_key}.{context.output_name}"] = obj
            return {"where": "memory"}

        def load_input(self, context):
            return stored[f"{context.upstream_step_key}.{context.upstream_output_name}"]

    @op
    def word() -> str:
        return "yard"

    @op
    def shout(w: str) -> str:
        return w.upper()

    @job(resources={"io_manager": MemoryIOManager()})
    def memory():
        shout(word())

    run = execute_job(memory, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert stored == {"word.result": "yard", "shout.result": "YARD"}
    assert not (home / "storage" / run.run_id).exists()


# ---- config --------------------------------------------------------------------------------------

class GreetConfig(Config):
    name: str
    times: int = 1


def test_op_config_is_validated_into_the_model(instance, home):
    @op
    def greet(config: GreetConfig) -> str:
        return " ".join([f"hello {config.name}"] * config.times)

    @job
    def greeting():
        greet()

    run = execute_job(greeting, instance=instance,
                      run_config={"ops": {"greet": {"config": {"name": "yard", "times": 2}}}})
    assert run.status == RunStatus.SUCCESS
    assert pickle.loads((home / "storage" / run.run_id / "greet" / "result").read_bytes()) == \
        "hello yard hello yard"
    assert instance.get_run(run.run_id).run_config == {"ops": {"greet": {"config": {"name": "yard",
                                                                                    "times": 2}}}}


@pytest.mark.parametrize("config, path", [
    ({"times": 2}, "ops.greet.config.name"),
    ({"name": "x", "times": "lots"}, "ops.greet.config.times"),
    ({"name": "x", "volume": 11}, "ops.greet.config.volume"),
])
def test_invalid_op_config_names_the_key_path_and_creates_no_run(instance, config, path):
    @op
    def greet(config: GreetConfig) -> str:
        return config.name

    @job
    def greeting():
        greet()

    with pytest.raises(RunConfigError) as err:
        execute_job(greeting, instance=instance, run_config={"ops": {"greet": {"config": config}}})
    assert path in str(err.value)
    assert str(err.value).startswith("run config")
    assert instance.storage.count_runs() == 0


def test_run_config_naming_an_unknown_op_is_rejected(instance):
    @op
    def only() -> None:
        pass

    @job
    def single():
        only()

    with pytest.raises(RunConfigError, match=r"ops\.nope: job 'single' has no op named 'nope'"):
        execute_job(single, instance=instance, run_config={"ops": {"nope": {"config": {}}}})
    assert instance.storage.count_runs() == 0


# ---- resources -----------------------------------------------------------------------------------

class LedgerConfig(Config):
    label: str


def test_resource_config_setup_and_teardown_around_the_run(instance):
    calls: list[str] = []

    @resource(config=LedgerConfig)
    def ledger(context):
        calls.append(f"setup {context.config.label}")
        yield {"label": context.config.label}
        calls.append("teardown")

    @op(required_resource_keys={"ledger"})
    def use(context) -> str:
        calls.append(f"use {context.resources.ledger['label']}")
        return context.resources.ledger["label"]

    @job(resources={"ledger": ledger})
    def with_ledger():
        use()

    run = execute_job(with_ledger, instance=instance,
                      run_config={"resources": {"ledger": {"config": {"label": "books"}}}})
    assert run.status == RunStatus.SUCCESS
    assert calls == ["setup books", "use books", "teardown"]


def test_resource_teardown_runs_even_when_the_run_fails(instance):
    calls: list[str] = []

    @resource
    def connection(context):
        calls.append("open")
        try:
            yield "conn"
        finally:
            calls.append("close")

    @op(required_resource_keys={"connection"})
    def explode(context) -> None:
        calls.append("explode")
        raise RuntimeError("boom")

    @job(resources={"connection": connection})
    def failing():
        explode()

    run = execute_job(failing, instance=instance)
    assert run.status == RunStatus.FAILURE
    assert calls == ["open", "explode", "close"]


def test_resource_that_fails_to_set_up_fails_the_run_with_its_error(instance):
    @resource
    def broken(context):
        raise ConnectionError("warehouse unreachable")

    @op(required_resource_keys={"broken"})
    def use(context) -> None:
        pass

    @job(resources={"broken": broken})
    def needs_broken():
        use()

    run = execute_job(needs_broken, instance=instance)
    assert run.status == RunStatus.FAILURE
    failure, = events(instance, run.run_id, "RUN_FAILURE")
    assert "resource 'broken' failed to initialize: ConnectionError: warehouse unreachable" in failure.message
    assert "warehouse unreachable" in failure.data["traceback"]


def test_missing_resource_config_is_a_run_config_error(instance):
    @resource(config=LedgerConfig)
    def ledger(context):
        return context.config.label

    @op(required_resource_keys={"ledger"})
    def use(context) -> None:
        pass

    @job(resources={"ledger": ledger})
    def with_ledger():
        use()

    with pytest.raises(RunConfigError, match=r"resources\.ledger\.config\.label"):
        execute_job(with_ledger, instance=instance)
    assert instance.storage.count_runs() == 0


# ---- logs ----------------------------------------------------------------------------------------

def test_context_log_becomes_log_events(instance):
    @op
    def chatty(context) -> None:
        context.log.info("processed %d rows", 42, table="orders")
        context.log.warning("slow query")
        context.log.error("almost failed")

    @job
    def logging_job():
        chatty()

    run = execute_job(logging_job, instance=instance)
    logs = events(instance, run.run_id, "LOG")
    assert [(e.level, e.message, e.step_key) for e in logs] == [
        ("INFO", "processed 42 rows", "chatty"),
        ("WARNING", "slow query", "chatty"),
        ("ERROR", "almost failed", "chatty"),
    ]
    assert logs[0].data == {"table": "orders"}


# ---- retries -------------------------------------------------------------------------------------

def test_retry_policy_retries_until_success(instance):
    @op(retry_policy=RetryPolicy(max_retries=3))
    def flaky(context) -> int:
        if context.retry_number < 2:
            raise ConnectionError(f"attempt {context.retry_number + 1} failed")
        return context.retry_number

    @job
    def retrying():
        flaky()

    run = execute_job(retrying, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert step_events(instance, run.run_id, "flaky") == [
        "STEP_START", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_UP_FOR_RETRY", "STEP_RESTARTED",
        "STEP_SUCCESS"]
    up = events(instance, run.run_id, "STEP_UP_FOR_RETRY")
    assert [e.data["attempt"] for e in up] == [1, 2]
    assert up[0].data["error"] == "ConnectionError: attempt 1 failed"
    assert [e.data["attempt"] for e in events(instance, run.run_id, "STEP_RESTARTED")] == [2, 3]


def test_step_that_keeps_failing_ends_after_its_last_attempt(instance):
    attempts: list[int] = []

    @op(retry_policy=RetryPolicy(max_retries=2))
    def hopeless(context) -> None:
        attempts.append(context.retry_number)
        raise ValueError("still broken")

    @op
    def downstream(x: None) -> None:
        pass

    @job
    def doomed():
        downstream(hopeless())

    run = execute_job(doomed, instance=instance)
    assert run.status == RunStatus.FAILURE
    assert attempts == [0, 1, 2]
    assert step_events(instance, run.run_id, "hopeless") == [
        "STEP_START", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_UP_FOR_RETRY", "STEP_RESTARTED",
        "STEP_FAILURE"]
    failure, = events(instance, run.run_id, "STEP_FAILURE")
    assert failure.data["attempt"] == 3 and failure.data["error"] == "ValueError: still broken"
    assert step_events(instance, run.run_id, "downstream") == ["STEP_SKIPPED"]


@pytest.mark.parametrize("backoff, expected", [
    (None, [0.1, 0.1, 0.1]),
    (Backoff.LINEAR, [0.1, 0.2, 0.3]),
    (Backoff.EXPONENTIAL, [0.1, 0.2, 0.4]),
])
def test_retry_delays_follow_the_backoff(instance, backoff, expected):
    @op(retry_policy=RetryPolicy(max_retries=3, delay=0.1, backoff=backoff))
    def slow_to_recover(context) -> None:
        if context.retry_number < 3:
            raise TimeoutError("not yet")

    @job
    def backing_off():
        slow_to_recover()

    run = execute_job(backing_off, instance=instance)
    assert run.status == RunStatus.SUCCESS
    up = events(instance, run.run_id, "STEP_UP_FOR_RETRY")
    restarted = events(instance, run.run_id, "STEP_RESTARTED")
    assert [e.data["retry_delay"] for e in up] == pytest.approx(expected)
    for before, after, delay in zip(up, restarted, expected, strict=True):
        assert after.timestamp - before.timestamp >= delay * 0.95  # the executor really waited


def test_retry_requested_retries_without_a_policy(instance):
    @op
    def asks(context) -> int:
        if context.retry_number < 2:
            raise RetryRequested(max_retries=2, seconds_to_wait=0.05)
        return 7

    @job
    def requested():
        asks()

    started = time.monotonic()
    run = execute_job(requested, instance=instance)
    assert run.status == RunStatus.SUCCESS
    assert time.monotonic() - started >= 0.1
    assert step_events(instance, run.run_id, "asks").count("STEP_RESTARTED") == 2
    assert [e.data["retry_delay"] for e in events(instance, run.run_id, "STEP_UP_FOR_RETRY")] == [0.05, 0.05]


def test_retry_requested_beyond_its_max_fails(instance):
    @op
    def always_asks(context) -> None:
        raise RetryRequested(max_retries=1)

    @job
    def gives_up():
        always_asks()

    run = execute_job(gives_up, instance=instance)
    assert run.status == RunStatus.FAILURE
    assert step_events(instance, run.run_id, "always_asks") == [
        "STEP_START", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_FAILURE"]


def test_failure_is_never_retried(instance):
    calls: list[int] = []

    @op(retry_policy=RetryPolicy(max_retries=5))
    def rejects(context) -> None:
        calls.append(context.retry_number)
        raise Failure("input file is corrupt", metadata={"rows": 3})

    @job
    def final():
        rejects()

    run = execute_job(final, instance=instance)
    assert run.status == RunStatus.FAILURE
    assert calls == [0]
    assert step_events(instance, run.run_id, "rejects") == ["STEP_START", "STEP_FAILURE"]
    failure, = events(instance, run.run_id, "STEP_FAILURE")
    assert failure.data["error"] == "Failure: input file is corrupt"
    assert failure.data["metadata"] == {"rows": 3}


def test_retry_policy_does_not_retry_a_wrong_output_type(instance):
    @op(retry_policy=RetryPolicy(max_retries=3))
    def wrong() -> int:
        return "nope"

    @job
    def typed():
        wrong()

    run = execute_job(typed, instance=instance)
    assert step_events(instance, run.run_id, "wrong") == ["STEP_START", "STEP_FAILURE"]


# ---- failures ------------------------------------------------------------------------------------

def test_op_that_raises_fails_the_run_with_traceback_and_skips_downstream(instance):
    @op
    def first() -> int:
        return 1

    @op
    def breaks(x: int) -> int:
        return x // 0

    @op
    def after(x: int) -> int:
        return x

    @op
    def independent() -> int:
        return 2

    @job
    def partial():
        after(breaks(first()))
        independent()

    run = execute_job(partial, instance=instance)
    assert run.status == RunStatus.FAILURE
    failure, = events(instance, run.run_id, "STEP_FAILURE")
    assert failure.step_key == "breaks"
    assert failure.data["error"] == "ZeroDivisionError: integer division or modulo by zero"
    assert "return x // 0" in failure.data["traceback"]
    assert __file__ in failure.data["traceback"]
    assert step_events(instance, run.run_id, "after") == ["STEP_SKIPPED"]
    assert step_events(instance, run.run_id, "independent")[-1] == "STEP_SUCCESS"
    run_failure, = events(instance, run.run_id, "RUN_FAILURE")
    assert run_failure.data["failed_steps"] == ["breaks"]
    assert run_failure.data["skipped_steps"] == ["after"]


def test_op_that_calls_sys_exit_fails_its_step_not_the_process(instance):
    @op
    def quitter() -> None:
        raise SystemExit(3)

    @job
    def exits():
        quitter()

    run = execute_job(exits, instance=instance)
    assert run.status == RunStatus.FAILURE
    failure, = events(instance, run.run_id, "STEP_FAILURE")
    assert "called sys.exit(3)" in failure.data["error"]


def test_run_status_and_events_agree(instance):
    @op
    def fine() -> int:
        return 1

    @job
    def ok():
        fine()

    run = execute_job(ok, instance=instance, tags={"team": "data"})
    stored = instance.get_run(run.run_id)
    assert stored.status == RunStatus.SUCCESS
    assert stored.tags == {"team": "data"}
    assert stored.start_time is not None and stored.end_time >= stored.start_time
    run_events = [t for t in (str(e.event_type) for e in instance.storage.get_events(run.run_id))
                  if t.startswith("RUN_")]
    assert run_events == ["RUN_START", "RUN_SUCCESS"]
    ids = [e.id for e in instance.storage.get_events(run.run_id)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)



def test_job_run_without_definitions_still_needs_its_resources(instance):
    @op(required_resource_keys={"db"})
    def use(context) -> str:
        return repr(context.resources.db)

    @job
    def needs_db():
        use()

    with pytest.raises(DefinitionError, match=r"job 'needs_db' is missing resource\(s\): 'db' \(needed by use\)"):
        execute_job(needs_db, instance=instance)
    assert instance.storage.count_runs() == 0
