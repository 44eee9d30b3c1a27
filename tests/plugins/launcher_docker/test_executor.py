"""The docker executor: each step attempt in its own container, scheduled by the run worker.

Needs: a Docker engine ($DOCKER_HOST), the image runyard:dev and PostgreSQL (see conftest.py).
The run worker is this test process (``execute_run``), a ``runyard execute-run`` process, or a
container of the docker launcher; step containers mount the test's directory at the same path (its
definitions file, outputs and instance home). After every test no container of its instance is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from urllib.parse import urlparse

import pytest
from dockertest import containers_of, launcher_settings, postgres_settings, remove_containers_of

from runyard.storage.records import RunStatus
from runyard.testing import SuiteHome
from runyard.testing.executor import ExecutorConformanceSuite
from runyard.testing.helpers import wait_until


def executor_config(image: str, tmp_path, **extra) -> dict:
    """``execution: docker`` for tests: host network, the test's directory at the same path."""
    return {"docker": {"image": image, "network": "host", "volumes": [f"{tmp_path}:{tmp_path}"],
                       "grace_period_seconds": 2, **extra}}


class TestDockerExecutorConformance(ExecutorConformanceSuite):
    @pytest.fixture
    def executor_run_config(self, runyard_image, tmp_path):
        return executor_config(runyard_image, tmp_path, max_concurrent=4)

    @pytest.fixture
    def executor_instance_settings(self, pg_url):
        return {"storage": postgres_settings(pg_url)}

    @pytest.fixture(autouse=True)
    def _no_container_left(self, executor_home, docker_client):
        yield
        left = remove_containers_of(docker_client, executor_home.instance)
        assert not left, f"the run left step containers: {left}"


@pytest.fixture
def home(tmp_path, pg_url, runyard_image, docker_client):
    """A PostgreSQL instance; the test fails if a container of it is left at its end."""
    suite = SuiteHome(tmp_path, {"storage": postgres_settings(pg_url)})
    yield suite
    left = remove_containers_of(docker_client, suite.instance)
    suite.close()
    assert not left, f"the test left containers: {left}"


def run_job(home: SuiteHome, source: str, job_name: str, execution: dict):
    from runyard.execution.run_worker import execute_run

    path = home.write_defs(source)
    run, job = home.create_run(path, job_name, {"execution": execution})
    return execute_run(home.instance, run.run_id, job=job)


FAN = """
@op
def root() -> int:
    return 1


def make(i):
    @op(name=f"leaf_{i}")
    def leaf(x: int) -> int:
        if FAIL_AT == i:
            raise RuntimeError(f"leaf {i} fails")
        return x + i
    return leaf


LEAVES = [make(i) for i in range(N)]


@op
def total(values: list[int]) -> int:
    record("total", sum(values))
    return sum(values)


@job
def fan():
    r = root()
    total([leaf(r) for leaf in LEAVES])
"""


def test_twenty_step_fan_out_and_fan_in(home, runyard_image, tmp_path):
    run = run_job(home, "N, FAIL_AT = 20, None\n" + FAN, "fan",
                  executor_config(runyard_image, tmp_path, max_concurrent=8))
    assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
    assert home.out_lines("total") == [str(sum(1 + i for i in range(20)))]
    outputs = [e for e in home.events(run.run_id, "ENGINE_EVENT") if e.data.get("kind") == "container_output"]
    assert len(outputs) == 22, "every step container's output is stored before it is removed"


def test_failing_step_skips_downstream_while_the_others_finish(home, runyard_image, tmp_path):
    run = run_job(home, "N, FAIL_AT = 6, 3\n" + FAN, "fan", executor_config(runyard_image, tmp_path, max_concurrent=4))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "leaf_3")
    assert len(failure) == 1 and "leaf 3 fails" in failure[0].data["error"]
    assert home.types(rid, "total") == ["STEP_SKIPPED"]
    for i in (0, 1, 2, 4, 5):
        assert "STEP_SUCCESS" in home.types(rid, f"leaf_{i}"), home.describe(rid)
    assert home.out_lines("total") == []


SLOW = """
def make(i):
    @op(name=f"slow_{i}")
    def slow() -> None:
        time.sleep(1.0)
    return slow


SLOWS = [make(i) for i in range(4)]


@job
def slow_job():
    for s in SLOWS:
        s()
"""


def run_watching(home, docker_client, source: str, job_name: str, execution: dict):
    """Run the job; return it and how many step containers ran at once, at each look."""
    seen: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(len(containers_of(docker_client, home.instance, all=False)))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_job(home, source, job_name, execution)
    finally:
        stop.set()
        watcher.join()
    assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
    return run, seen


def test_max_concurrent_bounds_the_running_step_containers(home, runyard_image, tmp_path, docker_client):
    _, seen = run_watching(home, docker_client, SLOW, "slow_job",
                           executor_config(runyard_image, tmp_path, max_concurrent=2))
    assert max(seen) == 2, f"running step containers seen: {sorted(set(seen))}"


TAGGED = """
def make(i):
    @op(name=f"db_{i}", tags={"pool": "db"})
    def db() -> None:
        time.sleep(0.3)
    return db


DBS = [make(i) for i in range(3)]


@job
def db_job():
    for d in DBS:
        d()
"""


def test_tag_concurrency_limits_bound_the_steps_with_the_tag(home, runyard_image, tmp_path, docker_client):
    _, seen = run_watching(home, docker_client, TAGGED, "db_job", executor_config(
        runyard_image, tmp_path, max_concurrent=4, tag_concurrency_limits=[{"key": "pool", "value": "db",
                                                                            "limit": 1}]))
    assert max(seen) == 1, f"running step containers seen: {sorted(set(seen))}"


OOM = """
@op(tags={"docker/mem_limit": "160m"})
def hungry() -> None:
    chunks = []
    for _ in range(40):
        chunks.append(b"x" * (20 * 1024 * 1024))


@op
def fed() -> None:
    record("fed", "ok")


@job
def memory():
    hungry()
    fed()
"""


def test_op_over_its_memory_tag_fails_with_oom_killed(home, runyard_image, tmp_path):
    run = run_job(home, OOM, "memory", executor_config(runyard_image, tmp_path))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "hungry")
    assert len(failure) == 1, home.describe(rid)
    assert failure[0].data["reason"] == "oom_killed" and "160m" in failure[0].message
    assert home.out_lines("fed") == ["ok"]


LONE = """
@op
def lone() -> None:
    record("lone", "ran")


@job
def lonely():
    lone()
"""


def test_a_step_container_that_cannot_launch_fails_its_step_not_the_worker(home, tmp_path):
    run = run_job(home, LONE, "lonely", executor_config("runyard-missing:nope", tmp_path, image_pull="never"))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "lone")
    assert len(failure) == 1 and failure[0].data["reason"] == "image_not_found", home.describe(rid)
    assert "runyard-missing:nope" in failure[0].message
    assert home.out_lines("lone") == []


SLEEPERS = """
def make(i):
    @op(name=f"nap_{i}")
    def nap() -> None:
        record("napping", str(i))
        time.sleep(120)
    return nap


NAPS = [make(i) for i in range(3)]


@op
def after(context) -> None:
    record("after", "ran")


@job
def sleepy():
    for n in NAPS:
        n()
    after()
"""


def test_sigterm_to_the_worker_cancels_and_removes_every_step_container(home, runyard_image, tmp_path,
                                                                         docker_client):
    path = home.write_defs(SLEEPERS)
    run, _ = home.create_run(path, "sleepy", {"execution": executor_config(runyard_image, tmp_path,
                                                                             max_concurrent=3)})
    rid = run.run_id
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "runyard", "execute-run", rid], env=home.worker_env(),
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_until(lambda: len(home.out_lines("napping")) == 3 or worker.poll() is not None, timeout=60,
                   what=f"three ops to start sleeping: {home.out_lines('napping')}")
        assert worker.poll() is None, log_path.read_text()
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    run = home.instance.get_run(rid)
    assert run.status == RunStatus.CANCELED, f"{log_path.read_text()}\n{home.describe(rid)}"
    assert containers_of(docker_client, home.instance) == []
    for i in range(3):
        assert "STEP_FAILURE" in home.types(rid, f"nap_{i}"), home.describe(rid)
    assert home.out_lines("after") == []


TWO = """
@op
def first() -> int:
    return 20


@op
def second(x: int) -> None:
    record("second", x + 1)


@job
def pair():
    second(first())
"""


def test_docker_launcher_and_docker_executor_together(tmp_path, pg_url, runyard_image, docker_client, docker_host):
    """The worker in a container of the launcher starts the step containers through the engine's
    socket, mounted at the same path."""
    from runyard.launchers.base import ReconcileContext

    socket_path = urlparse(docker_host).path
    launcher = launcher_settings(runyard_image, tmp_path, env_vars=["DOCKER_HOST"],
                                 volumes=[f"{tmp_path}:{tmp_path}", f"{socket_path}:{socket_path}"])
    home = SuiteHome(tmp_path, {"storage": postgres_settings(pg_url), "run_launcher": launcher})
    try:
        path = home.write_defs(TWO)
        run, _ = home.create_run(path, "pair", {"execution": executor_config(runyard_image, tmp_path)})
        home.instance.launch_run(run)
        run = home.wait_finished(run.run_id, timeout=90)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("second") == ["21"]
        steps = [e for e in home.events(run.run_id, "ENGINE_EVENT") if e.data.get("kind") == "container_output"]
        assert {e.step_key for e in steps} == {"first", "second"}
        wait_until(lambda: all(c.status == "exited" for c in containers_of(docker_client, home.instance)),
                   timeout=30, what="the worker container to exit")
        home.instance.run_launcher.reconcile(ReconcileContext(instance=home.instance))
        assert containers_of(docker_client, home.instance) == []
    finally:
        left = remove_containers_of(docker_client, home.instance)
        home.close()
    assert not left, f"the test left containers: {left}"


def test_threads_that_label_containers_at_once_agree_on_the_instance_id(home):
    """The executor's pool labels containers from several threads; on a fresh instance they must
    make one id between them (they raced into a unique-key error, failing a step's launch)."""
    from concurrent.futures import ThreadPoolExecutor

    from runyard.instance.instance import Instance
    from runyard_launcher_docker import engine

    fresh = Instance.open(home=str(home.home), instance_file=str(home.instance_file))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(lambda _: engine.instance_id(fresh), range(8)))
    finally:
        fresh.dispose()
    assert len(set(ids)) == 1 and ids[0] == engine.instance_id(home.instance)
