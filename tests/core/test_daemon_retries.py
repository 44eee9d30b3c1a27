"""Run retries (``run_retries``, the ``runyard/max_retries`` and ``runyard/retry_on_reasons`` tags):
a run that ends FAILURE for a retried reason is re-executed by the daemon as a new run, at most
``max_retries`` times along the chain, exactly once per failed run however many passes or daemons
race; a reason not listed, an op failure with ``retry_on_op_failure: false`` and a CANCELED run are
never retried. Failures are made the way the daemon and launchers record them (a ``RUN_FAILURE`` with
``data.reason``), except in the end-to-end test, whose op really fails in a real run worker.

Needs: nothing beyond Python and SQLite; code servers and run workers are real processes.
"""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from runyard.cli.main import cli
from runyard.daemon import Daemon
from runyard.daemon.retries import CURSOR_KEY, retry_run_id
from runyard.instance.instance import Instance
from runyard.operations.launch import create_from_location, launch_from_location, validate_on_location
from runyard.storage.records import RunFilter, RunStatus
from runyard.tags import (
    MAX_RETRIES_TAG,
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    RETRY_ON_REASONS_TAG,
    ROOT_RUN_ID_TAG,
    check_user_tags,
)
from runyard.testing import wait_until

FLAKY = """
@op
def flaky() -> int:
    record("attempt", "x")
    if not os.path.exists(os.path.join(OUT_DIR, "fixed")):
        raise RuntimeError("not fixed yet")
    return 1


@op
def after(n: int) -> None:
    record("after", n)


@job
def fragile():
    after(flaky())


defs = Definitions(jobs=[shown, fragile])
"""

CONFIG = {"ops": {"show": {"config": {"n": 1}}}}


def retry_settings(**run_retries) -> dict:
    return {"run_coordinator": {"queued": {}}, "run_monitoring": {"enabled": False},
            "run_retries": {"enabled": True, **run_retries}}


@pytest.fixture
def make(daemon_harness):
    def build(**run_retries):
        return daemon_harness(FLAKY, retry_settings(**run_retries))

    return build


def failed_run(h, reason: str | None = "oom_killed", tags: dict | None = None, data: dict | None = None):
    """A run of ``shown`` from the harness's location, ended FAILURE as a launcher or monitoring
    would end it (``data.reason``), without running it."""
    inst = h.instance
    validation = validate_on_location(h.location, "shown", CONFIG)
    run = create_from_location(inst, h.location, validation, run_config=CONFIG)
    if tags:
        inst.storage.update_run(run.run_id, tags=tags)
    assert inst.transition(run.run_id, [RunStatus.NOT_STARTED], RunStatus.FAILURE, "worker died",
                           data=data if data is not None else ({"reason": reason} if reason else {}))
    return inst.get_run(run.run_id)


def fail_again(h, run_id: str, reason: str = "oom_killed") -> None:
    """End a queued retry FAILURE with ``reason``."""
    assert h.instance.transition(run_id, [RunStatus.QUEUED], RunStatus.FAILURE, "worker died again",
                                 data={"reason": reason})


def retried_messages(h, run_id: str) -> list[str]:
    return [e.message for e in h.suite.events(run_id, "ENGINE_EVENT") if e.message.startswith("Retried as")]


def test_a_typed_failure_is_retried_once_per_failure_up_to_max_retries(make):
    h = make(max_retries=2, retry_on_reasons=["oom_killed", "start_timeout"])
    first = failed_run(h, "oom_killed")
    assert h.daemon.run_retries() == [(first.run_id, retry_run_id(first.run_id))]
    retry1 = h.instance.get_run(retry_run_id(first.run_id))
    assert retry1.status == RunStatus.QUEUED  # submitted through the (queued) coordinator
    assert retry1.tags[RETRY_NUMBER_TAG] == "1"
    assert retry1.tags[PARENT_RUN_ID_TAG] == first.run_id == retry1.tags[ROOT_RUN_ID_TAG]
    assert retry1.parent_run_id == first.run_id and retry1.run_config == CONFIG
    assert retry1.step_keys_to_execute == ["show"]  # from failure: the step that never ran
    assert retried_messages(h, first.run_id) == [
        f"Retried as run {retry1.run_id} (attempt 1 of 2, reason oom_killed)."]
    assert h.daemon.run_retries() == [(first.run_id, retry1.run_id)]  # seen again: nothing new
    assert len(retried_messages(h, first.run_id)) == 1

    fail_again(h, retry1.run_id, "start_timeout")
    h.daemon.run_retries()
    retry2 = h.instance.get_run(retry_run_id(retry1.run_id))
    assert retry2.tags[RETRY_NUMBER_TAG] == "2" and retry2.tags[ROOT_RUN_ID_TAG] == first.run_id
    assert retried_messages(h, retry1.run_id) == [
        f"Retried as run {retry2.run_id} (attempt 2 of 2, reason start_timeout)."]

    fail_again(h, retry2.run_id)
    h.daemon.run_retries()
    assert h.instance.storage.get_run(retry_run_id(retry2.run_id)) is None  # retries used up
    assert h.instance.storage.count_runs() == 3


def test_a_reason_not_listed_is_not_retried(make):
    h = make(max_retries=3, retry_on_reasons=["oom_killed"])
    image = failed_run(h, "image_not_found")
    no_reason = failed_run(h, None)
    assert h.daemon.run_retries() == []
    for run in (image, no_reason):
        assert h.instance.storage.get_run(retry_run_id(run.run_id)) is None
        assert retried_messages(h, run.run_id) == []


def test_op_failures_follow_retry_on_op_failure(make):
    h = make(max_retries=1, retry_on_op_failure=False)
    op_failed = failed_run(h, data={"failed_steps": ["show"], "skipped_steps": []})
    worker = failed_run(h, None)  # no reason: run_error, retried since retry_on_reasons is null
    assert h.daemon.run_retries() == [(worker.run_id, retry_run_id(worker.run_id))]
    assert h.instance.storage.get_run(retry_run_id(op_failed.run_id)) is None


def test_run_tags_override_the_settings(make):
    h = make(max_retries=0, retry_on_reasons=["oom_killed"])
    check_user_tags({MAX_RETRIES_TAG: "1", RETRY_ON_REASONS_TAG: "a,b"})  # settings of a run: users may set them
    tagged = failed_run(h, "image_not_found", tags={MAX_RETRIES_TAG: "1", RETRY_ON_REASONS_TAG: "create_error, "
                                                                                          "image_not_found"})
    plain = failed_run(h, "oom_killed")  # max_retries 0 in the settings
    assert h.daemon.run_retries() == [(tagged.run_id, retry_run_id(tagged.run_id))]
    retry = h.instance.get_run(retry_run_id(tagged.run_id))
    assert retry.tags[MAX_RETRIES_TAG] == "1"  # the tags carry over to the retry
    assert h.instance.storage.get_run(retry_run_id(plain.run_id)) is None
    fail_again(h, retry.run_id, "image_not_found")
    assert h.daemon.run_retries() == [(tagged.run_id, retry.run_id)]  # its one retry used up


def test_a_zero_max_retries_tag_turns_retries_off_and_a_star_retries_any_reason(make):
    h2 = make(max_retries=5, retry_on_reasons=["oom_killed"])
    off = failed_run(h2, "oom_killed", tags={MAX_RETRIES_TAG: "0"})
    anything = failed_run(h2, "whatever", tags={RETRY_ON_REASONS_TAG: "*"})
    assert h2.daemon.run_retries() == [(anything.run_id, retry_run_id(anything.run_id))]
    assert h2.instance.storage.get_run(retry_run_id(off.run_id)) is None


def test_a_canceled_run_is_never_retried(make):
    h = make(max_retries=3)
    inst = h.instance
    validation = validate_on_location(h.location, "shown", CONFIG)
    run = create_from_location(inst, h.location, validation, run_config=CONFIG)
    inst.submit_run(run)
    assert inst.terminate_run(run.run_id)
    monitored = create_from_location(inst, h.location, validation, run_config=CONFIG)
    assert inst.transition(monitored.run_id, [RunStatus.NOT_STARTED], RunStatus.CANCELED, "cancel timeout",
                           data={"reason": "cancel_timeout"})
    assert h.daemon.run_retries() == []
    assert inst.storage.count_runs() == 2


def test_failures_from_before_retries_were_enabled_are_not_retried(make):
    h = make(max_retries=1)
    old = failed_run(h, "oom_killed")
    enabled_at = old.updated_at + 61  # the first pass, a minute after the failure (past the overlap)
    assert h.daemon.run_retries(now=enabled_at) == []
    assert float(h.instance.storage.kv_get(CURSOR_KEY)) == enabled_at
    assert h.daemon.run_retries() == []  # the cursor never goes back
    assert h.instance.storage.get_run(retry_run_id(old.run_id)) is None


def test_racing_passes_make_one_retry_and_one_event(make, tmp_path):
    h = make(max_retries=1)
    failed = [failed_run(h, "oom_killed") for _ in range(6)]
    # a second daemon process: its own instance (own storage connections) on the same home
    other = Instance.open(home=str(h.suite.home), instance_file=str(h.suite.instance_file))
    daemons = [h.daemon, Daemon(other, h.workspace, daemon_id="other")]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def race(d: Daemon) -> None:
        from runyard.daemon import retries

        try:
            barrier.wait()
            for run in failed:  # what each leader's pass does per run (the lease normally serializes passes)
                retries._consider(d, run, d.instance.settings.run_retries)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(d,)) for d in daemons]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        for run in failed:
            retries_of = h.instance.storage.get_runs(RunFilter(tags={PARENT_RUN_ID_TAG: run.run_id}))
            assert [r.run_id for r in retries_of] == [retry_run_id(run.run_id)]
            assert retries_of[0].status == RunStatus.QUEUED
            assert len(h.suite.events(retries_of[0].run_id, "RUN_ENQUEUED")) == 1  # submitted once
            assert len(retried_messages(h, run.run_id)) == 1
    finally:
        daemons[1].stop()
        other.dispose()


def test_a_retry_left_unsubmitted_by_a_dead_daemon_is_submitted_once(make):
    from runyard.daemon import retries

    h = make(max_retries=1)
    run = failed_run(h, "oom_killed")
    policy = retries.RetryPolicy.of(run, h.instance.settings.run_retries)
    stored = retries._create(h.daemon, run, retry_run_id(run.run_id), 1, policy, "oom_killed")  # then "died"
    assert stored.status == RunStatus.NOT_STARTED
    # a second daemon that had not seen it yet: its insert fails on the id, and it takes the first
    again = retries._create(h.daemon, run, retry_run_id(run.run_id), 1, policy, "oom_killed")
    assert again.run_id == stored.run_id and again.created_at == stored.created_at
    h.daemon.run_retries()
    h.daemon.run_retries()
    retry = h.instance.get_run(stored.run_id)
    assert retry.status == RunStatus.QUEUED and len(h.suite.events(retry.run_id, "RUN_ENQUEUED")) == 1
    assert len(retried_messages(h, run.run_id)) == 1


def test_an_op_failure_is_retried_from_failure_and_shown(daemon_harness, monkeypatch):
    h = daemon_harness(FLAKY, {"run_retries": {"enabled": True, "max_retries": 2}})
    inst = h.instance
    result = launch_from_location(inst, h.location, "fragile", {})
    first = h.suite.wait_finished(result.run.run_id, timeout=90)
    assert first.status == RunStatus.FAILURE, h.suite.describe(first.run_id)
    (h.suite.out_dir / "fixed").write_text("")
    assert h.daemon.run_retries() == [(first.run_id, retry_run_id(first.run_id))]
    retry = h.suite.wait_finished(retry_run_id(first.run_id), timeout=90)
    assert retry.status == RunStatus.SUCCESS, h.suite.describe(retry.run_id)
    assert retry.step_keys_to_execute == ["flaky", "after"]
    assert h.suite.out_lines("attempt") == ["x", "x"]
    assert retried_messages(h, first.run_id) == [
        f"Retried as run {retry.run_id} (attempt 1 of 2, reason step_failure)."]

    runner = CliRunner()
    monkeypatch.setenv("RUNYARD_HOME", str(h.suite.home))  # the CLI sets it; restored after the test
    shown = runner.invoke(cli, ["--home", str(h.suite.home), "run", "show", retry.run_id])
    assert shown.exit_code == 0, shown.output
    assert f"Parent     {first.run_id}" in shown.output and "Retry      attempt 1" in shown.output
    parent = runner.invoke(cli, ["--home", str(h.suite.home), "run", "show", first.run_id])
    assert f"Retried as {retry.run_id} (SUCCESS)" in parent.output, parent.output


def test_the_started_daemon_retries_on_its_own(daemon_harness):
    h = daemon_harness(FLAKY, {"run_retries": {"enabled": True, "max_retries": 1, "interval_seconds": 0.2},
                               "run_monitoring": {"enabled": False}})
    (h.suite.out_dir / "fixed").write_text("")
    run = failed_run(h, "oom_killed")
    h.daemon.start()
    wait_until(lambda: h.instance.storage.get_run(retry_run_id(run.run_id)), timeout=30, what="the retry")
    retry = h.suite.wait_finished(retry_run_id(run.run_id), timeout=90)
    assert retry.status == RunStatus.SUCCESS and h.suite.out_lines("ran") == ["1"]
    beats = {b["loop"] for b in h.instance.storage.get_heartbeats() if b["daemon_id"] == h.daemon.daemon_id}
    assert "retries" in beats
