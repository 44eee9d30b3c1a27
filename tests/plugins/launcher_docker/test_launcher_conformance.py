"""The docker launcher against runyard.testing's launcher conformance suite, on PostgreSQL: each
run's worker in its own container, identified by its container id in ``launcher_info``."""

from __future__ import annotations

import pytest
from dockertest import launcher_settings, postgres_settings, remove_containers_of

from runyard.launchers.procinfo import read_stat
from runyard.testing.launcher import LauncherConformanceSuite


class TestDockerLauncher(LauncherConformanceSuite):
    @pytest.fixture
    def launcher_config(self, runyard_image, tmp_path):
        return launcher_settings(runyard_image, tmp_path)

    @pytest.fixture
    def launcher_instance_settings(self, pg_url):
        return {"storage": postgres_settings(pg_url)}

    @pytest.fixture(autouse=True)
    def _no_container_left(self, launcher_home, docker_client):
        yield
        remove_containers_of(docker_client, launcher_home.instance)

    def _container(self, client, run):
        return client.containers.get(run.launcher_info["container_id"])

    @pytest.fixture
    def kill_worker(self, docker_client):
        return lambda run: self._container(docker_client, run).kill()

    @pytest.fixture
    def worker_alive(self, docker_client):
        import docker

        def alive(run) -> bool:
            try:
                return self._container(docker_client, run).status in ("running", "created", "restarting")
            except docker.errors.NotFound:
                return False

        return alive

    @pytest.fixture
    def worker_session(self, docker_client):
        """The container's main process as the host sees it: it leads its own session and group
        (runc makes each container's first process a session leader)."""

        def session(run):
            pid = self._container(docker_client, run).attrs["State"]["Pid"]
            stat = read_stat(pid)
            assert stat is not None and stat.alive, f"container process {pid} is not running"
            return pid, stat.pgrp, stat.session

        return session
