"""The ``k8s`` executor end to end: each step attempt in a Job of the fake cluster, whose node agent
runs its pod as a container of the image runyard:dev on the Docker engine.

Needs: a Docker engine and the fake cluster (conftest.py), the image runyard:dev
(``scripts/build-images``, built here when the sources changed) and PostgreSQL (the
storage_postgres tests' server, $RUNYARD_TEST_PG_URL): the pods reach it at 127.0.0.1 over the host
network. The run worker is this test process (``execute_run``) or a ``runyard execute-run`` process;
the test's directory (definitions file, output files, instance home) is mounted into every pod at
the same path by a hostPath volume, so the default filesystem IO manager passes outputs between
steps. After every test no step Job, pod or container of its run is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runyard.storage.records import RunStatus
from runyard.testing import SuiteHome, wait_until
from runyard.testing.executor import ExecutorConformanceSuite
from runyard_launcher_k8s import kube, manifests


# ---- fixtures (docker_host, fake_cluster, runyard_image, pg_url, kube: conftest.py) ----------------------
@pytest.fixture
def kube_apis(kube):
    """(core, batch) API objects on the fake cluster (``kube`` is also this module's name for the
    plugin's own client module)."""
    return kube


def step_objects(kube_apis, home: SuiteHome, run_id: str | None = None) -> tuple[list[str], list[str]]:
    """The names of the step Jobs and pods of the home's instance (of one run) in the cluster."""
    core, batch = kube_apis
    labels = {manifests.INSTANCE_LABEL: home.instance.instance_id(), manifests.KIND_LABEL: "step"}
    if run_id:
        labels[manifests.RUN_LABEL] = manifests.label_value(run_id)
    selector = manifests.selector(labels)
    return ([j.metadata.name for j in batch.list_namespaced_job("default", label_selector=selector).items],
            [p.metadata.name for p in core.list_namespaced_pod("default", label_selector=selector).items])


@pytest.fixture
def home(tmp_path, pg_url, runyard_image, fake_cluster, kube_apis):
    """A PostgreSQL instance; the test fails if a step Job or pod of it is left at its end."""
    suite = SuiteHome(tmp_path, {"storage": {"postgres": {"url": pg_url}}})
    yield suite
    try:
        wait_until(lambda: step_objects(kube_apis, suite) == ([], []), timeout=30,
                   what=f"the step Jobs and pods to be gone: {step_objects(kube_apis, suite)}")
    finally:
        suite.close()
        kube.forget_clients()


def executor_config(cluster, image: str, tmp_path: Path, **extra) -> dict:
    """``execution: k8s`` for tests: the fake cluster, the test's directory at the same path."""
    return {"k8s": {"kubeconfig": cluster.kubeconfig, "namespace": "default", "image": image,
                    "image_pull_policy": "Never", "grace_period_seconds": 2,
                    "volumes": [{"name": "work", "hostPath": {"path": str(tmp_path)}}],
                    "volume_mounts": [{"name": "work", "mountPath": str(tmp_path)}], **extra}}


def run_job(home: SuiteHome, source: str, job_name: str, execution: dict):
    from runyard.execution.run_worker import execute_run

    path = home.write_defs(source)
    run, job = home.create_run(path, job_name, {"execution": execution})
    return execute_run(home.instance, run.run_id, job=job)


def outputs(home: SuiteHome, run_id: str) -> list:
    return [e for e in home.events(run_id, "ENGINE_EVENT") if e.data.get("kind") == "pod_output"]


# ---- the conformance suite -------------------------------------------------------------------------------
class TestK8sExecutorConformance(ExecutorConformanceSuite):
    @pytest.fixture
    def executor_run_config(self, fake_cluster, runyard_image, tmp_path):
        return executor_config(fake_cluster, runyard_image, tmp_path, max_concurrent=4)

    @pytest.fixture
    def executor_instance_settings(self, pg_url):
        return {"storage": {"postgres": {"url": pg_url}}}

    @pytest.fixture
    def executor_timeout(self) -> float:
        return 120.0

    @pytest.fixture(autouse=True)
    def _no_step_job_left(self, executor_home, kube_apis):
        yield
        wait_until(lambda: step_objects(kube_apis, executor_home) == ([], []), timeout=30,
                   what=f"the step Jobs and pods to be gone: {step_objects(kube_apis, executor_home)}")
        kube.forget_clients()

    def test_sigterm_to_the_worker_cancels_the_run_and_leaves_no_process(self, executor_home, executor_run_config,
                                                                         tmp_path, fake_cluster, kube_apis):
        """The suite's version checks host pids of the steps; a step pod's are its container's, so
        here: the run is CANCELED, each started step ended, and no step Job, pod or container is left."""
        terminate_mid_run(executor_home, executor_run_config, tmp_path, fake_cluster, kube_apis)


# ---- end to end ------------------------------------------------------------------------------------------
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


def test_a_fan_out_runs_every_step_in_a_job_of_its_own(home, runyard_image, tmp_path, fake_cluster, kube_apis):
    run = run_job(home, "N, FAIL_AT = 6, None\n" + FAN, "fan",
                  executor_config(fake_cluster, runyard_image, tmp_path, max_concurrent=4))
    rid = run.run_id
    assert run.status == RunStatus.SUCCESS, home.describe(rid)
    assert home.out_lines("total") == [str(sum(1 + i for i in range(6)))]
    starts = home.events(rid, "STEP_START")
    pods = {e.data["pod"] for e in starts}
    assert len(starts) == 8 and len(pods) == 8, "one pod per step"
    assert all(p.startswith("runyard-step-") for p in pods) and all(e.data["pid"] is None for e in starts)
    assert {e.data["pod"] for e in outputs(home, rid)} == pods, "every step pod's log is stored"
    assert step_objects(kube_apis, home, rid)[0] == [], "no step Job of the run is left when it ends"


def test_a_failing_op_fails_its_step_with_its_error(home, runyard_image, tmp_path, fake_cluster):
    run = run_job(home, "N, FAIL_AT = 3, 1\n" + FAN, "fan",
                  executor_config(fake_cluster, runyard_image, tmp_path, max_concurrent=4))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "leaf_1")
    assert len(failure) == 1 and "leaf 1 fails" in failure[0].data["error"], home.describe(rid)
    assert failure[0].data.get("error_class") == "RuntimeError", "the op's own failure, not the pod's"
    assert home.types(rid, "total") == ["STEP_SKIPPED"]
    for i in (0, 2):
        assert "STEP_SUCCESS" in home.types(rid, f"leaf_{i}"), home.describe(rid)


SLOW = """
def make(i):
    @op(name=f"slow_{i}")
    def slow() -> None:
        time.sleep(1.5)
    return slow


SLOWS = [make(i) for i in range(4)]


@job
def slow_job():
    for s in SLOWS:
        s()
"""


def test_max_concurrent_bounds_the_step_pods_at_once(home, runyard_image, tmp_path, fake_cluster, kube_apis):
    core, _ = kube_apis
    selector = manifests.selector({manifests.INSTANCE_LABEL: home.instance.instance_id(),
                                   manifests.KIND_LABEL: "step"})
    seen: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            pods = core.list_namespaced_pod("default", label_selector=selector).items
            seen.append(sum(1 for p in pods if p.status.phase in ("Pending", "Running")))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_job(home, SLOW, "slow_job", executor_config(fake_cluster, runyard_image, tmp_path, max_concurrent=2))
    finally:
        stop.set()
        watcher.join()
    assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
    assert max(seen) == 2, f"step pods seen at once: {sorted(set(seen))}"


OOM = """
@op(tags={"k8s/resources": '{"limits": {"memory": "160Mi"}}'})
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


def test_an_op_past_its_memory_limit_fails_with_oom_killed(home, runyard_image, tmp_path, fake_cluster):
    run = run_job(home, OOM, "memory", executor_config(fake_cluster, runyard_image, tmp_path))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "hungry")
    assert len(failure) == 1, home.describe(rid)
    assert failure[0].data["reason"] == "oom_killed" and "160Mi" in failure[0].message, home.describe(rid)
    assert home.out_lines("fed") == ["ok"]
    tail = [e for e in outputs(home, rid) if e.step_key == "hungry"]
    assert len(tail) == 1 and tail[0].level == "ERROR" and tail[0].data["k8s_reason"] == "OOMKilled"


PLACED = """
@op(tags={"k8s/node_selector": '{"disktype": "nvme"}'})
def placed() -> None:
    record("placed", "ran")


@op(tags={"k8s/node_selector": '{"runyard.test/node": "fake"}'})
def on_the_node() -> None:
    record("on_the_node", "ran")


@op(tags={"k8s/tolerations": '{"key": "gpu"}'})
def misconfigured() -> None:
    record("misconfigured", "ran")


@job
def placement():
    placed()
    on_the_node()
    misconfigured()
"""


def test_op_tags_place_the_pods_and_an_unschedulable_step_fails(home, runyard_image, tmp_path, fake_cluster):
    run = run_job(home, PLACED, "placement", executor_config(fake_cluster, runyard_image, tmp_path,
                                                             step_start_timeout_seconds=3))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    assert home.out_lines("on_the_node") == ["ran"], "a selector the node matches runs the step"
    failure = home.events(rid, "STEP_FAILURE", "placed")
    assert len(failure) == 1 and failure[0].data["reason"] == "unschedulable", home.describe(rid)
    assert "selector" in failure[0].message and "step_start_timeout_seconds" in failure[0].message
    assert home.out_lines("placed") == []
    bad = home.events(rid, "STEP_FAILURE", "misconfigured")
    assert len(bad) == 1 and bad[0].data["reason"] == "invalid_op_tag" and "k8s/tolerations" in bad[0].message


LONE = """
@op
def lone() -> None:
    record("lone", "ran")


@job
def lonely():
    lone()
"""


def test_an_image_that_cannot_be_pulled_fails_the_step_at_once(home, tmp_path, fake_cluster):
    run = run_job(home, LONE, "lonely", executor_config(fake_cluster, "runyard-missing:nope", tmp_path))
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "lone")
    assert len(failure) == 1 and failure[0].data["reason"] == "image_pull_error", home.describe(rid)
    assert "runyard-missing:nope" in failure[0].message


SLEEPERS = """
def make(i):
    @op(name=f"nap_{i}")
    def nap() -> None:
        record("sleeping", str(i))
        time.sleep(120)
    return nap


NAPS = [make(i) for i in range(3)]


@op
def after() -> None:
    record("after", "ran")


@job
def sleepy():
    for n in NAPS:
        n()
    after()
"""


def terminate_mid_run(home: SuiteHome, execution: dict, tmp_path: Path, cluster, kube_apis) -> None:
    """Start the sleepy job in a ``runyard execute-run`` process, SIGTERM it once every op sleeps;
    the run is CANCELED and no step Job, pod or container of it is left."""
    path = home.write_defs(SLEEPERS)
    run, _ = home.create_run(path, "sleepy", {"execution": {"k8s": {**execution["k8s"], "max_concurrent": 3}}})
    rid = run.run_id
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "runyard", "execute-run", rid], env=home.worker_env(),
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_until(lambda: len(home.out_lines("sleeping")) == 3 or worker.poll() is not None, timeout=90,
                   what=f"three ops to start sleeping: {home.out_lines('sleeping')}")
        assert worker.poll() is None, log_path.read_text()
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    run = home.instance.get_run(rid)
    assert run.status == RunStatus.CANCELED, f"{log_path.read_text()}\n{home.describe(rid)}"
    assert step_objects(kube_apis, home, rid)[0] == [], "the worker deleted every step Job before it ended"
    for i in range(3):
        assert "STEP_FAILURE" in home.types(rid, f"nap_{i}"), home.describe(rid)
        assert home.types(rid, f"nap_{i}").count("STEP_FAILURE") == 1, home.describe(rid)
    assert home.out_lines("after") == []
    wait_until(lambda: step_objects(kube_apis, home, rid) == ([], []), timeout=30, what="the step pods to be gone")
    wait_until(lambda: cluster.containers() == [], timeout=30,
               what=f"the pods' containers to be removed: {[c.name for c in cluster.containers()]}")


def test_terminate_mid_run_cancels_and_leaves_no_step_job_pod_or_container(home, runyard_image, tmp_path,
                                                                           fake_cluster, kube_apis):
    terminate_mid_run(home, executor_config(fake_cluster, runyard_image, tmp_path), tmp_path, fake_cluster, kube_apis)


NAP = """
@op
def nap() -> int:
    record("napping", "yes")
    time.sleep(120)
    return 1


@op
def awake(x: int) -> None:
    record("awake", "yes")


@job
def napper():
    awake(nap())
"""


@pytest.mark.parametrize("deleted", ["pod", "job"])
def test_a_step_pod_killed_from_outside_fails_its_step_with_the_reason(home, runyard_image, tmp_path, fake_cluster,
                                                                       kube_apis, deleted):
    """Deleted with no grace period, the step process cannot report: the executor says what happened."""
    from runyard.execution.run_worker import execute_run

    core, batch = kube_apis
    path = home.write_defs(NAP)
    run, job = home.create_run(path, "napper", {"execution": executor_config(fake_cluster, runyard_image, tmp_path)})
    rid = run.run_id
    finished: list = []
    worker = threading.Thread(target=lambda: finished.append(execute_run(home.instance, rid, job=job)), daemon=True)
    worker.start()
    wait_until(lambda: home.out_lines("napping") or not worker.is_alive(), timeout=60, what="the op to start")
    step_jobs, pods = step_objects(kube_apis, home, rid)
    assert len(step_jobs) == 1 and len(pods) == 1, (step_jobs, pods, home.describe(rid))
    if deleted == "pod":
        core.delete_namespaced_pod(pods[0], "default", grace_period_seconds=0)
    else:
        batch.delete_namespaced_job(step_jobs[0], "default", grace_period_seconds=0, propagation_policy="Foreground")
    worker.join(timeout=60)
    assert not worker.is_alive(), f"the run did not end:\n{home.describe(rid)}"
    assert finished[0].status == RunStatus.FAILURE, home.describe(rid)
    failure = home.events(rid, "STEP_FAILURE", "nap")
    assert len(failure) == 1, home.describe(rid)
    # SIGKILL follows SIGTERM at once: the op may still record its interruption, and then the
    # executor's reason comes in an event of its own
    reasons = [e for e in failure + home.events(rid, "ENGINE_EVENT", "nap") if e.data.get("reason")]
    assert len(reasons) == 1, home.describe(rid)
    assert reasons[0].data["reason"] == f"{deleted}_deleted", f"{reasons[0].data}\n{home.describe(rid)}"
    assert reasons[0].data["pod"] == pods[0] and reasons[0].data["job"] == step_jobs[0]
    assert reasons[0].level == "ERROR" and f"{deleted} " in reasons[0].message.lower()
    assert home.types(rid, "awake") == ["STEP_SKIPPED"]


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


def test_the_k8s_launcher_and_the_k8s_executor_together(make_home, runyard_image, tmp_path, fake_cluster, kube_apis):
    """The worker in a run pod of the launcher creates the step Jobs through the API (the fake
    cluster's kubeconfig mounted at the same path), and deletes them before it ends."""
    config_dir = str(Path(fake_cluster.kubeconfig).parent)
    home = make_home(volumes=[{"name": "kubeconfig", "hostPath": {"path": config_dir}}],
                     volume_mounts=[{"name": "kubeconfig", "mountPath": config_dir, "readOnly": True}])
    path = home.write_defs(TWO)
    run, _ = home.create_run(path, "pair", {"execution": executor_config(fake_cluster, runyard_image, tmp_path)})
    home.instance.launch_run(run)
    run = home.wait_finished(run.run_id, timeout=120)
    assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
    assert home.out_lines("second") == ["21"]
    starts = home.events(run.run_id, "STEP_START")
    assert {e.step_key for e in starts} == {"first", "second"}
    assert all(e.data["pod"].startswith("runyard-step-") and e.data["namespace"] == "default" for e in starts)
    assert {e.step_key for e in outputs(home, run.run_id)} >= {"first", "second"}
    wait_until(lambda: step_objects(kube_apis, home, run.run_id) == ([], []), timeout=30,
               what="the step Jobs and pods to be gone")


def test_step_jobs_inherit_the_run_pods_settings_under_the_run_configs(make_home, runyard_image, tmp_path,
                                                                       fake_cluster, kube_apis):
    """A run pod of the launcher hands its settings (labels, Secrets, grace period) to its step Jobs;
    what the run config's execution.k8s sets is added on top (a label here), and only the executor's
    keys the run config names win."""
    core, batch = kube_apis
    core.create_namespaced_secret("default", {"metadata": {"name": "etl-env"}, "stringData": {"ETL_MODE": "x"}})
    config_dir = str(Path(fake_cluster.kubeconfig).parent)
    home = make_home(volumes=[{"name": "kubeconfig", "hostPath": {"path": config_dir}}],
                     volume_mounts=[{"name": "kubeconfig", "mountPath": config_dir, "readOnly": True}],
                     labels={"team": "etl"}, env_from_secrets=["etl-env"], grace_period_seconds=4)
    path = home.write_defs(TWO)
    execution = {"k8s": {"kubeconfig": fake_cluster.kubeconfig, "labels": {"tier": "steps"}}}
    run, _ = home.create_run(path, "pair", {"execution": execution})
    seen: dict[str, dict] = {}
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            for job in batch.list_namespaced_job("default", label_selector="runyard.io/kind=step").items:
                seen[job.metadata.name] = {"labels": job.metadata.labels, "spec": job.spec.template.spec}
            stop.wait(0.05)

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    try:
        home.instance.launch_run(run)
        run = home.wait_finished(run.run_id, timeout=120)
    finally:
        stop.set()
        collector.join(timeout=5)
    assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
    assert len(seen) == 2
    for job in seen.values():
        assert job["labels"]["team"] == "etl" and job["labels"]["tier"] == "steps"
        assert [e.secret_ref.name for e in job["spec"].containers[0].env_from] == ["etl-env"]
        assert job["spec"].termination_grace_period_seconds == 4
        assert job["spec"].containers[0].image == runyard_image
