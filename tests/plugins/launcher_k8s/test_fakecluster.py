"""The fake Kubernetes cluster (fakecluster.py) driven only through the official ``kubernetes`` client:
Jobs really run as containers on the Docker engine and end as on a real cluster (completion, exit
codes, OOM, image pull and config errors, scheduling, deadlines, TTL, eviction, Foreground deletion
with SIGTERM), and the API behaves as a real server's (selectors, watches, errors, Secrets).

Needs: a Docker engine and the image runyard-base:bookworm (see conftest.py).
"""

from __future__ import annotations

import base64
import threading
import time

import kubernetes
import pytest
from kubernetes.client import ApiException

from runyard.testing import wait_until


@pytest.fixture
def apis(fake_cluster):
    client = fake_cluster.api_client()
    yield kubernetes.client.CoreV1Api(client), kubernetes.client.BatchV1Api(client)
    client.close()


def job_manifest(name: str, image: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": image, "command": ["python3", "-u", "-c", script]}
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "containers": [container], "terminationGracePeriodSeconds": 5}
    pod_spec.update(spec.pop("pod", {}))
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {"app": "fc-test"}},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "fc-test"}}, "spec": pod_spec},
                     **spec}}


def condition(job, ctype: str):
    return next((c for c in job.status.conditions or [] if c.type == ctype and c.status == "True"), None)


def finished(batch, name: str):
    job = batch.read_namespaced_job(name, "default")
    return job if condition(job, "Complete") or condition(job, "Failed") else None


def pod_of(core, job: str):
    pods = core.list_namespaced_pod("default", label_selector=f"job-name={job}").items
    return pods[0] if pods else None


def waiting_reason(core, job: str):
    """The pod's container's waiting state once it is waiting for something else than its creation."""
    pod = pod_of(core, job)
    statuses = pod.status.container_statuses if pod is not None else None
    waiting = statuses[0].state.waiting if statuses else None
    return waiting if waiting and waiting.reason != "ContainerCreating" else None


def delete_job(batch, name: str) -> None:
    batch.delete_namespaced_job(name, "default", propagation_policy="Foreground")
    wait_until(lambda: not batch.list_namespaced_job("default", field_selector=f"metadata.name={name}").items,
               20, what=f"job {name} deleted")


def test_a_job_completes_and_its_log_is_served(fake_cluster, apis, python_image):
    core, batch = apis
    created = batch.create_namespaced_job("default", job_manifest("hello", python_image, "print('hi')"))
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.spec.template.metadata.labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    job = wait_until(lambda: finished(batch, "hello"), 20, what="job hello finished")
    assert condition(job, "Complete") and job.status.succeeded == 1 and job.status.active == 0
    assert job.status.start_time and job.status.completion_time
    pod = pod_of(core, "hello")
    assert pod.metadata.name.startswith("hello-") and len(pod.metadata.name) == len("hello-") + 5
    assert pod.metadata.labels["job-name"] == "hello" and pod.metadata.labels["app"] == "fc-test"
    assert pod.metadata.owner_references[0].uid == created.metadata.uid
    assert pod.status.phase == "Succeeded" and pod.spec.node_name == "fake-node"
    status = pod.status.container_statuses[0]
    assert status.state.terminated.exit_code == 0 and status.state.terminated.reason == "Completed"
    assert status.container_id.startswith("docker://") and status.restart_count == 0
    assert core.read_namespaced_pod_log(pod.metadata.name, "default") == "hi\n"
    assert core.read_namespaced_pod_log(pod.metadata.name, "default", container="main", tail_lines=1) == "hi\n"
    assert not fake_cluster.containers()
    delete_job(batch, "hello")
    assert not core.list_namespaced_pod("default").items


def test_exit_3_fails_the_job_and_oom_is_reported(fake_cluster, apis, python_image):
    core, batch = apis
    batch.create_namespaced_job("default", job_manifest("three", python_image, "import sys; sys.exit(3)"))
    hog = "b = bytearray(512 * 1024 * 1024); print(len(b))"
    batch.create_namespaced_job("default", job_manifest(
        "hog", python_image, hog, container={"resources": {"limits": {"memory": "64Mi"}}}))
    job = wait_until(lambda: finished(batch, "three"), 20, what="job three finished")
    assert condition(job, "Failed").reason == "BackoffLimitExceeded" and job.status.failed == 1
    terminated = pod_of(core, "three").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert pod_of(core, "three").status.phase == "Failed"
    job = wait_until(lambda: finished(batch, "hog"), 20, what="job hog finished")
    assert condition(job, "Failed")
    assert pod_of(core, "hog").status.container_statuses[0].state.terminated.reason == "OOMKilled"
    delete_job(batch, "three")
    delete_job(batch, "hog")


def test_image_config_and_scheduling_errors_leave_the_pod_pending(fake_cluster, apis, python_image):
    core, batch = apis
    batch.create_namespaced_job("default", job_manifest("noimage", "fakecluster-missing/image:1", "pass"))
    batch.create_namespaced_job("default", job_manifest(
        "nosecret", python_image, "pass", container={"envFrom": [{"secretRef": {"name": "nope"}}]}))
    batch.create_namespaced_job("default", job_manifest(
        "noneverpull", "fakecluster-missing/image:2", "pass", container={"imagePullPolicy": "Never"}))
    batch.create_namespaced_job("default", job_manifest(
        "nonode", python_image, "pass", pod={"nodeSelector": {"disktype": "ssd"}}))
    batch.create_namespaced_job("default", job_manifest(
        "onnode", python_image, "print('fits')", pod={
            "nodeSelector": {"runyard.test/node": "fake"}, "tolerations": [{"operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}}))

    pulled = wait_until(lambda: waiting_reason(core, "noimage"), 10, what="noimage waiting")
    assert pulled.reason in ("ErrImagePull", "ImagePullBackOff") and "fakecluster-missing/image:1" in pulled.message
    config = wait_until(lambda: waiting_reason(core, "nosecret"), 10, what="nosecret waiting")
    assert (config.reason, config.message) == ("CreateContainerConfigError", 'secret "nope" not found')
    never = wait_until(lambda: waiting_reason(core, "noneverpull"), 10, what="noneverpull waiting")
    assert never.reason == "ErrImageNeverPull"
    pod = wait_until(lambda: (p := pod_of(core, "nonode")) and p.status.conditions and p, 10, what="nonode status")
    scheduled = pod.status.conditions[0]
    assert (scheduled.type, scheduled.status, scheduled.reason) == ("PodScheduled", "False", "Unschedulable")
    assert scheduled.message.startswith("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")
    assert pod.status.phase == "Pending"
    assert condition(wait_until(lambda: finished(batch, "onnode"), 20, what="onnode finished"), "Complete")
    for name in ("noimage", "nosecret", "noneverpull", "nonode", "onnode"):
        delete_job(batch, name)


def test_deadline_ttl_and_eviction(fake_cluster, apis, python_image):
    core, batch = apis
    sleeper = "import time; print('up'); time.sleep(60)"
    batch.create_namespaced_job("default", job_manifest("deadline", python_image, sleeper, activeDeadlineSeconds=2))
    batch.create_namespaced_job("default", job_manifest("ttl", python_image, "print(1)", ttlSecondsAfterFinished=1))
    batch.create_namespaced_job("default", job_manifest("evictme", python_image, sleeper))

    running = wait_until(lambda: (p := pod_of(core, "evictme")) and p.status.phase == "Running" and p, 15,
                         what="evictme running")
    core.create_namespaced_pod_eviction(running.metadata.name, "default", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": running.metadata.name}})
    evicted = wait_until(lambda: (p := pod_of(core, "evictme")) and p.status.phase == "Failed" and p, 15,
                         what="evictme evicted")
    assert evicted.status.reason == "Evicted" and evicted.status.message == "The node was low on resource: memory."
    assert condition(wait_until(lambda: finished(batch, "evictme"), 10, what="evictme failed"), "Failed")

    job = wait_until(lambda: finished(batch, "deadline"), 15, what="deadline job failed")
    failed = condition(job, "Failed")
    assert (failed.reason, failed.message) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    wait_until(lambda: pod_of(core, "deadline") is None, 15, what="the deadline job's pod removed")

    wait_until(lambda: not batch.list_namespaced_job("default", field_selector="metadata.name=ttl").items, 15,
               what="the ttl job deleted")
    wait_until(lambda: pod_of(core, "ttl") is None, 10, what="the ttl job's pod deleted")
    wait_until(lambda: not fake_cluster.containers(), 10, what="no container left")
    delete_job(batch, "deadline")
    delete_job(batch, "evictme")


def test_foreground_delete_sends_sigterm_and_removes_everything(fake_cluster, apis, python_image, tmp_path):
    core, batch = apis
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    script = ("import signal, sys, time\n"
              "def bye(*_):\n"
              "    print('got SIGTERM', flush=True)\n"
              "    open('/out/said', 'w').write('SIGTERM')\n"
              "    sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\n"
              "print('started', flush=True)\n"
              "time.sleep(60)\n")
    batch.create_namespaced_job("default", job_manifest(
        "stopme", python_image, script, container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
        pod={"volumes": [{"name": "out", "hostPath": {"path": str(out)}}]}))
    pod = wait_until(lambda: (p := pod_of(core, "stopme")) and p.status.phase == "Running" and p, 15,
                     what="stopme running")
    wait_until(lambda: "started" in core.read_namespaced_pod_log(pod.metadata.name, "default"), 10,
               what="the live log says started")
    events: list = []
    watcher = kubernetes.watch.Watch()

    def watch():
        for event in watcher.stream(core.list_namespaced_pod, "default", label_selector="job-name=stopme",
                                    timeout_seconds=20):
            events.append((event["type"], event["object"]))
            if event["type"] == "DELETED":
                watcher.stop()

    thread = threading.Thread(target=watch)
    thread.start()
    follow = core.read_namespaced_pod_log(pod.metadata.name, "default", follow=True, _preload_content=False)
    batch.delete_namespaced_job("stopme", "default", propagation_policy="Foreground")
    deleting = batch.read_namespaced_job("stopme", "default")
    assert deleting.metadata.deletion_timestamp and "foregroundDeletion" in deleting.metadata.finalizers
    wait_until(lambda: not batch.list_namespaced_job("default").items, 20, what="the job gone")
    thread.join(25)
    assert (out / "said").read_text() == "SIGTERM"
    assert follow.data.decode() == "started\ngot SIGTERM\n"  # the followed log ends with the container
    terminated = [o.status.container_statuses[0].state.terminated for t, o in events
                  if o.status.container_statuses and o.status.container_statuses[0].state.terminated]
    assert terminated and terminated[-1].exit_code == 0, [(t, o.status.phase) for t, o in events]
    assert events[-1][0] == "DELETED"
    assert not core.list_namespaced_pod("default").items
    assert not fake_cluster.containers()
    reasons = {e.reason for e in core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pod.metadata.name}").items}
    assert reasons == {"Scheduled", "Pulled", "Created", "Started", "Killing"}


def test_selectors_watches_errors_and_secrets(instant_cluster):
    client = instant_cluster.api_client()
    core = kubernetes.client.CoreV1Api(client)
    for name, labels in [("a", {"tier": "x", "app": "one"}), ("b", {"tier": "y", "app": "one"}),
                         ("c", {"tier": "z"})]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels},
                                                      "data": {"k": name}})

    def names(**kwargs):
        return sorted(c.metadata.name for c in core.list_namespaced_config_map("default", **kwargs).items)

    assert names(label_selector="app=one") == ["a", "b"]
    assert names(label_selector="app!=one") == ["c"]
    assert names(label_selector="app") == ["a", "b"] and names(label_selector="!app") == ["c"]
    assert names(label_selector="tier in (x,z)") == ["a", "c"] and names(label_selector="tier notin (x, z)") == ["b"]
    assert names(label_selector="app=one,tier=y") == ["b"] and names(field_selector="metadata.name=c") == ["c"]
    listed = core.list_namespaced_config_map("default")
    assert listed.kind == "ConfigMapList" and listed.api_version == "v1" and int(listed.metadata.resource_version) > 0

    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert conflict.value.status == 409 and '"reason": "AlreadyExists"' in conflict.value.body.replace('":"', '": "')
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    assert missing.value.status == 404 and "NotFound" in missing.value.body

    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"user": "me"},
                                              "data": {"pw": base64.b64encode(b"pw").decode()}})
    secret = core.read_namespaced_secret("s", "default")
    assert {k: base64.b64decode(v) for k, v in secret.data.items()} == {"user": b"me", "pw": b"pw"}
    assert secret.string_data is None

    replaced = core.read_namespaced_config_map("a", "default")
    replaced.data = {"k": "new"}
    core.replace_namespaced_config_map("a", "default", replaced)
    assert core.read_namespaced_config_map("a", "default").data == {"k": "new"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("a", "default", replaced)
    assert stale.value.status == 409

    since = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list = []
    started = time.monotonic()
    stream = kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default", label_selector="app=one",
                                             resource_version=since, timeout_seconds=2)
    core.patch_namespaced_config_map("b", "default", {"data": {"k": "b2"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"k": "c2"}})
    core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"app": "one"}}})
    core.delete_namespaced_config_map("a", "default")
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("MODIFIED", "b"), ("ADDED", "c"), ("DELETED", "a")]
    assert 1.5 < time.monotonic() - started < 10
    assert core.read_namespace("default").status.phase == "Active"
    assert kubernetes.client.VersionApi(client).get_code().major == "1"
    client.close()


def test_instant_mode_completes_jobs_at_once(instant_cluster):
    client = instant_cluster.api_client()
    batch = kubernetes.client.BatchV1Api(client)
    core = kubernetes.client.CoreV1Api(client)
    for index in range(20):
        batch.create_namespaced_job("default", job_manifest(f"quick-{index}", "nothing:1", "pass"))
    wait_until(lambda: all(condition(j, "Complete") for j in batch.list_namespaced_job("default").items), 10,
               what="every job complete")
    pods = core.list_namespaced_pod("default").items
    assert len(pods) == 20 and {p.status.phase for p in pods} == {"Succeeded"}
    assert core.read_namespaced_pod_log(pods[0].metadata.name, "default") == ""
    batch.delete_collection_namespaced_job("default", propagation_policy="Background")
    wait_until(lambda: not core.list_namespaced_pod("default").items, 10, what="the pods collected")
    client.close()


def test_on_failure_restarts_count_against_the_backoff_limit(fake_cluster, apis, python_image):
    core, batch = apis
    batch.create_namespaced_job("default", job_manifest("flaky", python_image, "import sys; print('try'); sys.exit(1)",
                                                        backoffLimit=1, pod={"restartPolicy": "OnFailure"}))
    job = wait_until(lambda: finished(batch, "flaky"), 20, what="job flaky failed")
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    wait_until(lambda: pod_of(core, "flaky") is None, 15, what="the flaky pod deleted")
    delete_job(batch, "flaky")


def test_closing_the_cluster_removes_its_running_containers(fake_cluster, apis, python_image):
    core, batch = apis
    batch.create_namespaced_job("default", job_manifest("forever", python_image, "import time; time.sleep(600)"))
    wait_until(lambda: (p := pod_of(core, "forever")) and p.status.phase == "Running", 15, what="forever running")
    assert len(fake_cluster.containers()) == 1
    assert fake_cluster.close() == []  # the subprocess removed it on SIGTERM: nothing left for close() to remove
    assert not fake_cluster.containers()


def test_background_and_orphan_propagation(instant_cluster):
    client = instant_cluster.api_client()
    batch, core = kubernetes.client.BatchV1Api(client), kubernetes.client.CoreV1Api(client)
    for name in ("bg", "orphan"):
        batch.create_namespaced_job("default", job_manifest(name, "nothing:1", "pass"))
        wait_until(lambda n=name: finished(batch, n), 10, what=f"{name} complete")
    batch.delete_namespaced_job("bg", "default", propagation_policy="Background")
    wait_until(lambda: pod_of(core, "bg") is None, 10, what="the bg pod collected")
    batch.delete_namespaced_job("orphan", "default")  # batch/v1's default: Orphan
    assert not batch.list_namespaced_job("default").items
    orphan = pod_of(core, "orphan")
    assert orphan is not None and not orphan.metadata.owner_references
    client.close()
