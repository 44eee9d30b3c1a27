"""What every Job runyard creates looks like: names, labels, the pod's environment, the instance
ConfigMap, and the ``batch/v1`` Job itself, as plain dicts (the client sends them as they are).

- Names are deterministic: ``runyard-run-<run id>`` for a run, ``runyard-step-<hash of run, step and
  attempt>`` for a step attempt. A doubled launch gets ``409 AlreadyExists`` and adopts the Job.
- Labels say which instance, run, job, location, kind and step a Job belongs to, so the reconciler
  and the watches select exactly this instance's objects; full names that do not fit a label value
  are in annotations.
- The instance file reaches the pod from a ConfigMap (``RUNYARD_INSTANCE_YAML`` by
  ``configMapKeyRef``) with its ``{env: ...}`` references unresolved; secrets only by ``envFrom``
  Secrets. Nothing secret is in the args, labels, annotations or a ConfigMap: an instance file with a
  literal password in what the workers read is refused (:func:`check_no_literal_secrets`).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TYPE_CHECKING, Any

from runyard.launchers.base import LaunchError

from .settings import JobSettings

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunRecord

PREFIX = "runyard.io/"
INSTANCE_LABEL = PREFIX + "instance"
RUN_LABEL = PREFIX + "run-id"
KIND_LABEL = PREFIX + "kind"  # run | step
JOB_LABEL = PREFIX + "job"
LOCATION_LABEL = PREFIX + "location"
STEP_LABEL = PREFIX + "step"
ATTEMPT_LABEL = PREFIX + "attempt"
MANAGED_BY = {"app.kubernetes.io/managed-by": "runyard"}
#: annotations with the full names that labels may only hold shortened
JOB_ANNOTATION = PREFIX + "job-name"
STEP_ANNOTATION = PREFIX + "step-key"
CONFIG_KEY = "runyard.yaml"
#: how long a worker stopped from outside waits for the launcher's watch to finish its run with why
STOP_REASON_WAIT_SECONDS = 2
RUN_CONTAINER = "run-worker"
STEP_CONTAINER = "step"


# ---- names -----------------------------------------------------------------------------------------------
def _short_hash(*parts: str, length: int = 20) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def run_job_name(run_id: str) -> str:
    """``runyard-run-<run id>``; a run id that is not a valid name part becomes a hash of it."""
    if re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", run_id):
        return f"runyard-run-{run_id}"
    return f"runyard-run-{_short_hash(run_id)}"


def step_job_name(run_id: str, step_key: str, attempt: int) -> str:
    return f"runyard-step-{_short_hash(run_id, step_key, str(attempt))}"


def config_map_name(instance_id: str) -> str:
    return f"runyard-instance-{instance_id}"


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 characters, allowed characters only)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


# ---- labels ----------------------------------------------------------------------------------------------
def labels_for(instance_id: str, run: RunRecord, kind: str, extra: dict[str, str],
               step_key: str | None = None, attempt: int | None = None) -> dict[str, str]:
    from runyard.tags import LOCATION_TAG

    labels = {k: v for k, v in extra.items() if not k.startswith(PREFIX)}
    labels.update(MANAGED_BY)
    labels.update({INSTANCE_LABEL: instance_id, RUN_LABEL: label_value(run.run_id), KIND_LABEL: kind,
                   JOB_LABEL: label_value(run.job_name)})
    location = run.tags.get(LOCATION_TAG)
    if location:
        labels[LOCATION_LABEL] = label_value(location)
    if step_key is not None:
        labels[STEP_LABEL] = label_value(step_key)
        labels[ATTEMPT_LABEL] = str(attempt or 0)
    return labels


def annotations_for(run: RunRecord, extra: dict[str, str], step_key: str | None = None) -> dict[str, str]:
    out = {k: v for k, v in extra.items() if not k.startswith(PREFIX)}
    out[JOB_ANNOTATION] = run.job_name
    out[PREFIX + "run-id"] = run.run_id
    if step_key is not None:
        out[STEP_ANNOTATION] = step_key
    return out


# ---- the instance file -----------------------------------------------------------------------------------
_LITERAL_PASSWORD = re.compile(r"://[^/@:\s]+:[^@/\s{}]+@")
_SECRET_KEYS = re.compile(r"^\s*(password|passwd|token|secret|api_key|access_key)\s*:\s*(?!\{|$|null|~)(\S.*)$",
                          re.IGNORECASE | re.MULTILINE)


def check_no_literal_secrets(text: str, source: str) -> None:
    """Refuse a worker config (the ConfigMap's content) that holds a literal password or token: it
    must be an ``{env: NAME}`` reference, its variable given to the pods by ``env_from_secrets``."""
    match = _LITERAL_PASSWORD.search(text) or _SECRET_KEYS.search(text)
    if match:
        raise LaunchError(f"{source} holds a literal password or token in a section run workers read "
                          f"({'a URL with user:password@' if match.re is _LITERAL_PASSWORD else match.group(1)}); "
                          "the k8s launcher puts those sections in a ConfigMap, and a secret never goes there: "
                          "write it as {env: NAME} and give the pods NAME from a Secret (env_from_secrets)",
                          reason="secret_in_config")


def config_map(instance: Instance, name: str, namespace: str, instance_id: str) -> dict[str, Any]:
    text = instance.worker_config_text()
    check_no_literal_secrets(text, instance.instance_file)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {**MANAGED_BY, INSTANCE_LABEL: instance_id, KIND_LABEL: "instance"}},
            "data": {CONFIG_KEY: text}}


# ---- the pod ---------------------------------------------------------------------------------------------
def environment(instance: Instance, settings: JobSettings, *, config_map_name: str,
                namespace: str) -> list[dict[str, Any]]:
    """The pod's ``env``: the instance file from the ConfigMap, its home, the pod's own name and
    namespace, and ``env_vars``. The instance's ``{env: NAME}`` variables are not copied here: they come
    from ``env_from_secrets``."""
    from runyard.execution.run_worker import STOP_REASON_WAIT_ENV
    from runyard.instance.instance import HOME_ENV, INSTANCE_SOURCE_ENV, INSTANCE_YAML_ENV

    env: list[dict[str, Any]] = [
        {"name": INSTANCE_YAML_ENV, "valueFrom": {"configMapKeyRef": {"name": config_map_name, "key": CONFIG_KEY}}},
        {"name": INSTANCE_SOURCE_ENV, "value": f"ConfigMap {namespace}/{config_map_name} (key {CONFIG_KEY})"},
        {"name": HOME_ENV, "value": settings.home or instance.home},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        # a SIGTERM runyard did not ask for (deadline, Job deleted): the launcher's watch says why first
        {"name": STOP_REASON_WAIT_ENV, "value": str(STOP_REASON_WAIT_SECONDS)},
        {"name": "RUNYARD_K8S_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "RUNYARD_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    taken = {e["name"] for e in env}
    for item in settings.env_vars:
        if "=" in item:
            name, value = item.split("=", 1)
        elif item in os.environ:
            name, value = item, os.environ[item]
        else:
            raise LaunchError(f"env_vars names {item}, which is not set in the environment of the process that "
                              f"launches (pid {os.getpid()}): set it there, give NAME=VALUE, or put it in a Secret "
                              "listed in env_from_secrets", reason="env_var_missing", details={"env_var": item})
        if name not in taken:
            env.append({"name": name, "value": value})
            taken.add(name)
    return env


def job_manifest(*, name: str, namespace: str, settings: JobSettings, image: str, command: list[str],
                 env: list[dict[str, Any]], labels: dict[str, str], annotations: dict[str, str],
                 container: str, active_deadline_seconds: int | None = None,
                 resources: dict[str, Any] | None = None, node_selector: dict[str, str] | None = None,
                 tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A ``batch/v1`` Job running ``command`` once: ``backoffLimit: 0``, ``restartPolicy: Never``,
    ``ttlSecondsAfterFinished`` from ``job_ttl_seconds``. ``resources``, ``node_selector`` and
    ``tolerations`` (a step's op tags) win over the settings'."""
    main: dict[str, Any] = {"name": container, "image": image, "command": command, "env": env}
    if settings.image_pull_policy:
        main["imagePullPolicy"] = settings.image_pull_policy
    env_from = ([{"secretRef": {"name": s}} for s in settings.env_from_secrets]
                + [{"configMapRef": {"name": c}} for c in settings.env_from_config_maps])
    if env_from:
        main["envFrom"] = env_from
    chosen_resources = resources if resources is not None else (
        settings.resources.model_dump(exclude_defaults=True) if settings.resources else None)
    if chosen_resources:
        main["resources"] = {k: {rk: str(rv) for rk, rv in v.items()} for k, v in chosen_resources.items() if v}
    if settings.volume_mounts:
        main["volumeMounts"] = [dict(m) for m in settings.volume_mounts]
    if settings.security_context:
        main["securityContext"] = dict(settings.security_context)
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [main],
                           "terminationGracePeriodSeconds": settings.grace_period_seconds}
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    chosen_selector = {**settings.node_selector, **(node_selector or {})}
    if chosen_selector:
        pod["nodeSelector"] = chosen_selector
    chosen_tolerations = [*settings.tolerations, *(tolerations or [])]
    if chosen_tolerations:
        pod["tolerations"] = chosen_tolerations
    if settings.affinity:
        pod["affinity"] = dict(settings.affinity)
    if settings.volumes:
        pod["volumes"] = [dict(v) for v in settings.volumes]
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {
        "metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod}}
    if settings.job_ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = settings.job_ttl_seconds
    if active_deadline_seconds:
        spec["activeDeadlineSeconds"] = int(active_deadline_seconds)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "annotations": dict(annotations)},
            "spec": spec}
