"""The settings every Job runyard creates is made with: the ``k8s`` launcher's run Jobs and the
``k8s`` executor's step Jobs (each config model extends :class:`JobSettings`), and how a run's code
location (``container_context.k8s`` in the workspace) and the run itself (``k8s/<key>`` tags) may
change them.

Kubernetes objects inside the settings (``volumes``, ``volume_mounts``, ``tolerations``,
``affinity``, ``resources``, ``security_context``) are written as in a manifest (camelCase keys) and
copied into the Job as they are; the API server validates them when the Job is created, and a refusal
fails the launch with the server's message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

#: keys a code location's ``container_context.k8s`` or a run's ``k8s/<key>`` tag may set, when the
#: operator's ``location_overrides`` / ``run_overrides`` allow them (connection settings never)
OVERRIDABLE = ("namespace", "image", "image_pull_policy", "image_pull_secrets", "service_account", "env_vars",
               "env_from_secrets", "env_from_config_maps", "volumes", "volume_mounts", "resources", "labels",
               "annotations", "node_selector", "tolerations", "affinity", "security_context", "job_ttl_seconds")
#: how an override combines with the configured value: lists are appended, mappings merged key by key
#: (``resources`` per ``requests``/``limits``), everything else replaced
_APPENDED = ("image_pull_secrets", "env_vars", "env_from_secrets", "env_from_config_maps", "volumes",
             "volume_mounts", "tolerations")
_MERGED = ("labels", "annotations", "node_selector")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _dns_label(value: str, what: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{what} {value!r} is not a valid Kubernetes name (lowercase letters, digits and '-', "
                         "starting and ending with a letter or digit, at most 63 characters)")
    return value


def check_labels(labels: dict[str, str], what: str = "label") -> dict[str, str]:
    for key, value in labels.items():
        if len(key.rsplit("/", 1)[-1]) > 63 or not _LABEL_NAME.match(key):
            raise ValueError(f"{what} name {key!r} is not a valid Kubernetes label key")
        if what == "label" and (len(str(value)) > 63 or not _LABEL_VALUE.match(str(value))):
            raise ValueError(f"label {key}={value!r}: a label value is at most 63 letters, digits, '-', '_' or "
                             "'.', starting and ending with a letter or digit")
    return {k: str(v) for k, v in labels.items()}


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: dict[str, str | int | float] = Field(default_factory=dict,
                                                   description="What the scheduler reserves: cpu, memory, ...")
    limits: dict[str, str | int | float] = Field(default_factory=dict,
                                                 description="Hard limits: a container past its memory limit is "
                                                             "OOMKilled.")


class JobSettings(BaseModel):
    """What the launcher's and the executor's Jobs are configured with alike."""

    model_config = ConfigDict(extra="forbid")

    # ---- where ------------------------------------------------------------------------------------
    in_cluster: bool | None = Field(None, description="Use the pod's service account (true), a kubeconfig "
                                                      "(false), or the service account when running in a "
                                                      "pod and the kubeconfig otherwise (default).")
    kubeconfig: str | None = Field(None, description="kubeconfig file (default: $KUBECONFIG, else "
                                                     "~/.kube/config).")
    context: str | None = Field(None, description="kubeconfig context (default: its current context).")
    namespace: str | None = Field(None, description="Namespace of the Jobs (default: the pod's own in a "
                                                    "cluster, else the kubeconfig context's, else default).")
    api_timeout_seconds: float = Field(30.0, ge=1, le=3600, description="Timeout of each API call.")
    # ---- the pod ----------------------------------------------------------------------------------
    image: str | None = Field(None, description="Image for runs whose code location names none.")
    image_pull_policy: str | None = Field(None, pattern="^(Always|IfNotPresent|Never)$",
                                          description="Always, IfNotPresent or Never (default: the "
                                                      "cluster's, from the image tag).")
    image_pull_secrets: list[str] = Field(default_factory=list,
                                          description="Secrets holding registry credentials.")
    service_account: str | None = Field(None, description="ServiceAccount of the pods (the step executor's "
                                                          "run pods need the RBAC of docs/plugins/"
                                                          "launcher_k8s.md).")
    env_vars: list[str] = Field(default_factory=list,
                                description="NAME=VALUE, or NAME (its value copied from the launching "
                                            "process's environment). Not for secrets: use env_from_secrets.")
    env_from_secrets: list[str] = Field(default_factory=list,
                                        description="Secrets whose keys become environment variables "
                                                    "(envFrom): the way secrets reach a pod.")
    env_from_config_maps: list[str] = Field(default_factory=list,
                                            description="ConfigMaps whose keys become environment variables.")
    volumes: list[dict[str, Any]] = Field(default_factory=list, description="Pod volumes, as in a manifest.")
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list,
                                                description="Container volumeMounts, as in a manifest.")
    resources: Resources | None = Field(None, description="Container resources {requests, limits}.")
    labels: dict[str, str] = Field(default_factory=dict, description="More labels on Jobs and pods "
                                                                     "(runyard.io/* are runyard's).")
    annotations: dict[str, str] = Field(default_factory=dict, description="More annotations on Jobs and pods.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of the pods.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Pod tolerations, as in a "
                                                                                "manifest.")
    affinity: dict[str, Any] | None = Field(None, description="Pod affinity, as in a manifest.")
    security_context: dict[str, Any] | None = Field(None, description="Container securityContext, as in a "
                                                                      "manifest.")
    # ---- lifetime ---------------------------------------------------------------------------------
    job_ttl_seconds: int | None = Field(600, ge=0, le=31_536_000,
                                        description="ttlSecondsAfterFinished: Kubernetes deletes a finished "
                                                    "Job this long after it ended (runyard's reconciler "
                                                    "deletes them sooner); null keeps them.")
    grace_period_seconds: int = Field(10, ge=0, le=3600,
                                      description="terminationGracePeriodSeconds: SIGTERM to SIGKILL when a "
                                                  "pod is stopped (terminate, cancel).")
    log_tail_lines: int = Field(100, ge=0, le=10000,
                                description="Lines of a failed pod's log stored as an event before its Job "
                                            "is deleted.")
    instance_config_map: str | None = Field(None, description="ConfigMap holding the instance file for the pods "
                                                              "(key `runyard.yaml`), e.g. the Helm chart's. "
                                                              "Default: one the launcher manages, "
                                                              "runyard-instance-<instance id>.")
    home: str | None = Field(None, description="RUNYARD_HOME inside the pods (default: the launching "
                                               "instance's home path).")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else _dns_label(value, "namespace")

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, value: str | None) -> str | None:
        return None if value is None else _dns_label(value, "service_account")

    @field_validator("image_pull_secrets", "env_from_secrets", "env_from_config_maps")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for item in value:
            if len(item) > 253 or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", item):
                raise ValueError(f"{item!r} is not a valid Kubernetes object name")
        return value

    @field_validator("env_vars")
    @classmethod
    def _env_vars(cls, value: list[str]) -> list[str]:
        for item in value:
            name = item.split("=", 1)[0]
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value, "annotation")

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

    @field_validator("volumes", "volume_mounts", "tolerations")
    @classmethod
    def _named(cls, value: list[dict[str, Any]], info: Any) -> list[dict[str, Any]]:
        needs = {"volumes": ("name",), "volume_mounts": ("name", "mountPath"), "tolerations": ()}[info.field_name]
        for i, item in enumerate(value):
            missing = [k for k in needs if not item.get(k)]
            if missing:
                raise ValueError(f"item {i} has no {missing[0]} (written as in a manifest: "
                                 f"{', '.join(needs)})")
        return value

    @model_validator(mode="after")
    def _mounts_have_volumes(self) -> JobSettings:
        names = {v["name"] for v in self.volumes}
        for mount in self.volume_mounts:
            if mount["name"] not in names:
                raise ValueError(f"volume_mounts: {mount['name']!r} names no volume in `volumes`")
        return self


#: what a run pod hands its ``k8s`` executor's step Jobs (``$RUNYARD_K8S_RUN_SETTINGS``): the pod
#: settings the launcher used for the run, after the location's and the run's overrides (no
#: connection settings: inside the pod the executor finds the cluster itself)
INHERITED = ("namespace", "image", "image_pull_policy", "image_pull_secrets", "service_account", "env_vars",
             "env_from_secrets", "env_from_config_maps", "volumes", "volume_mounts", "resources", "labels",
             "annotations", "node_selector", "tolerations", "affinity", "security_context", "job_ttl_seconds",
             "grace_period_seconds", "log_tail_lines", "instance_config_map", "home")
RUN_SETTINGS_ENV = "RUNYARD_K8S_RUN_SETTINGS"


def inheritable(settings: JobSettings, *, namespace: str, image: str, env_vars: list[str]) -> str:
    """The run pod's settings as its step Jobs inherit them (JSON for ``$RUNYARD_K8S_RUN_SETTINGS``):
    names of Secrets and ConfigMaps, never their values; ``env_vars`` as the pod got them."""
    data = settings.model_dump(include=set(INHERITED), exclude_none=True)
    data.update(namespace=namespace, image=image, env_vars=env_vars)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def inherit(config: JobSettings, text: str | None) -> JobSettings:
    """``config`` (an executor's) on top of the run pod's settings in ``text``: the keys the run config
    sets win (lists appended, mappings merged), the others are the run pod's."""
    if not text:
        return config
    try:
        inherited = json.loads(text)
    except json.JSONDecodeError:
        return config
    base = type(config).model_validate({**config.model_dump(exclude=set(INHERITED)),
                                        **{k: v for k, v in inherited.items() if k in INHERITED}})
    return merge(base, {k: getattr(config, k) for k in config.model_fields_set if k in INHERITED})


#: what identifies an item of an appended list: an override's item replaces the configured one with
#: the same identity (a volume of the same name, a mount at the same path, a variable of the same name)
_IDENTITY: dict[str, Any] = {"volumes": lambda v: v.get("name"), "volume_mounts": lambda m: m.get("mountPath"),
                             "env_vars": lambda e: e.split("=", 1)[0]}


def merge(settings: JobSettings, overrides: dict[str, Any]) -> JobSettings:
    """``settings`` with ``overrides`` (already checked against an allow-list) combined into them:
    lists appended (an item with the identity of a configured one replaces it), mappings merged key
    by key (``resources`` per ``requests``/``limits``), other values replaced."""
    data = settings.model_dump(exclude_unset=False)
    for key, value in overrides.items():
        if key in _APPENDED:
            identity = _IDENTITY.get(key, lambda item: json.dumps(item, sort_keys=True))
            replaced = {identity(v) for v in value}
            data[key] = [*[v for v in data.get(key, []) if identity(v) not in replaced], *value]
        elif key in _MERGED:
            data[key] = {**data.get(key, {}), **value}
        elif key == "resources" and data.get("resources"):
            base = data["resources"]
            extra = value.model_dump() if isinstance(value, BaseModel) else value
            data[key] = {"requests": {**base.get("requests", {}), **extra.get("requests", {})},
                         "limits": {**base.get("limits", {}), **extra.get("limits", {})}}
        else:
            data[key] = value.model_dump() if isinstance(value, BaseModel) else value
    return type(settings).model_validate(data)


class OverrideError(ValueError):
    """An override a location or run may not make, or one that is not valid; ``key`` names it."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def check_overrides(raw: dict[str, Any], allowed: list[str], *, source: str, setting: str) -> dict[str, Any]:
    """``raw`` (a location's ``container_context.k8s`` or a run's ``k8s/*`` tags) checked against the
    operator's allow-list ``allowed`` and against each key's type; raises :class:`OverrideError`."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in OVERRIDABLE or key not in allowed:
            can = ", ".join(allowed) or "none"
            raise OverrideError(f"{source} sets {key}, which run_launcher.k8s.{setting} does not allow "
                                f"(allowed: {can})", key)
        field = JobSettings.model_fields[key]
        try:
            checked = TypeAdapter(field.annotation).validate_python(value)
            # the field's own checks (names, labels) too
            JobSettings.model_validate({key: checked} if key != "volume_mounts" else {})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise OverrideError(f"{source} sets {key} to an invalid value: {first['msg']}", key) from None
        out[key] = checked
    return out


def parse_tag_value(value: str) -> Any:
    """A ``k8s/<key>`` tag's value: JSON for lists and mappings (``{"limits": {"memory": "1Gi"}}``),
    else the text itself."""
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    return value
