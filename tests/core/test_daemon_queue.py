"""The ``queued`` coordinator and the daemon's queue loop: submissions wait in QUEUED, the daemon
claims them under max_concurrent_runs and tag limits and launches real run workers.

Needs: nothing beyond Python and SQLite; run workers are real processes.
"""

from __future__ import annotations

import threading

import pytest

from runyard.coordinators.queued import QueuedRunCoordinator
from runyard.daemon import Daemon
from runyard.errors import ConfigError
from runyard.instance.instance import Instance
from runyard.storage.base import TagLimit
from runyard.storage.records import FINISHED_STATUSES, IN_PROGRESS_STATUSES, EventType, RunFilter, RunStatus
from runyard.testing import SuiteHome, wait_until

HELD = """
class HoldCfg(Config):
    name: str


@op
def hold(config: HoldCfg) -> None:
    record("started", config.name)
    wait_for_file(os.path.join(OUT_DIR, "go"))


@job
def held():
    hold()


defs = Definitions(jobs=[held])
"""

def queued_home(tmp_path, **coordinator) -> SuiteHome:
    return SuiteHome(tmp_path, {"run_coordinator": {"queued": coordinator},
                                "run_launcher": {"process": {"warm": False}}})


def test_queued_config_is_typed_and_builds_claim_limits(tmp_path):
    inst = Instance.from_yaml(str(tmp_path), """
run_coordinator:
  queued:
    max_concurrent_runs: 3
    tag_concurrency_limits:
      - {key: db, value: prod, limit: 1}
      - {key: tenant, value: {applyLimitPerUniqueValue: true}, limit: 2}
      - {key: heavy, limit: 4}
    dequeue_interval_seconds: 0.5
""")
    coordinator = inst.run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator) and coordinator.queues_runs
    limits = coordinator.claim_limits()
    assert limits.max_in_progress == 3
    assert list(limits.tag_limits) == [TagLimit("db", 1, "prod"), TagLimit("tenant", 2, per_unique_value=True),
                                       TagLimit("heavy", 4)]
    assert coordinator.dequeue_interval == 0.5
    unlimited = Instance.from_yaml(str(tmp_path), "run_coordinator: {queued: {max_concurrent_runs: -1}}")
    assert unlimited.run_coordinator.claim_limits().max_in_progress is None
    defaults = Instance.from_yaml(str(tmp_path), "run_coordinator: queued").run_coordinator.config
    assert (defaults.max_concurrent_runs, defaults.dequeue_interval_seconds) == (10, 1.0)


@pytest.mark.parametrize("bad, where", [
    ("{max_concurrent_runs: many}", "max_concurrent_runs"),
    ("{tag_concurrency_limits: [{key: db, value: prod}]}", "limit"),
    ("{dequeue_interval_seconds: 0}", "dequeue_interval_seconds"),
    ("{max_concurrent_runs: -2}", "max_concurrent_runs"),
])
def test_bad_queued_config_names_the_key(tmp_path, bad, where):
    inst = Instance.from_yaml(str(tmp_path), f"run_coordinator: {{queued: {bad}}}")
    with pytest.raises(ConfigError) as info:
        inst.run_coordinator  # noqa: B018
    assert where in str(info.value) and "runyard.yaml" in str(info.value)


def test_submit_queues_and_daemon_launches_within_the_limits(tmp_path):
    suite = queued_home(tmp_path, max_concurrent_runs=2, dequeue_interval_seconds=0.2,
                        tag_concurrency_limits=[{"key": "db", "value": "prod", "limit": 1}])
    inst = suite.instance
    defs = suite.write_defs(HELD)
    runs = []
    for i, tags in enumerate([{"db": "prod"}, {"db": "prod"}, {}, {}]):
        run, _ = suite.create_run(defs, "held", {"ops": {"hold": {"config": {"name": f"r{i}"}}}})
        inst.storage.update_run(run.run_id, tags=tags)
        submitted = inst.submit_run(inst.get_run(run.run_id))
        assert submitted.status == RunStatus.QUEUED
        assert suite.types(run.run_id)[-1] == str(EventType.RUN_ENQUEUED)
        runs.append(run)
    peak = {"all": 0, "prod": 0}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            active = inst.storage.get_runs(RunFilter(statuses=list(IN_PROGRESS_STATUSES)))
            peak["all"] = max(peak["all"], len(active))
            peak["prod"] = max(peak["prod"], sum(1 for r in active if r.tags.get("db") == "prod"))
            stop.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    daemon = Daemon(inst).start()
    try:
        wait_until(lambda: len(suite.out_lines("started")) == 2, timeout=60, what="two runs to start")
        # one prod run and one untagged run: the second prod run waits behind the tag limit
        assert sorted(suite.out_lines("started")) in (["r0", "r2"],)
        assert inst.get_run(runs[1].run_id).status == RunStatus.QUEUED
        (suite.out_dir / "go").write_text("")
        for run in runs:
            assert suite.wait_finished(run.run_id, timeout=90).status == RunStatus.SUCCESS, suite.describe(run.run_id)
    finally:
        stop.set()
        watcher.join()
        daemon.stop()
    assert peak == {"all": 2, "prod": 1}
    starting = suite.events(runs[0].run_id, "RUN_STARTING")
    assert starting and starting[0].data == {"claimed_by": daemon.daemon_id}
    beats = {b["loop"]: b for b in inst.storage.get_heartbeats() if b["daemon_id"] == daemon.daemon_id}
    assert {"lease", "queue"} <= set(beats)
    assert inst.storage.get_lease("runyard-daemon") is None  # released on stop


def test_priority_tag_orders_the_queue(tmp_path):
    suite = queued_home(tmp_path, max_concurrent_runs=1, dequeue_interval_seconds=0.2)
    inst = suite.instance
    defs = suite.write_defs(HELD)
    (suite.out_dir / "go").write_text("")
    order = []
    for name, priority in [("low", None), ("high", "10"), ("mid", "1")]:
        run, _ = suite.create_run(defs, "held", {"ops": {"hold": {"config": {"name": name}}}})
        if priority:
            inst.storage.update_run(run.run_id, tags={"runyard/priority": priority})
        inst.submit_run(inst.get_run(run.run_id))
        order.append(run)
    with Daemon(inst):
        for run in order:
            suite.wait_finished(run.run_id, timeout=90)
    assert suite.out_lines("started") == ["high", "mid", "low"]


def test_launch_claimed_run_only_takes_claimed_runs_and_a_broken_run_fails(tmp_path):
    suite = queued_home(tmp_path, dequeue_interval_seconds=0.2)
    inst = suite.instance
    run = inst.create_run(job_name="nothing")  # no code pointer: its worker cannot load it
    with pytest.raises(Exception, match="claimed"):
        inst.launch_claimed_run(run)
    inst.submit_run(run)
    claimed = inst.storage.claim_queued_runs("test", 1)
    assert [r.run_id for r in claimed] == [run.run_id]
    inst.launch_claimed_run(claimed[0])
    final = wait_until(lambda: (r := inst.get_run(run.run_id)).status in FINISHED_STATUSES and r,
                       timeout=60, what="the run to fail")
    assert final.status == RunStatus.FAILURE
    with pytest.raises(Exception, match="claimed"):
        inst.launch_claimed_run(inst.get_run(run.run_id))
