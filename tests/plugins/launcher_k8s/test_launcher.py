"""The k8s launcher on a fake cluster whose pods are real containers: runs launched from the CLI and
from the daemon's queue end SUCCESS in their Jobs, every manifest passes the Kubernetes schema
strictly, the reconciler deletes finished runs' Jobs, terminate leaves no pod, a doubled launch
adopts the Job, secrets reach the pod only through envFrom, and overrides apply only where the
operator allows them.

Needs: the fake cluster, image and PostgreSQL of conftest.py. Daemons and CLI commands are real
``runyard`` subprocesses, run workers real containers started by the fake cluster's node agent.
"""

from __future__ import annotations

import json

import pytest
from k8stest import jobs_of, pods_of, raw_job, sent_manifest, validate, wait_nothing_left
from launchertest import JOBS, DaemonProcess, cli, failure, go_file, outcomes, wait_status

from runyard.launchers.base import LaunchError, LaunchRunContext
from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard_launcher_k8s import manifests


def _run(home, job="quick", tags=None, run_config=None):
    run, _ = home.create_run(home.write_defs(JOBS), job, run_config or {})
    if tags:
        home.instance.storage.update_run(run.run_id, tags={**run.tags, **tags})
    return home.instance.get_run(run.run_id)


def test_cli_launch_succeeds_in_a_valid_job_and_the_daemon_deletes_it(make_home, fake_cluster, kube):
    core, batch = kube
    home = make_home()
    proc = cli(home, "job", "launch", "-j", "quick", "-f", home.write_defs(JOBS))
    assert proc.returncode == 0, proc.stderr
    (run,) = home.instance.storage.get_runs()
    run = wait_status(home, run.run_id, RunStatus.SUCCESS)
    name = manifests.run_job_name(run.run_id)
    assert run.launcher_info["job_name"] == name and run.launcher_info["namespace"] == "default"
    job = raw_job(batch, name)
    validate(sent_manifest(job))
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["ttlSecondsAfterFinished"] == 600 and "activeDeadlineSeconds" not in spec
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "runyard", "execute-run", run.run_id]
    labels = job["metadata"]["labels"]
    assert labels[manifests.RUN_LABEL] == run.run_id and labels[manifests.KIND_LABEL] == "run"
    assert labels[manifests.INSTANCE_LABEL] == home.instance.instance_id()
    # the instance file comes from the ConfigMap the launcher made, valid too
    (ref,) = [e for e in container["env"] if e["name"] == "RUNYARD_INSTANCE_YAML"]
    cm_name = ref["valueFrom"]["configMapKeyRef"]["name"]
    config_map = json.loads(core.read_namespaced_config_map(cm_name, "default", _preload_content=False).data)
    validate(sent_manifest(config_map))
    assert "postgres" in config_map["data"]["runyard.yaml"] and "run_launcher" not in config_map["data"]["runyard.yaml"]
    daemon = DaemonProcess(home)
    try:
        wait_nothing_left(fake_cluster, kube, home)
    finally:
        daemon.stop()
    assert outcomes(home, run.run_id) == ["RUN_SUCCESS"]


def test_queued_runs_are_launched_by_the_daemon_and_their_jobs_deleted(make_home, fake_cluster, kube):
    home = make_home(queued=True)
    defs = home.write_defs(JOBS)
    ids = []
    for _ in range(3):
        proc = cli(home, "job", "launch", "-j", "quick", "-f", defs)
        assert proc.returncode == 0, proc.stderr
    ids = [r.run_id for r in home.instance.storage.get_runs()]
    assert {home.instance.get_run(i).status for i in ids} == {RunStatus.QUEUED}
    daemon = DaemonProcess(home)
    try:
        for run_id in ids:
            wait_status(home, run_id, RunStatus.SUCCESS)
        wait_nothing_left(fake_cluster, kube, home)
    finally:
        daemon.stop()
    for run_id in ids:
        assert outcomes(home, run_id) == ["RUN_SUCCESS"]


def test_terminate_mid_run_ends_canceled_and_leaves_no_pod(make_home, fake_cluster, kube):
    home = make_home()
    run = _run(home, "waiting", run_config={"ops": {"wait": {"config": {"go_file": str(go_file(home))}}}})
    home.instance.submit_run(run)
    wait_until(lambda: home.out_lines("waiting"), timeout=60, what="the op to start in its pod")
    proc = cli(home, "run", "terminate", run.run_id)
    assert proc.returncode == 0, proc.stderr
    wait_status(home, run.run_id, RunStatus.CANCELED, timeout=30)
    wait_nothing_left(fake_cluster, kube, home)
    assert outcomes(home, run.run_id) == ["RUN_CANCELED"]


def test_a_doubled_launch_adopts_the_job_and_runs_once(make_home, fake_cluster, kube):
    _, batch = kube
    home = make_home()
    run = _run(home)
    home.instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING, "starting")
    launcher = home.instance.run_launcher
    for _ in range(2):
        launcher.launch_run(LaunchRunContext(instance=home.instance, run=home.instance.get_run(run.run_id)))
    assert home.instance.get_run(run.run_id).launcher_info["adopted"] is True
    assert len(jobs_of(batch, home)) == 1
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    assert outcomes(home, run.run_id) == ["RUN_SUCCESS"]
    proc = cli(home, "k8s", "reconcile")
    assert proc.returncode == 0, proc.stderr
    wait_nothing_left(fake_cluster, kube, home)


def test_secrets_reach_the_pod_only_through_env_from(make_home, pg_url, kube, monkeypatch):
    core, batch = kube
    core.create_namespaced_secret("default", {"metadata": {"name": "runyard-pg"},
                                              "stringData": {"RUNYARD_TEST_PG_URL": pg_url}})
    monkeypatch.setenv("RUNYARD_TEST_PG_URL", pg_url)  # this process's storage; the pod gets it from the Secret
    home = make_home(storage={"postgres": {"url": {"env": "RUNYARD_TEST_PG_URL"}}}, env_from_secrets=["runyard-pg"])
    run = _run(home)
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    job = raw_job(batch, manifests.run_job_name(run.run_id))
    text = json.dumps(job)
    assert pg_url not in text
    assert job["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "runyard-pg"}}]
    for config_map in core.list_namespaced_config_map("default").items:
        assert pg_url not in json.dumps(config_map.data)
    assert pg_url not in json.dumps(home.instance.get_run(run.run_id).launcher_info)


def test_a_literal_password_in_the_worker_sections_is_refused(make_home, pg_url):
    # the server trusts local connections, so the password is ignored there: only the launcher objects
    url = pg_url.replace("://postgres@", "://postgres:hunter2@")
    assert "hunter2" in url
    home = make_home(storage={"postgres": {"url": url}})
    run = home.instance.create_run(job_name="quick", run_config={})
    home.instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING, "starting")
    with pytest.raises(LaunchError) as info:
        home.instance.run_launcher.launch_run(LaunchRunContext(instance=home.instance,
                                                               run=home.instance.get_run(run.run_id)))
    assert info.value.reason == "secret_in_config" and "hunter2" not in str(info.value)
    assert "env_from_secrets" in str(info.value)


def test_sqlite_without_the_home_mounted_is_refused(make_home):
    home = make_home(storage=None, volumes=[], volume_mounts=[])
    run = _run(home)
    with pytest.raises(LaunchError) as info:
        home.instance.submit_run(run)
    assert info.value.reason == "storage_unreachable" and "PostgreSQL" in str(info.value)
    assert failure(home, run.run_id).data["reason"] == "storage_unreachable"


def test_a_location_override_applies_and_a_run_override_the_operator_did_not_allow_fails(make_home, kube):
    _, batch = kube
    home = make_home(run_overrides=["labels"])
    context = json.dumps({"k8s": {"labels": {"team": "etl"}, "resources": {"limits": {"memory": "300Mi"}}}})
    run = _run(home, tags={"runyard/container_context": context, "k8s/labels": '{"cost": "low"}'})
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    job = raw_job(batch, manifests.run_job_name(run.run_id))
    assert job["metadata"]["labels"]["team"] == "etl" and job["metadata"]["labels"]["cost"] == "low"
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "300Mi"
    bad = _run(home, tags={"k8s/node_selector": '{"disk": "ssd"}'})
    with pytest.raises(LaunchError):
        home.instance.submit_run(bad)
    event = failure(home, bad.run_id)
    assert event.data["reason"] == "override_not_allowed"
    assert "node_selector" in event.message and "allowed: labels" in event.message
    assert len(jobs_of(batch, home)) == 1


def test_max_runtime_becomes_an_active_deadline_that_leaves_room_for_scheduling(make_home, kube):
    _, batch = kube
    home = make_home(start_timeout=30)
    run = _run(home, tags={"runyard/max_runtime": "100"})
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    job = raw_job(batch, manifests.run_job_name(run.run_id))
    assert job["spec"]["activeDeadlineSeconds"] == 100 + 30 + 3 + 1


def test_a_launch_is_one_create_and_the_config_map_is_made_once_per_process(make_home, monkeypatch):
    from runyard_launcher_k8s import jobs

    calls = {"config_map": 0, "job": 0}
    for name, key in (("ensure_config_map", "config_map"), ("create_job", "job")):
        real = getattr(jobs, name)

        def counted(*args, _real=real, _key=key, **kwargs):
            calls[_key] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(jobs, name, counted)
    home = make_home()
    launcher = home.instance.run_launcher
    runs = []
    for _ in range(3):
        run = _run(home)
        home.instance.transition(run, [RunStatus.NOT_STARTED], RunStatus.STARTING, "starting")
        launcher.launch_run(LaunchRunContext(instance=home.instance, run=home.instance.get_run(run.run_id)))
        runs.append(run)
    assert calls == {"config_map": 1, "job": 3}
    for run in runs:
        wait_status(home, run.run_id, RunStatus.SUCCESS)


def test_pods_of_finished_runs_are_gone_after_reconcile(make_home, fake_cluster, kube):
    core, _ = kube
    home = make_home()
    run = _run(home)
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    wait_until(lambda: pods_of(core, home), timeout=10, what="the run's pod")
    proc = cli(home, "k8s", "reconcile")
    assert proc.returncode == 0, proc.stderr
    wait_nothing_left(fake_cluster, kube, home)
