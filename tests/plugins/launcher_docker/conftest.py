"""Fixtures for the Docker launcher and executor tests.

Needs: a Docker engine (``$DOCKER_HOST``; without one, ``scripts/docker-engine`` finds or starts a
private one, installing Debian's docker.io as root), the image ``runyard:dev`` (``scripts/build-images``
builds it from this checkout, cached by a hash of the sources), and PostgreSQL at
$RUNYARD_TEST_PG_URL (as for storage_postgres). Containers use the host network, so they reach
PostgreSQL at 127.0.0.1. If any of that is missing the tests FAIL saying what to install or start;
they never skip.

Every test's containers carry its instance's id label; whatever a test leaves is removed at its end
and reported as a failure of that test (a test must not leave containers behind).
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
from dockertest import launcher_settings, postgres_settings, remove_containers_of
from launchertest import home_settings

from runyard.testing import SuiteHome, stop_processes_with_env
from runyard_storage_postgres.testing import PostgresUnavailable, create_database, drop_database, require_server

ROOT = Path(__file__).resolve().parents[3]
IMAGE = os.environ.get("RUNYARD_TEST_IMAGE", "runyard:dev")


@pytest.fixture(scope="session")
def docker_host():
    """An engine that answers: $DOCKER_HOST, else what scripts/docker-engine finds or starts (a
    private engine started here is stopped when the session ends)."""
    script = str(ROOT / "scripts" / "docker-engine")
    started = False
    if not os.environ.get("DOCKER_HOST"):
        started = subprocess.run([script, "status"], capture_output=True).returncode != 0
        proc = subprocess.run([script, "start"], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"no Docker engine: scripts/docker-engine start failed:\n{proc.stderr}", pytrace=False)
        os.environ["DOCKER_HOST"] = proc.stdout.strip().splitlines()[-1].split("=", 1)[1]
    import docker

    try:
        docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41", timeout=10).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer: {exc}. "
                    "Start one with scripts/docker-engine.", pytrace=False)
    yield os.environ["DOCKER_HOST"]
    if started:
        subprocess.run([script, "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def docker_client(docker_host):
    import docker

    client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def runyard_image(docker_host) -> str:
    """runyard:dev built from this checkout (scripts/build-images; nothing is built when the sources
    did not change). RUNYARD_TEST_IMAGE names another image and skips the build."""
    if "RUNYARD_TEST_IMAGE" in os.environ:
        return IMAGE
    proc = subprocess.run([str(ROOT / "scripts" / "build-images"), "--tag", IMAGE], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "DOCKER_HOST": docker_host})
    if proc.returncode != 0:
        pytest.fail(f"scripts/build-images failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return IMAGE


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        return require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_url(pg_admin_url, tmp_path):
    """A database of the test's own, dropped at its end (after its processes are gone)."""
    url = create_database(pg_admin_url, prefix="runyard_docker")
    yield url
    stop_processes_with_env("RUNYARD_HOME", str(tmp_path / "home"))
    drop_database(url, pg_admin_url)


@pytest.fixture
def docker_home(tmp_path, pg_url, runyard_image, docker_client):
    """A SuiteHome on its own PostgreSQL database with the docker launcher; its containers are
    removed at the end (and a test that left any fails)."""
    home = SuiteHome(tmp_path, {"storage": postgres_settings(pg_url),
                                "run_launcher": launcher_settings(runyard_image, tmp_path)})
    yield home
    left = remove_containers_of(docker_client, home.instance)
    home.close()
    if left:
        warnings.warn(f"removed {len(left)} container(s) the test left: {left}", stacklevel=1)


@pytest.fixture
def make_home(tmp_path, pg_url, runyard_image, docker_client):
    """For the launcher's own tests: ``make_home(storage=..., queued=..., poll=..., **launcher keys)``,
    a SuiteHome with the docker launcher on the test's PostgreSQL database (``storage=None``: SQLite
    in the home) and run monitoring every ``poll`` seconds; its containers are removed at the end."""
    made: list[SuiteHome] = []

    def make(*, storage: Any = "postgres", queued: bool = False, poll: float = 0.3, lease: float | None = None,
             **launcher: Any) -> SuiteHome:
        store = postgres_settings(pg_url) if storage == "postgres" else storage
        image = launcher.pop("image", runyard_image)
        home = SuiteHome(tmp_path, home_settings(store, launcher_settings(image, tmp_path, **launcher),
                                                 queued=queued, poll=poll, lease=lease))
        made.append(home)
        return home

    yield make
    for home in made:
        remove_containers_of(docker_client, home.instance)
        home.close()
