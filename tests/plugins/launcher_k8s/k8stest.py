"""Helpers of the k8s launcher's tests: its settings against a fake cluster, this instance's Jobs and
pods in it, manifests checked against the Kubernetes OpenAPI schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from runyard.testing import SuiteHome, wait_until

#: the Kubernetes version manifests are validated for (kubernetes-validate --strict)
K8S_VERSION = "1.30"
#: what the API server adds to an object it stores, left out before validating what runyard sent
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers", "ownerReferences")


def launcher_settings(cluster: Any, image: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """``run_launcher: k8s`` for tests: the fake cluster's kubeconfig, the test's directory mounted at
    the same path by a hostPath volume (its definitions file and output files), a short grace period."""
    settings: dict[str, Any] = {
        "kubeconfig": cluster.kubeconfig, "image": image, "image_pull_policy": "IfNotPresent",
        "volumes": [{"name": "test-dir", "hostPath": {"path": str(tmp_path)}}],
        "volume_mounts": [{"name": "test-dir", "mountPath": str(tmp_path)}],
        "grace_period_seconds": 3}
    for key in ("volumes", "volume_mounts"):
        settings[key] = settings[key] + list(extra.pop(key, []))
    settings.update(extra)
    return {"k8s": settings}


def instance_selector(home: SuiteHome) -> str:
    from runyard_launcher_k8s import manifests

    return f"{manifests.INSTANCE_LABEL}={home.instance.instance_id()}"


def jobs_of(batch: Any, home: SuiteHome, namespace: str = "default") -> list[Any]:
    return batch.list_namespaced_job(namespace, label_selector=instance_selector(home)).items


def pods_of(core: Any, home: SuiteHome, namespace: str = "default") -> list[Any]:
    return core.list_namespaced_pod(namespace, label_selector=instance_selector(home)).items


def wait_nothing_left(cluster: Any, kube: tuple[Any, Any], home: SuiteHome, timeout: float = 30) -> None:
    """No Job, pod or container of the home's instance is left in the cluster."""
    core, batch = kube

    def gone() -> bool:
        return not jobs_of(batch, home) and not pods_of(core, home) and not cluster.containers()

    wait_until(gone, timeout=timeout, interval=0.2, what="the run's Jobs, pods and containers to be gone")


def sent_manifest(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored object as its creator sent it: no status, no server-set metadata."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    for key in SERVER_FIELDS:
        out.get("metadata", {}).pop(key, None)
    return out


def validate(manifest: dict[str, Any]) -> None:
    """Strict validation against the Kubernetes OpenAPI schema (unknown fields are errors)."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def raw_job(batch: Any, name: str, namespace: str = "default") -> dict[str, Any]:
    import json

    return json.loads(batch.read_namespaced_job(name, namespace, _preload_content=False).data)


def pod_outputs(home: SuiteHome, run_id: str) -> list[Any]:
    from runyard.storage.records import EventType
    from runyard_launcher_k8s.failures import OUTPUT_EVENT_KIND

    return [e for e in home.events(run_id, str(EventType.ENGINE_EVENT)) if e.data.get("kind") == OUTPUT_EVENT_KIND]
