"""Helpers of the Helm chart's tests (test_helm.py): render deploy/helm/runyard offline and read it.

helm-python-sdk bundles Helm v4's engine (``Chart.load(dir).render(values, name=, namespace=)``),
so the chart is rendered exactly as ``helm template`` / ``helm install`` would, values schema
included, without a helm binary or a cluster (``lookup`` answers nothing offline).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "runyard"
#: the oldest Kubernetes the chart supports (Chart.yaml kubeVersion), and the newest schema we have
KUBE_VERSIONS = ("1.30", "1.36")
RELEASE = "ry"
NAMESPACE = "runyard-prod"
PG_PASSWORD = "s3cr3t-Pa55word"
PG_URL = f"postgresql://runyard:{PG_PASSWORD}@db.example.internal:5432/runyard"


@cache
def chart():
    import helm_python

    return helm_python.Chart.load(str(CHART_DIR))


@dataclass(frozen=True)
class Rendered:
    """One render of the chart: every manifest as (template path, object), hooks included."""

    values: dict[str, Any]
    namespace: str
    files: dict[str, str]
    objects: tuple[tuple[str, dict[str, Any]], ...]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [obj for _, obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [obj for obj in self.all(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name}: {len(found)} rendered; there are {self.names(kind)}"
        return found[0]

    def names(self, kind: str) -> list[str]:
        return [obj["metadata"]["name"] for obj in self.all(kind)]

    def component(self, kind: str, component: str) -> list[dict[str, Any]]:
        return [obj for obj in self.all(kind)
                if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]

    @property
    def config_map(self) -> dict[str, str]:
        (cm,) = self.all("ConfigMap")
        return cm["data"]

    @property
    def instance_text(self) -> str:
        return self.config_map["runyard.yaml"]

    @property
    def webui_text(self) -> str:
        return self.config_map["webui.yaml"]

    @property
    def workspace_text(self) -> str:
        return self.config_map["workspace.yaml"]

    def instance_data(self, key: str = "runyard.yaml") -> dict[str, Any]:
        return yaml.safe_load(self.config_map[key])

    def secret_value(self, name: str, key: str) -> str:
        import base64

        secret = self.get("Secret", name)
        if key in secret.get("stringData", {}):
            return secret["stringData"][key]
        return base64.b64decode(secret["data"][key]).decode()


def render(values: dict[str, Any], namespace: str = NAMESPACE, name: str = RELEASE) -> Rendered:
    files = chart().render(values, name=name, namespace=namespace)
    objects = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        for obj in yaml.safe_load_all(text):
            if obj:
                objects.append((path, obj))
    return Rendered(values=values, namespace=namespace, files=files, objects=tuple(objects))


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}
