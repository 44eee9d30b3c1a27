"""The k8s launcher from the web UI and the ``runyard k8s`` commands: a real ``runyard webui`` over
a workspace whose locations name their image and ``container_context``; a run launched through
GraphQL succeeds in its Job with the location's settings applied, one whose image cannot be pulled
is FAILURE with ``image_pull_error`` in GraphQL and on the run page; ``runyard k8s jobs`` lists the
instance's Jobs and ``runyard k8s reconcile`` deletes a finished run's.

Needs: the fake cluster, image and PostgreSQL of conftest.py, and the web UI distribution. The web
UI, its code servers and the CLI are real subprocesses.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from k8stest import raw_job, wait_nothing_left
from launchertest import JOBS, DaemonProcess, cli, runyard_env, wait_status

from runyard.storage.records import RunStatus
from runyard.testing import SuiteHome, wait_until
from runyard_launcher_k8s import manifests

MISSING_IMAGE = "registry.invalid/runyard:none"


def _webui_harness():
    path = Path(__file__).resolve().parents[2] / "webui" / "conftest.py"
    spec = importlib.util.spec_from_file_location("runyard_webui_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WebUI


WebUI = _webui_harness()

LAUNCH = """mutation($loc: String!) { launchRun(location: $loc, jobName: "quick") {
    ok message run { runId status } errors { message } } }"""
RUN = """query($id: ID!) { run(runId: $id) { status location failure { reason message } } }"""


def _job_or_none(batch, name: str) -> dict | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return raw_job(batch, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_runs_launched_from_the_webui_run_in_jobs_with_their_locations_settings(make_home, runyard_image, kube):
    _, batch = kube
    home = make_home()
    defs = home.write_defs(JOBS)
    workspace = home.root / "workspace.yaml"
    context = json.dumps({"k8s": {"labels": {"team": "etl"}}})
    workspace.write_text(f"load_from:\n"
                         f"  - python_file: {defs}\n    location_name: good\n    image: '{runyard_image}'\n"
                         f"    container_context: {context}\n"
                         f"  - python_file: {defs}\n    location_name: bad\n    image: '{MISSING_IMAGE}'\n")
    daemon = DaemonProcess(home)  # its watch finds the bad image's pod
    ui = WebUI(home.home, home.root, ("-w", str(workspace), "--port", "0"), runyard_env(home))
    try:
        good = ui.gql(LAUNCH, {"loc": "good"})["launchRun"]
        assert good["ok"], good
        run_id = good["run"]["runId"]
        # read the Job while it exists: once the run finished, the daemon deletes it
        job = wait_until(lambda: _job_or_none(batch, manifests.run_job_name(run_id)), timeout=60,
                         what="the run's Job")
        assert job["metadata"]["labels"]["team"] == "etl"
        assert ui.wait_finished(run_id, timeout=90)[0] == "SUCCESS"
        stored = wait_status(home, run_id, RunStatus.SUCCESS)
        assert stored.launcher_info["image"] == runyard_image

        bad = ui.gql(LAUNCH, {"loc": "bad"})["launchRun"]
        assert bad["ok"], bad  # the Job is created; its pod cannot pull the image
        bad_id = bad["run"]["runId"]
        assert ui.wait_finished(bad_id, timeout=30)[0] == "FAILURE"
        run = ui.gql(RUN, {"id": bad_id})["run"]
        assert run["failure"]["reason"] == "image_pull_error" and MISSING_IMAGE in run["failure"]["message"]
        status, page = ui.get(f"/runs/{bad_id}")
        assert status == 200 and "image_pull_error" in page
    finally:
        code = ui.stop()
        daemon.stop()
    assert code == 0, f"runyard webui exited {code} on SIGTERM"


def test_jobs_lists_them_and_reconcile_deletes_a_finished_runs_job(make_home, fake_cluster, kube):
    home = make_home()
    run, _ = home.create_run(home.write_defs(JOBS), "quick", {})
    home.instance.submit_run(run)
    wait_status(home, run.run_id, RunStatus.SUCCESS)
    proc = cli(home, "k8s", "jobs", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row == {"name": manifests.run_job_name(run.run_id), "namespace": "default", "run_id": run.run_id,
                   "kind": "run", "step_key": None, "status": "succeeded"}
    assert manifests.run_job_name(run.run_id) in cli(home, "k8s", "jobs").stdout
    proc = cli(home, "k8s", "reconcile")
    assert proc.returncode == 0, proc.stderr
    assert f"deleted Job default/{manifests.run_job_name(run.run_id)} of run {run.run_id} (SUCCESS)" in proc.stdout
    wait_nothing_left(fake_cluster, kube, home)
    assert "No Jobs." in cli(home, "k8s", "jobs").stdout


def test_both_refuse_an_instance_whose_launcher_is_not_k8s(tmp_path):
    home = SuiteHome(tmp_path, {"run_launcher": {"process": {}}})
    try:
        for command in ("reconcile", "jobs"):
            proc = cli(home, "k8s", command)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert (f"runyard k8s {command} needs the k8s run launcher, but the instance's run launcher "
                    f"is 'process' (run_launcher in {home.instance_file})") in proc.stderr
    finally:
        home.close()
