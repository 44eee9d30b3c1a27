"""The ``k8s`` executor's parts that need no cluster: the step Job's manifest (with an op's ``k8s/*``
tags, validated against the Kubernetes 1.30 schema), op tag errors, the outcome line, its config, and
the step program itself run as a local process on a SQLite instance.

Needs: nothing but this checkout (the end-to-end tests in test_executor.py need the fake cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import kubernetes_validate
import pytest
from pydantic import ValidationError

from runyard.execution.step_process import OUTCOME_MARKER, outcome_line, parse_outcome
from runyard.launchers.base import LaunchError
from runyard.storage.records import RunStatus, StepStatus
from runyard.tags import IMAGE_TAG
from runyard.testing import SuiteHome
from runyard_launcher_k8s import manifests
from runyard_launcher_k8s.executor import (
    K8sExecutorConfig,
    _Run,
    _StepJob,
    job_of,
    merged_resources,
    op_pod_settings,
)

TAGGED = """
@op(tags={"k8s/resources": '{"limits": {"memory": "256Mi"}, "requests": {"cpu": "250m"}}',
          "k8s/node_selector": '{"disktype": "ssd"}',
          "k8s/tolerations": '[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]'})
def tagged() -> None:
    record("tagged", "ran")


@job
def shaped():
    tagged()
"""


@pytest.fixture
def home(tmp_path):
    suite = SuiteHome(tmp_path)
    yield suite
    suite.close()


def prepared_run(home: SuiteHome, config: K8sExecutorConfig, source: str, job_name: str) -> _Run:
    """A ``_Run`` as it is once set up in a cluster, without one."""
    path = home.write_defs(source)
    run, job = home.create_run(path, job_name, {})
    home.instance.storage.update_run(run.run_id, tags={IMAGE_TAG: "my-etl:1"})
    run = home.instance.get_run(run.run_id)
    scheduled = _Run(config, SimpleNamespace(run=run, instance=home.instance, job=job))
    scheduled.namespace = "etl"
    scheduled.instance_id = home.instance.instance_id()
    scheduled.env = manifests.environment(home.instance, config, config_map_name="runyard-instance-x",
                                          namespace="etl")
    return scheduled


def test_a_step_job_with_op_tags_is_a_valid_job(home):
    config = K8sExecutorConfig(resources={"requests": {"memory": "64Mi", "cpu": "100m"}},
                               node_selector={"pool": "etl"}, tolerations=[{"key": "spot", "operator": "Exists"}],
                               volumes=[{"name": "home", "hostPath": {"path": str(home.root)}}],
                               volume_mounts=[{"name": "home", "mountPath": str(home.root)}])
    scheduled = prepared_run(home, config, TAGGED, "shaped")
    job = scheduled.context.job
    shape = op_pod_settings("tagged", job.nodes["tagged"].op.tags)
    proc = _StepJob("tagged", 1, manifests.step_job_name(scheduled.run_id, "tagged", 1))
    manifest = scheduled.step_manifest(proc, shape)

    kubernetes_validate.validate(manifest, "1.30", strict=True)
    assert manifest["metadata"]["name"] == proc.name and manifest["metadata"]["namespace"] == "etl"
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "my-etl:1", "the run's image tag wins over the config"
    assert container["command"] == ["python", "-m", "runyard_launcher_k8s.step", scheduled.run_id, "tagged", "1"]
    assert container["resources"] == {"requests": {"memory": "64Mi", "cpu": "250m"}, "limits": {"memory": "256Mi"}}
    assert pod["nodeSelector"] == {"pool": "etl", "disktype": "ssd"}
    assert pod["tolerations"] == [{"key": "spot", "operator": "Exists"},
                                  {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert labels[manifests.KIND_LABEL] == "step" and labels[manifests.STEP_LABEL] == "tagged"
    assert labels[manifests.ATTEMPT_LABEL] == "1"
    assert labels[manifests.INSTANCE_LABEL] == home.instance.instance_id()
    selector = dict(pair.split("=") for pair in manifests.selector(scheduled._run_labels()).split(","))
    assert selector.items() <= labels.items(), "the executor's pod watch selects its step pods"
    env = {e["name"]: e for e in container["env"]}
    assert env["RUNYARD_K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["RUNYARD_INSTANCE_YAML"]["valueFrom"]["configMapKeyRef"]["name"] == "runyard-instance-x"


PLAIN = """
@op
def plain() -> None:
    pass


@job
def bare():
    plain()
"""


def test_a_step_without_op_tags_gets_the_config_as_it_is(home):
    config = K8sExecutorConfig(image="base:1", resources={"limits": {"memory": "1Gi"}})
    scheduled = prepared_run(home, config, PLAIN, "bare")
    manifest = scheduled.step_manifest(_StepJob("plain", 0, "runyard-step-x"), op_pod_settings("plain", {}))
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}}
    assert "nodeSelector" not in pod and "tolerations" not in pod


@pytest.mark.parametrize("tag, value, says", [
    ("k8s/resources", '{"limits": {"memory": "1Gi"}', "not valid JSON"),
    ("k8s/resources", '{"limit": {"memory": "1Gi"}}', "Extra inputs are not permitted"),
    ("k8s/node_selector", '["ssd"]', "valid dictionary"),
    ("k8s/node_selector", '{"disk type": "ssd"}', "not a valid Kubernetes label key"),
    ("k8s/tolerations", '{"key": "gpu"}', "valid list"),
    ("k8s/tolerations", '[{}]', "toleration 0 is empty"),
])
def test_an_invalid_op_tag_is_a_clear_step_failure(tag, value, says):
    with pytest.raises(LaunchError) as caught:
        op_pod_settings("train", {tag: value, "owner": "data"})
    assert caught.value.reason == "invalid_op_tag" and caught.value.details == {"tag": tag}
    assert f"op tag {tag}=" in str(caught.value) and "step 'train'" in str(caught.value)
    assert says in str(caught.value)


def test_op_resources_merge_into_the_config_per_requests_and_limits():
    config = K8sExecutorConfig(resources={"requests": {"cpu": "1"}, "limits": {"memory": "2Gi", "cpu": "2"}})
    merged = merged_resources(config, {"requests": {}, "limits": {"memory": "8Gi"}})
    assert merged == {"requests": {"cpu": "1"}, "limits": {"memory": "8Gi", "cpu": "2"}}
    assert merged_resources(config, None) is None, "no op tag: job_manifest uses the config's"


def test_config_defaults_and_errors():
    config = K8sExecutorConfig()
    assert (config.max_concurrent, config.step_start_timeout_seconds, config.grace_period_seconds) == (8, 300.0, 10)
    with pytest.raises(ValidationError, match="max_concurrent"):
        K8sExecutorConfig(max_concurrent=0)
    with pytest.raises(ValidationError, match="extra"):
        K8sExecutorConfig(max_concurent=2)
    limits = K8sExecutorConfig(tag_concurrency_limits=[{"key": "pool", "value": "db", "limit": 1}])
    assert limits.tag_concurrency_limits[0].limit == 1


def test_the_outcome_line_round_trips_and_a_missing_one_is_none():
    line = outcome_line({"status": "RETRY", "attempt": 1, "retry_delay": 0.5, "max_retries": 3,
                         "error": "flaky", "duration": 0.2, "data": {"k": 1}})
    assert line.startswith(OUTCOME_MARKER) and line.endswith("\n")
    log = "some output\n" + line + "a stderr line written at exit\n"
    outcome = parse_outcome(log, "flaky", 0)
    assert (outcome.step_key, outcome.status, outcome.attempt, outcome.retry_delay, outcome.max_retries,
            outcome.error, outcome.data) == ("flaky", StepStatus.RETRY, 1, 0.5, 3, "flaky", {"k": 1})
    assert parse_outcome("Traceback ...\nMemoryError\n", "s", 0) is None
    assert parse_outcome(OUTCOME_MARKER + '{"status": "MAYBE"}\n', "s", 0) is None
    assert parse_outcome("", "s", 0) is None


def test_job_of_a_pod_is_its_owner_or_its_job_name_label():
    assert job_of({"metadata": {"ownerReferences": [{"kind": "Job", "name": "runyard-step-a"}]}}) == "runyard-step-a"
    assert job_of({"metadata": {"labels": {"batch.kubernetes.io/job-name": "runyard-step-b"}}}) == "runyard-step-b"
    assert job_of({"metadata": {"labels": {"job-name": "runyard-step-c"}}}) == "runyard-step-c"
    assert job_of({"metadata": {}}) is None


ONE = """
@op
def one(context) -> int:
    record("one", context.retry_number)
    return 1


@job
def single():
    one()
"""


def test_the_step_program_runs_one_attempt_and_names_its_pod(home):
    """``python -m runyard_launcher_k8s.step`` as a pod runs it, here as a local process."""
    path = home.write_defs(ONE)
    run, _ = home.create_run(path, "single", {})
    env = {**home.worker_env(), "RUNYARD_K8S_POD_NAME": "runyard-step-abc-x1y2z", "RUNYARD_K8S_NAMESPACE": "etl"}
    proc = subprocess.run([sys.executable, "-m", "runyard_launcher_k8s.step", run.run_id, "one", "0"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(OUTCOME_MARKER), proc.stdout
    assert json.loads(last[len(OUTCOME_MARKER):])["status"] == "SUCCESS"
    assert parse_outcome(proc.stdout, "one", 0).status == StepStatus.SUCCESS
    assert home.out_lines("one") == ["0"]
    start = home.events(run.run_id, "STEP_START", "one")
    assert len(start) == 1 and start[0].data["pod"] == "runyard-step-abc-x1y2z"
    assert start[0].data["namespace"] == "etl" and start[0].data["pid"] is None and start[0].data["pod_pid"]
    assert home.types(run.run_id, "one")[-1] == "STEP_SUCCESS"
    assert home.instance.get_run(run.run_id).status == RunStatus.NOT_STARTED, "it runs a step, not the run"


def test_the_step_program_reports_a_job_it_cannot_load_as_the_steps_failure(home):
    path = home.write_defs(ONE)
    run, _ = home.create_run(path, "single", {})
    os.remove(path)
    proc = subprocess.run([sys.executable, "-m", "runyard_launcher_k8s.step", run.run_id, "one", "0"],
                          env=home.worker_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outcome = parse_outcome(proc.stdout, "one", 0)
    assert outcome.status == StepStatus.FAILURE and "the step pod could not load the run's job" in outcome.error
    failure = home.events(run.run_id, "STEP_FAILURE", "one")
    assert len(failure) == 1 and failure[0].data["reason"] == "load_error"


def test_the_step_program_needs_three_arguments():
    proc = subprocess.run([sys.executable, "-m", "runyard_launcher_k8s.step", "run-1", "one"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "usage: python -m runyard_launcher_k8s.step RUN_ID STEP_KEY ATTEMPT" in proc.stderr


PAIR = """
@op
def first() -> int:
    return 1


@op
def second(x: int) -> None:
    record("second", x)


@op
def alone() -> None:
    record("alone", "ran")


@job
def pair():
    second(first())
    alone()
"""


@pytest.mark.parametrize("execution, reason, says", [
    ({}, "no_image", "execution.k8s has no `image`"),
    ({"image": "runyard:dev", "kubeconfig": "/nonexistent/kubeconfig"}, "kubeconfig_error", "/nonexistent/kubeconfig"),
])
def test_steps_that_cannot_get_a_job_fail_and_the_worker_does_not(home, execution, reason, says):
    from runyard.execution.run_worker import execute_run

    path = home.write_defs(PAIR)
    run, job = home.create_run(path, "pair", {"execution": {"k8s": execution}})
    run = execute_run(home.instance, run.run_id, job=job)
    rid = run.run_id
    assert run.status == RunStatus.FAILURE, home.describe(rid)
    for key in ("first", "alone"):
        failure = home.events(rid, "STEP_FAILURE", key)
        assert len(failure) == 1 and failure[0].data["reason"] == reason, home.describe(rid)
        assert says in failure[0].message
    assert home.types(rid, "second") == ["STEP_SKIPPED"]


def test_an_op_interrupted_because_its_pod_went_away_says_why_even_when_it_reported(home):
    """Deleted from outside, a step pod gets SIGTERM: the op is interrupted and the step process may
    still print its outcome before the kill. The executor then adds the reason (the Job or pod was
    deleted), as it does when the process could not report; not when the run itself is stopping."""
    from runyard.execution.step_process import _interrupted
    from runyard_launcher_k8s.failures import PodVerdict

    scheduled = prepared_run(home, K8sExecutorConfig(), TAGGED, "shaped")
    gone = PodVerdict("failed", "job_deleted", "Job runyard-step-x was deleted while its step ran")
    scheduled._gone_verdict = lambda proc: gone
    text = "napping\n" + outcome_line(_interrupted(0))

    def concluded(*, deleted: bool, stopping: bool = False):
        proc = _StepJob("tagged", 0, "runyard-step-x", running=True)
        proc.pod = {"metadata": {"name": "runyard-step-x-abcde",
                                 **({"deletionTimestamp": "2026-11-30T12:00:00Z"} if deleted else {})},
                    "status": {"phase": "Running"}}
        if stopping:
            scheduled.stopping.set()
        try:
            return scheduled._conclude(proc, text, None)
        finally:
            scheduled.stopping.clear()

    verdict, events, outcome = concluded(deleted=True)
    assert (outcome.status, outcome.error) == (StepStatus.FAILURE, "interrupted by termination")
    assert verdict is gone and [e.data["reason"] for e in events] == ["job_deleted"]
    assert events[0].level == "ERROR" and "was interrupted because job runyard-step-x was deleted" in events[0].message
    assert events[0].data["pod"] == "runyard-step-x-abcde"
    assert concluded(deleted=True, stopping=True)[1] == []  # the run's own termination: nothing to add
    assert concluded(deleted=False)[1] == []  # nothing went away: the reported outcome says it all
