"""The k8s launcher against runyard.testing's launcher conformance suite, on PostgreSQL and the fake
cluster: each run's worker in the pod of its own Job (a container on the Docker engine), identified by
the Job's name in ``launcher_info``."""

from __future__ import annotations

import pytest
from fakecluster import POD_LABEL
from k8stest import launcher_settings

from runyard.launchers.procinfo import read_stat
from runyard.testing.launcher import LauncherConformanceSuite


class TestK8sLauncher(LauncherConformanceSuite):
    @pytest.fixture
    def launcher_config(self, fake_cluster, runyard_image, tmp_path):
        return launcher_settings(fake_cluster, runyard_image, tmp_path)

    @pytest.fixture
    def launcher_instance_settings(self, pg_url):
        return {"storage": {"postgres": {"url": pg_url}}}

    @pytest.fixture(autouse=True)
    def _nothing_left(self, launcher_home, fake_cluster, kube):
        yield
        _, batch = kube
        selector = f"runyard.io/instance={launcher_home.instance.instance_id()}"
        for job in batch.list_namespaced_job("default", label_selector=selector).items:
            batch.delete_namespaced_job(job.metadata.name, "default", propagation_policy="Background",
                                        grace_period_seconds=0)

    @staticmethod
    def _containers(fake_cluster, kube, run):
        core, _ = kube
        pods = core.list_namespaced_pod("default", label_selector=f"job-name={run.launcher_info['job_name']}").items
        names = {p.metadata.name for p in pods}
        return [c for c in fake_cluster.containers() if c.labels.get(POD_LABEL) in names]

    @pytest.fixture
    def kill_worker(self, fake_cluster, kube):
        def kill(run) -> None:
            for container in self._containers(fake_cluster, kube, run):
                container.kill()

        return kill

    @pytest.fixture
    def worker_alive(self, fake_cluster, kube):
        """Alive as the cluster sees it: a container still runs, or the API does not yet say the pod's
        container ended (what the launcher reads)."""
        core, _ = kube

        def alive(run) -> bool:
            if any(c.status in ("running", "created", "restarting") for c in self._containers(fake_cluster, kube, run)):
                return True
            pods = core.list_namespaced_pod("default",
                                            label_selector=f"job-name={run.launcher_info['job_name']}").items
            return any(p.status.phase in ("Pending", "Running") and not p.metadata.deletion_timestamp
                       and not any(cs.state.terminated for cs in (p.status.container_statuses or []))
                       for p in pods)

        return alive

    @pytest.fixture
    def worker_session(self, fake_cluster, kube):
        """The pod container's main process as the host sees it: it leads its own session and group."""

        def session(run):
            (container,) = self._containers(fake_cluster, kube, run)
            container.reload()
            pid = container.attrs["State"]["Pid"]
            stat = read_stat(pid)
            assert stat is not None and stat.alive, f"container process {pid} is not running"
            return pid, stat.pgrp, stat.session

        return session
