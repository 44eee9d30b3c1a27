"""Fixtures of the Kubernetes launcher's tests: a fake cluster (fakecluster.py) per test.

Needs: a Docker engine (``$DOCKER_HOST``; without one, ``scripts/docker-engine`` finds or starts a
private one) and a Python image, ``runyard-base:bookworm`` (``scripts/build-images`` makes it). If
either is missing the tests FAIL saying what to start; they never skip. A test that leaves a
container of its cluster behind fails.

The launcher's tests also need PostgreSQL (as storage_postgres does) and the image ``runyard:dev``
(``scripts/build-images``), and share the docker launcher's test helpers (``launchertest``: the
jobs, real ``runyard`` CLI and daemon subprocesses).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakecluster import FakeCluster

# the docker launcher's test helpers (its jobs, CLI and daemon subprocesses) serve these tests too
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "launcher_docker"))

ROOT = Path(__file__).resolve().parents[3]
PYTHON_IMAGE = os.environ.get("RUNYARD_TEST_PYTHON_IMAGE", "runyard-base:bookworm")


@pytest.fixture(scope="session")
def docker_host() -> str:
    """An engine that answers: $DOCKER_HOST, else what scripts/docker-engine finds or starts (left
    running: other sessions share it)."""
    if not os.environ.get("DOCKER_HOST"):
        proc = subprocess.run([str(ROOT / "scripts" / "docker-engine"), "start"], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"no Docker engine: scripts/docker-engine start failed:\n{proc.stderr}", pytrace=False)
        os.environ["DOCKER_HOST"] = proc.stdout.strip().splitlines()[-1].split("=", 1)[1]
    import docker

    try:
        docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41", timeout=10).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer: {exc}. "
                    "Start one with scripts/docker-engine.", pytrace=False)
    return os.environ["DOCKER_HOST"]


@pytest.fixture(scope="session")
def python_image(docker_host) -> str:
    """An image with python3: runyard-base:bookworm, made by scripts/build-images when missing."""
    import docker

    client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=30)
    try:
        client.images.get(PYTHON_IMAGE)
    except docker.errors.ImageNotFound:
        proc = subprocess.run([str(ROOT / "scripts" / "build-images")], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DOCKER_HOST": docker_host})
        if proc.returncode != 0:
            pytest.fail(f"scripts/build-images failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    finally:
        client.close()
    return PYTHON_IMAGE


def _closed(cluster: FakeCluster, settle: float = 10.0) -> None:
    """Close the cluster; fail if it still ran a container ``settle`` seconds after the test (pods a
    test deleted at its end may take that long to stop) or if it logged an error."""
    left: list[str] = []
    deadline = time.monotonic() + settle
    while cluster.mode == "docker" and (left := [c.name for c in cluster.containers()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = cluster.server_log()
    cluster.close()
    assert not left, f"the test left containers of its fake cluster: {left}"
    assert "Traceback" not in log, f"the fake cluster logged an error:\n{log[-4000:]}"


@pytest.fixture
def fake_cluster(docker_host, python_image):
    """A fake cluster running pods on the Docker engine; the test must leave no container behind."""
    cluster = FakeCluster(mode="docker", docker_host=docker_host, node_labels={"runyard.test/node": "fake"})
    try:
        yield cluster
    finally:
        _closed(cluster)


@pytest.fixture
def instant_cluster():
    """A fake cluster in instant mode (no Docker): every Job succeeds at once."""
    cluster = FakeCluster(mode="instant")
    try:
        yield cluster
    finally:
        _closed(cluster)


# ---- the launcher's tests: PostgreSQL, the runyard image, homes with the k8s launcher -------------------
@pytest.fixture(scope="session")
def runyard_image(docker_host) -> str:
    """runyard:dev built from this checkout (scripts/build-images; nothing is built when the sources
    did not change). RUNYARD_TEST_IMAGE names another image and skips the build."""
    if "RUNYARD_TEST_IMAGE" in os.environ:
        return os.environ["RUNYARD_TEST_IMAGE"]
    proc = subprocess.run([str(ROOT / "scripts" / "build-images"), "--tag", "runyard:dev"], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "DOCKER_HOST": docker_host})
    if proc.returncode != 0:
        pytest.fail(f"scripts/build-images failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return "runyard:dev"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    from runyard_storage_postgres.testing import PostgresUnavailable, require_server

    try:
        return require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_url(pg_admin_url, tmp_path):
    """A database of the test's own, dropped at its end (after its processes are gone)."""
    from runyard.testing import stop_processes_with_env
    from runyard_storage_postgres.testing import create_database, drop_database

    url = create_database(pg_admin_url, prefix="runyard_k8s")
    yield url
    stop_processes_with_env("RUNYARD_HOME", str(tmp_path / "home"))
    drop_database(url, pg_admin_url)


@pytest.fixture
def kube(fake_cluster):
    """(core, batch) API objects on the test's fake cluster."""
    import kubernetes

    api = fake_cluster.api_client()
    yield kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api)
    api.close()


@pytest.fixture
def make_home(tmp_path, pg_url, runyard_image, fake_cluster):
    """``make_home(storage=..., queued=..., poll=..., **launcher keys)``: a SuiteHome with the k8s
    launcher on the test's fake cluster and PostgreSQL database (``storage=None``: SQLite in the home),
    run monitoring every ``poll`` seconds. Its processes stop at the end; the cluster's containers go
    with the cluster (and a test that leaves one fails)."""
    from k8stest import launcher_settings
    from launchertest import home_settings

    from runyard.testing import SuiteHome

    made: list[SuiteHome] = []

    def make(*, storage: Any = "postgres", queued: bool = False, poll: float = 0.3, lease: float | None = None,
             start_timeout: float | None = None, **launcher: Any) -> SuiteHome:
        store = {"postgres": {"url": pg_url}} if storage == "postgres" else storage
        image = launcher.pop("image", runyard_image)
        settings = home_settings(store, launcher_settings(fake_cluster, image, tmp_path, **launcher),
                                 queued=queued, poll=poll, lease=lease)
        if start_timeout is not None:
            settings["run_monitoring"]["start_timeout_seconds"] = start_timeout
        home = SuiteHome(tmp_path, settings)
        made.append(home)
        return home

    yield make
    # what a test left in the cluster goes (tests that check the reconciler assert it themselves)
    api = fake_cluster.api_client()
    try:
        import kubernetes

        batch = kubernetes.client.BatchV1Api(api)
        for home in made:
            selector = f"runyard.io/instance={home.instance.instance_id()}"
            for job in batch.list_namespaced_job("default", label_selector=selector).items:
                batch.delete_namespaced_job(job.metadata.name, "default", propagation_policy="Background",
                                            grace_period_seconds=0)
        from runyard.testing import wait_until

        wait_until(lambda: not fake_cluster.containers(), timeout=30, interval=0.2,
                   what="the test's containers to be removed")
    finally:
        api.close()
        for home in made:
            home.close()
