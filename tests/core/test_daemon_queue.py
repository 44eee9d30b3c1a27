"""The ``queued`` coordinator and the daemon's queue loop: submissions wait in QUEUED, the daemon
claims them under max_concurrent_runs and tag limits and launches real run workers.

The daemon's launches are concurrent (``daemon.launch_concurrency``) for a launcher that declares
``supports_concurrent_launch``: those tests use a launcher whose launch takes 0.2 s and starts no
worker, and count the launches in flight.

Needs: nothing beyond Python and SQLite; run workers are real processes.
"""

from __future__ import annotations

import threading
import time

import pytest

from runyard.coordinators.queued import QueuedRunCoordinator
from runyard.daemon import Daemon
from runyard.errors import ConfigError
from runyard.instance.instance import Instance
from runyard.launchers.base import LaunchError, RunLauncher
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


# ---- concurrent launches (daemon.launch_concurrency, RunLauncher.supports_concurrent_launch) --------

class SlowLauncher(RunLauncher):
    """A launcher whose every launch takes 0.2 s (an API round trip) and starts no worker; it counts
    the launches in flight in this process. Runs tagged ``fail`` make it raise."""

    supports_concurrent_launch = True
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    launched: list[str] = []

    @classmethod
    def reset(cls) -> None:
        cls.in_flight = cls.peak = 0
        cls.launched = []

    def launch_run(self, context) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            time.sleep(0.2)
            if context.run.tags.get("fail") == "typed":
                raise LaunchError("no such image", reason="image_not_found")
            if context.run.tags.get("fail"):
                raise RuntimeError("the launcher's API said no")
            context.record_worker(slow=True)
            with cls.lock:
                cls.launched.append(context.run.run_id)
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def terminate(self, context) -> bool:
        return False


class OneAtATimeLauncher(SlowLauncher):
    supports_concurrent_launch = False


def slow_home(tmp_path, launcher: type = SlowLauncher, concurrency: int = 8, **coordinator) -> SuiteHome:
    launcher.reset()
    return SuiteHome(tmp_path, {
        "run_coordinator": {"queued": {"max_concurrent_runs": -1, **coordinator}},
        "run_launcher": {"module": __name__, "class": launcher.__name__},
        "run_monitoring": {"enabled": False},
        "daemon": {"launch_concurrency": concurrency}})


def enqueue(inst, n: int, tags: dict | None = None) -> list[str]:
    ids = []
    for _ in range(n):
        run = inst.create_run(job_name="slow", tags=tags)
        assert inst.submit_run(run).status == RunStatus.QUEUED
        ids.append(run.run_id)
    return ids


def leading_daemon(inst) -> Daemon:
    daemon = Daemon(inst)
    assert daemon.lease.tick()
    return daemon


def test_queued_runs_launch_concurrently_never_more_than_the_setting(tmp_path):
    suite = slow_home(tmp_path, concurrency=8)
    inst = suite.instance
    ids = enqueue(inst, 40)
    daemon = leading_daemon(inst)
    try:
        started = time.monotonic()
        launched = daemon.dequeue()
        took = time.monotonic() - started
    finally:
        daemon.stop()
    assert sorted(r.run_id for r in launched) == sorted(ids)
    assert sorted(SlowLauncher.launched) == sorted(ids)
    assert all(inst.get_run(i).status == RunStatus.STARTING and inst.get_run(i).launcher_info == {"slow": True}
               for i in ids)
    # one at a time is 40 x 0.2 s = 8 s; eight at a time about 1 s (generous bound: a busy machine)
    assert took < 4.0, f"40 launches of 0.2 s took {took:.2f}s with 8 in flight"
    assert SlowLauncher.peak == 8


def test_a_launcher_without_the_capability_is_launched_one_at_a_time(tmp_path):
    suite = slow_home(tmp_path, launcher=OneAtATimeLauncher, concurrency=8)
    inst = suite.instance
    ids = enqueue(inst, 5)
    daemon = leading_daemon(inst)
    try:
        launched = daemon.dequeue()
    finally:
        daemon.stop()
    assert [r.run_id for r in launched] == ids  # claim order: oldest first
    assert OneAtATimeLauncher.peak == 1


def test_a_failing_launch_fails_only_its_run(tmp_path):
    suite = slow_home(tmp_path, concurrency=4)
    inst = suite.instance
    good = enqueue(inst, 6)
    untyped = enqueue(inst, 1, {"fail": "yes"})
    typed = enqueue(inst, 1, {"fail": "typed"})
    good += enqueue(inst, 6)
    daemon = leading_daemon(inst)
    try:
        launched = daemon.dequeue()
    finally:
        daemon.stop()
    assert sorted(r.run_id for r in launched) == sorted(good)
    for run_id in good:
        assert inst.get_run(run_id).status == RunStatus.STARTING
    for run_id, reason in ((untyped[0], None), (typed[0], "image_not_found")):
        assert inst.get_run(run_id).status == RunStatus.FAILURE
        (failure,) = suite.events(run_id, "RUN_FAILURE")
        assert failure.data.get("reason") == reason and "launcher failed to start" in failure.message


def test_max_concurrent_runs_holds_with_concurrent_launches(tmp_path):
    suite = slow_home(tmp_path, concurrency=8, max_concurrent_runs=5,
                      tag_concurrency_limits=[{"key": "db", "limit": 2}])
    inst = suite.instance
    dbs = enqueue(inst, 4, {"db": "x"})
    ids = dbs + enqueue(inst, 16)
    daemon = leading_daemon(inst)
    try:
        first = daemon.dequeue()
        assert len(first) == 5 and sum(1 for r in first if r.run_id in dbs) == 2
        assert inst.storage.count_runs(RunFilter(statuses=[RunStatus.QUEUED])) == 15
        assert daemon.dequeue() == []  # nothing fits until a run finishes
        for run in first[:3]:
            assert inst.transition(run.run_id, [RunStatus.STARTING], RunStatus.SUCCESS)
        second = daemon.dequeue()
        assert len(second) == 3
        active = inst.storage.get_runs(RunFilter(statuses=list(IN_PROGRESS_STATUSES)))
        assert len(active) == 5 and sum(1 for r in active if r.tags.get("db") == "x") <= 2
    finally:
        daemon.stop()
    assert SlowLauncher.peak <= 5
    assert {r.run_id for r in first + second} <= set(ids)


def test_stopping_the_daemon_waits_for_launches_in_flight(tmp_path):
    suite = slow_home(tmp_path, concurrency=4, dequeue_interval_seconds=0.1)
    inst = suite.instance
    ids = enqueue(inst, 200)
    daemon = Daemon(inst).start()
    try:
        wait_until(lambda: len(SlowLauncher.launched) >= 8, timeout=30, what="launches to begin")
    finally:
        daemon.stop()
    assert SlowLauncher.in_flight == 0  # stop returned after the launches in flight
    runs = [inst.get_run(i) for i in ids]
    starting = [r for r in runs if r.status == RunStatus.STARTING]
    # every claimed run was launched (none left STARTING without its worker); the rest still queued
    assert starting and all(r.launcher_info == {"slow": True} for r in starting)
    assert {r.status for r in runs} <= {RunStatus.STARTING, RunStatus.QUEUED}
    assert len(starting) == len(SlowLauncher.launched) < len(ids)
    assert SlowLauncher.peak <= 4


@pytest.mark.parametrize("warm", [True, False])
def test_the_process_launcher_launches_concurrently(tmp_path, warm):
    suite = SuiteHome(tmp_path, {"run_coordinator": {"queued": {"max_concurrent_runs": -1}},
                                 "run_launcher": {"process": {"warm": warm}}})
    inst = suite.instance
    assert inst.run_launcher.supports_concurrent_launch
    defs = suite.write_defs(HELD)
    (suite.out_dir / "go").write_text("")
    runs = []
    for i in range(10):
        run, _ = suite.create_run(defs, "held", {"ops": {"hold": {"config": {"name": f"r{i}"}}}})
        inst.submit_run(run)
        runs.append(run)
    inst.run_launcher.prepare(inst)  # as the daemon does: warm workers fork from the zygote
    daemon = leading_daemon(inst)
    try:
        launched = daemon.dequeue()
        assert sorted(r.run_id for r in launched) == sorted(r.run_id for r in runs)
        pids = {inst.get_run(r.run_id).launcher_info["pid"] for r in runs}
        assert len(pids) == len(runs)
        for run in runs:
            assert suite.wait_finished(run.run_id, timeout=120).status == RunStatus.SUCCESS, suite.describe(run.run_id)
        modes = {inst.get_run(r.run_id).launcher_info["mode"] for r in runs}
        assert modes == {"warm" if warm else "cold"}
    finally:
        daemon.stop()
        inst.run_launcher.dispose()
    assert sorted(suite.out_lines("started")) == sorted(f"r{i}" for i in range(10))
