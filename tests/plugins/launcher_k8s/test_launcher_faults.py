"""Typed failures of the k8s launcher, found by the leading daemon's watch: an image that cannot be
pulled, a container past its memory limit, a pod no node can take (the scheduler's message, then the
start timeout), an evicted pod, a Job past its deadline, a Job deleted under its run; the last lines
of a failed pod's log kept; an unreachable API named; and a daemon SIGKILLed mid-launch leaving no Job
doubled or orphaned.

Needs: the fake cluster, image and PostgreSQL of conftest.py. Daemons and CLI commands are real
``runyard`` subprocesses, run workers real containers started by the fake cluster's node agent.
"""

from __future__ import annotations

import time

import pytest
from k8stest import jobs_of, pod_outputs, pods_of, wait_nothing_left
from launchertest import JOBS, DaemonProcess, cli, failure, go_file, outcomes, wait_status

from runyard.launchers.base import LaunchError
from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard_launcher_k8s import manifests

#: the issue's goal: a failed pod's run is FAILURE with its reason this soon (the watch, not a pass)
TYPED_FAILURE_SECONDS = 10.0


def _run(home, job="quick", run_config=None, tags=None):
    run, _ = home.create_run(home.write_defs(JOBS), job, run_config or {})
    if tags:
        home.instance.storage.update_run(run.run_id, tags={**run.tags, **tags})
    return home.instance.get_run(run.run_id)


def _waiting(home):
    return _run(home, "waiting", {"ops": {"wait": {"config": {"go_file": str(go_file(home))}}}})


def _daemon_watching(home):
    """A daemon whose monitoring passes are 30 s apart, so what is found within seconds was found by
    the watch its first pass (at start) started. Returns once that pass ran (its heartbeat)."""
    daemon = DaemonProcess(home)

    def monitored() -> bool:
        return any(b.get("loop") == "monitoring" for b in home.instance.storage.get_heartbeats())

    wait_until(monitored, timeout=15, interval=0.1, what="the daemon's first monitoring pass")
    return daemon


def _failure_within(home, run_id, started: float) -> tuple[object, float]:
    run = wait_status(home, run_id, RunStatus.FAILURE, timeout=TYPED_FAILURE_SECONDS + 20)
    took = run.end_time - started
    return failure(home, run_id), took


def test_an_image_that_cannot_be_pulled_fails_the_run_within_seconds(make_home, fake_cluster, kube):
    home = make_home(poll=30, image="registry.invalid/runyard-missing:1")
    daemon = _daemon_watching(home)
    try:
        run = _run(home)
        started = time.time()
        home.instance.submit_run(run)
        event, took = _failure_within(home, run.run_id, started)
        assert event.data["reason"] == "image_pull_error", home.describe(run.run_id)
        assert event.data["k8s_reason"] in ("ErrImagePull", "ImagePullBackOff")
        assert "registry.invalid/runyard-missing:1" in event.message
        assert took < TYPED_FAILURE_SECONDS, f"FAILURE {took:.1f}s after the launch"
        shown = cli(home, "run", "show", run.run_id)
        assert "image_pull_error" in shown.stdout, shown.stdout
    finally:
        daemon.stop()


def test_a_pod_past_its_memory_limit_fails_as_oom_killed_with_its_log(make_home, fake_cluster, kube):
    home = make_home(poll=30, resources={"limits": {"memory": "160Mi"}})
    daemon = _daemon_watching(home)
    try:
        run = _run(home, "hungry")
        started = time.time()
        home.instance.submit_run(run)
        event, took = _failure_within(home, run.run_id, started)
        assert event.data["reason"] == "oom_killed", home.describe(run.run_id)
        assert event.data["k8s_reason"] == "OOMKilled" and "160Mi" in event.message
        (tail,) = pod_outputs(home, run.run_id)
        assert tail.level == "ERROR" and "OOMKilled" in tail.message
        assert home.out_lines("hogging")  # the op ran, in its pod
        proc = cli(home, "k8s", "reconcile")  # what the daemon's next pass does, 30 s later
        assert proc.returncode == 0, proc.stderr
        wait_nothing_left(fake_cluster, kube, home)
    finally:
        daemon.stop()


def test_an_unschedulable_pod_says_why_then_fails_at_the_start_timeout(make_home, fake_cluster, kube):
    home = make_home(poll=0.5, start_timeout=6, node_selector={"disktype": "ssd"})
    daemon = DaemonProcess(home)
    try:
        run = _run(home)
        home.instance.submit_run(run)

        def told():
            return [e for e in home.events(run.run_id, "ENGINE_EVENT") if e.data.get("reason") == "unschedulable"]

        (warning,) = wait_until(told, timeout=10, what="the scheduler's message on the run")
        assert "didn't match Pod's node affinity/selector" in warning.message
        assert home.instance.get_run(run.run_id).status == RunStatus.STARTING
        run = wait_status(home, run.run_id, RunStatus.FAILURE, timeout=20)
        event = failure(home, run.run_id)
        assert event.data["reason"] == "unschedulable", home.describe(run.run_id)
        assert "start_timeout_seconds" in event.message and "node affinity/selector" in event.message
        wait_nothing_left(fake_cluster, kube, home)
    finally:
        daemon.stop()


def test_an_evicted_pod_fails_its_run_as_evicted(make_home, fake_cluster, kube):
    core, _ = kube
    home = make_home(poll=30)
    daemon = _daemon_watching(home)
    try:
        run = _waiting(home)
        home.instance.submit_run(run)
        wait_until(lambda: home.out_lines("waiting"), timeout=60, what="the op to start in its pod")
        (pod,) = pods_of(core, home)
        started = time.time()
        core.create_namespaced_pod_eviction(pod.metadata.name, "default", {
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod.metadata.name}})
        event, took = _failure_within(home, run.run_id, started)
        assert event.data["reason"] == "evicted" and "low on resource" in event.message
        assert took < TYPED_FAILURE_SECONDS
    finally:
        daemon.stop()


def test_a_job_deleted_under_its_run_fails_it_at_once(make_home, fake_cluster, kube):
    _, batch = kube
    home = make_home(poll=30)
    daemon = _daemon_watching(home)
    try:
        run = _waiting(home)
        home.instance.submit_run(run)
        wait_until(lambda: home.out_lines("waiting"), timeout=60, what="the op to start in its pod")
        started = time.time()
        batch.delete_namespaced_job(manifests.run_job_name(run.run_id), "default", propagation_policy="Background",
                                    grace_period_seconds=0)
        event, took = _failure_within(home, run.run_id, started)
        assert event.data["reason"] == "job_deleted", home.describe(run.run_id)
        assert took < TYPED_FAILURE_SECONDS
        wait_nothing_left(fake_cluster, kube, home)
    finally:
        daemon.stop()


def test_a_job_past_its_deadline_fails_as_deadline_exceeded(make_home, fake_cluster, kube):
    # max runtime 1 s + start timeout 1 s + grace 1 s: the Job's deadline is 4 s. The daemon's passes
    # are 30 s apart, so its max-runtime check comes too late: Kubernetes' deadline ends the run, and
    # the watch says why.
    home = make_home(poll=30, start_timeout=1, grace_period_seconds=1)
    daemon = _daemon_watching(home)
    try:
        run = _waiting(home)
        home.instance.storage.update_run(run.run_id, tags={**run.tags, "runyard/max_runtime": "1"})
        home.instance.submit_run(home.instance.get_run(run.run_id))
        run = wait_status(home, run.run_id, RunStatus.FAILURE, timeout=20)
        event = failure(home, run.run_id)
        assert event.data["reason"] == "deadline_exceeded", home.describe(run.run_id)
        assert "activeDeadlineSeconds (4s)" in event.message
    finally:
        daemon.stop()


def test_an_unreachable_api_fails_the_launch_naming_it(make_home, tmp_path):
    config = tmp_path / "unreachable-kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: x, cluster: {server: "
                      "'http://127.0.0.1:9'}}]\nusers: [{name: x, user: {}}]\ncontexts: [{name: x, context: "
                      "{cluster: x, user: x}}]\n")
    home = make_home(kubeconfig=str(config), api_timeout_seconds=3)
    run = _run(home)
    with pytest.raises(LaunchError) as info:
        home.instance.submit_run(run)
    assert info.value.reason == "api_unreachable" and str(config) in str(info.value)
    assert failure(home, run.run_id).data["reason"] == "api_unreachable"


def test_a_missing_kubeconfig_fails_naming_it(make_home, tmp_path):
    home = make_home(kubeconfig=str(tmp_path / "nope"))
    run = _run(home)
    with pytest.raises(LaunchError) as info:
        home.instance.submit_run(run)
    assert info.value.reason == "kubeconfig_error" and str(tmp_path / "nope") in str(info.value)


def test_a_daemon_sigkilled_mid_launch_leaves_no_job_doubled_or_orphaned(make_home, fake_cluster, kube):
    """Queued runs, a daemon killed hard while it launches them, a second daemon: every run ends
    SUCCESS exactly once from one Job, and then no Job, pod or container is left."""
    _, batch = kube
    home = make_home(queued=True, lease=2, relaunch_after_seconds=2)
    defs = home.write_defs(JOBS)
    for _ in range(6):
        run, _ = home.create_run(defs, "quick", {})
        home.instance.submit_run(run)
    ids = [r.run_id for r in home.instance.storage.get_runs()]
    first = DaemonProcess(home)
    wait_until(lambda: jobs_of(batch, home), timeout=30, interval=0.02, what="the first Job")
    first.kill()
    created = {j.metadata.name for j in jobs_of(batch, home)}
    second = DaemonProcess(home)
    try:
        for run_id in ids:
            wait_status(home, run_id, RunStatus.SUCCESS, timeout=90)
        wait_nothing_left(fake_cluster, kube, home, timeout=60)
    finally:
        second.stop()
    for run_id in ids:
        assert outcomes(home, run_id) == ["RUN_SUCCESS"], home.describe(run_id)
        assert home.types(run_id).count("RUN_START") == 1, home.describe(run_id)
    assert created <= {manifests.run_job_name(i) for i in ids}


def test_a_missing_secret_fails_the_run_as_create_container_error(make_home, fake_cluster, kube):
    home = make_home(poll=30, env_from_secrets=["no-such-secret"])
    daemon = _daemon_watching(home)
    try:
        run = _run(home)
        started = time.time()
        home.instance.submit_run(run)
        event, took = _failure_within(home, run.run_id, started)
        assert event.data["reason"] == "create_container_error", home.describe(run.run_id)
        assert event.data["k8s_reason"] == "CreateContainerConfigError"
        assert 'secret "no-such-secret" not found' in event.message
        assert took < TYPED_FAILURE_SECONDS
    finally:
        daemon.stop()


def test_a_pod_deleted_under_its_run_fails_it_as_pod_deleted(make_home, fake_cluster, kube):
    core, _ = kube
    home = make_home(poll=30)
    daemon = _daemon_watching(home)
    try:
        run = _waiting(home)
        home.instance.submit_run(run)
        wait_until(lambda: home.out_lines("waiting"), timeout=60, what="the op to start in its pod")
        (pod,) = pods_of(core, home)
        started = time.time()
        core.delete_namespaced_pod(pod.metadata.name, "default")
        event, took = _failure_within(home, run.run_id, started)
        assert event.data["reason"] == "pod_deleted", home.describe(run.run_id)
        assert took < TYPED_FAILURE_SECONDS
        (tail,) = pod_outputs(home, run.run_id)  # read while the pod was stopping
        assert tail.data["pod"] == pod.metadata.name
    finally:
        daemon.stop()
