"""The Helm chart (deploy/helm/runyard), rendered offline over a matrix of values.

Needs: helm-python-sdk (Helm v4's engine: render, lint, values schema), kubernetes-validate, the
runyard plugins the chart configures (storage_postgres, launcher_k8s, launcher_docker, webui), and
PostgreSQL at $RUNYARD_TEST_PG_URL for the migration Job's command (it runs for real against a
database of its own). No helm binary and no cluster: what a real `helm install` adds beyond this is
the API server's admission, which kubernetes-validate's strict schemas stand in for.

For every set of values: every manifest is valid for the chart's oldest and newest Kubernetes,
`helm lint --strict` passes, the generated instance and workspace files load with runyard's own
loaders (so the chart cannot emit a config runyard refuses), the launcher's config names what the
chart creates, the Role is exactly the launcher's documented RBAC, and no password reaches a
ConfigMap. Bad values fail at render time with the schema's message naming the key.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from helmtest import (
    CHART_DIR,
    KUBE_VERSIONS,
    NAMESPACE,
    PG_PASSWORD,
    PG_URL,
    RELEASE,
    ROOT,
    Rendered,
    chart,
    env_of,
    pod_spec,
    render,
)

from runyard.instance.instance import Instance, InstanceSettings
from runyard.instance.yaml_source import load_yaml_text
from runyard.workspace.config import parse_workspace

BASE = {"postgres": {"url": PG_URL}}
ETL = {"name": "etl", "image": {"repository": "registry.example.com/etl", "tag": "2026-11"}, "module": "etl.defs"}
MARKETING = {"name": "marketing", "image": {"repository": "registry.example.com/mkt", "tag": 7},
             "file": "/opt/code/pipelines/marketing.py", "attribute": "defs", "workingDirectory": "/opt/code",
             "replicas": 2, "port": 4100, "resources": {"limits": {"memory": "1Gi"}},
             "env": [{"name": "MKT_REGION", "value": "eu"}], "envFromSecrets": ["mkt-warehouse"],
             "containerContext": {"k8s": {"resources": {"limits": {"memory": "2Gi"}},
                                          "env_from_secrets": ["mkt-warehouse"]}}}

MATRIX: dict[str, dict[str, Any]] = {
    "defaults": BASE,
    "two_locations": {**BASE, "codeLocations": [ETL, MARKETING],
                      "instance": {"runCoordinator": {"max_concurrent_runs": 25},
                                   "settings": {"run_retries": {"enabled": True, "max_retries": 2},
                                                "daemon": {"launch_concurrency": 16}}},
                      "launcher": {"type": "k8s", "k8s": {"image": "registry.example.com/etl:2026-11",
                                                          "envFromSecrets": ["warehouse"],
                                                          "config": {"job_ttl_seconds": 300,
                                                                     "resources": {"requests": {"cpu": "250m"}}}}},
                      "imagePullSecrets": ["regcred"],
                      "daemon": {"replicas": 3, "livenessProbe": {"enabled": True, "periodSeconds": 20,
                                                                  "failureThreshold": 3},
                                 "metrics": {"enabled": True, "port": 9500}}},
    "docker_launcher": {**BASE, "codeLocations": [ETL],
                        "launcher": {"type": "docker", "docker": {"dockerHost": "tcp://docker-engine:2375",
                                                                  "network": "runyard",
                                                                  "config": {"mem_limit": "2g"}}}},
    "external_secret": {"postgres": {"existingSecret": {"name": "pg-creds", "key": "PG_URL"},
                                     "settings": {"pool_size": 4, "statement_timeout_ms": 30000}},
                        "codeServerToken": {"existingSecret": {"name": "code-token", "key": "value"}},
                        "webui": {"auth": {"enabled": True, "username": "ops",
                                           "existingSecret": {"name": "webui-login", "key": "password"}}},
                        "codeLocations": [ETL]},
    "ingress": {**BASE, "codeLocations": [ETL],
                "ingress": {"enabled": True, "className": "nginx", "host": "runyard.corp.example",
                            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"},
                            "tlsSecretName": "runyard-tls"}},
    "read_only_webui": {**BASE, "codeLocations": [ETL],
                        "webui": {"readOnly": True, "replicas": 3,
                                  "settings": {"threads": 16, "metrics_enabled": False},
                                  "allowedHosts": ["runyard.internal"]}},
}

#: the variables the services' environment gives the generated files' {env: ...} references
SERVICE_ENV = {"RUNYARD_PG_URL": PG_URL, "PG_URL": PG_URL, "RUNYARD_CODE_SERVER_TOKEN": "t0ken",
               "RUNYARD_WEBUI_PASSWORD": "pw"}


@pytest.fixture(scope="module", params=sorted(MATRIX))
def rendered(request) -> Rendered:
    return render(copy.deepcopy(MATRIX[request.param]))


@pytest.fixture
def service_env(monkeypatch):
    for name, value in SERVICE_ENV.items():
        monkeypatch.setenv(name, value)


def load_instance(text: str, tmp_path: Path) -> Instance:
    """The instance file as `runyard daemon` / `runyard webui` load it, with every component built
    (config validated by each component's own model) and every plugin section resolved."""
    inst = Instance.from_yaml(str(tmp_path / "home"), text)
    for kind in ("storage", "run_coordinator", "run_launcher"):
        inst.build_component(kind)
    inst.sections()
    return inst


def launcher_config(r: Rendered) -> dict[str, Any]:
    (kind, config), = r.instance_data()["run_launcher"].items()
    return {"kind": kind, **config}


def pg_secret(r: Rendered) -> tuple[str, str]:
    existing = r.values["postgres"].get("existingSecret")
    return (existing["name"], existing["key"]) if existing else (f"{RELEASE}-runyard-postgres", "RUNYARD_PG_URL")


# ---- every manifest ------------------------------------------------------------------------------------
def test_every_manifest_is_valid_kubernetes(rendered):
    assert rendered.objects
    for version in KUBE_VERSIONS:
        for path, obj in rendered.objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path}: {obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes {version}: "
                            f"{exc.message}")


def test_chart_declares_the_versions_it_is_tested_for():
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert meta["kubeVersion"] == f">={KUBE_VERSIONS[0]}.0-0"


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_lint_strict_passes(case):
    report = helm_python.lint(str(CHART_DIR), copy.deepcopy(MATRIX[case]), strict=True, namespace=NAMESPACE,
                              kube_version=f"v{KUBE_VERSIONS[0]}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_objects_are_labelled_and_named_within_limits(rendered):
    for path, obj in rendered.objects:
        meta = obj["metadata"]
        assert len(meta["name"]) <= 63, f"{path}: {meta['name']}"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert "namespace" not in meta  # Helm's --namespace decides


def test_longest_names_stay_dns_labels():
    release = "a-release-name-of-the-longest-length-helm-allows-x-53"
    assert len(release) == 53
    loc = {**ETL, "name": "location-of-20-chars"}
    r = render({**BASE, "codeLocations": [loc], "ingress": {"enabled": True}}, name=release)
    label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for _, obj in r.objects:
        assert len(obj["metadata"]["name"]) <= 63 and label.match(obj["metadata"]["name"]), obj["metadata"]["name"]
    for version in KUBE_VERSIONS:
        for _, obj in r.objects:
            kubernetes_validate.validate(obj, version, strict=True)


def test_selectors_match_their_pods(rendered):
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in rendered.all("Deployment")}
    for dep in rendered.all("Deployment"):
        assert dep["spec"]["selector"]["matchLabels"].items() <= pods[dep["metadata"]["name"]].items()
    for svc in rendered.all("Service"):
        targets = [n for n, labels in pods.items() if svc["spec"]["selector"].items() <= labels.items()]
        assert targets == [svc["metadata"]["name"]], svc["metadata"]["name"]
        ports = {p["name"] for d in rendered.all("Deployment") if d["metadata"]["name"] in targets
                 for c in pod_spec(d)["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    for pdb in rendered.all("PodDisruptionBudget"):
        targets = [n for n, labels in pods.items() if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert targets == [pdb["metadata"]["name"]]


def test_pod_disruption_budgets_for_every_component_with_replicas(rendered):
    replicated = {d["metadata"]["name"] for d in rendered.all("Deployment") if d["spec"]["replicas"] > 1}
    assert set(rendered.names("PodDisruptionBudget")) == replicated
    for pdb in rendered.all("PodDisruptionBudget"):
        assert pdb["spec"] == {**pdb["spec"], "maxUnavailable": 1}


# ---- the generated files, loaded by runyard ------------------------------------------------------------
def test_instance_file_loads_with_runyards_loader(rendered, service_env, tmp_path):
    inst = load_instance(rendered.instance_text, tmp_path)
    assert inst.storage_unchecked().name == "postgres"
    assert inst.run_coordinator.name == "queued"
    assert inst.run_launcher.name == rendered.values.get("launcher", {}).get("type", "k8s")
    # run pods read this key (instance_config_map): only runyard's own keys, so a code location's image
    # needs no runyard-webui; and nothing the launcher would refuse to put in a ConfigMap
    assert set(rendered.instance_data()) <= set(InstanceSettings.model_fields)
    from runyard_launcher_k8s.manifests import check_no_literal_secrets

    check_no_literal_secrets(inst.worker_config_text(), "runyard.yaml")


def test_webui_file_is_the_instance_plus_its_section(rendered, service_env, tmp_path):
    inst = load_instance(rendered.webui_text, tmp_path)
    webui = inst.section("webui")
    values = rendered.values.get("webui", {})
    assert webui.host == "0.0.0.0" and webui.port == 3000
    assert webui.read_only is values.get("readOnly", False)
    assert (webui.auth is not None) is values.get("auth", {}).get("enabled", False)
    data = rendered.instance_data("webui.yaml")
    data.pop("webui")
    assert data == rendered.instance_data()
    (dep,) = rendered.component("Deployment", "webui")
    (container,) = pod_spec(dep)["containers"]
    assert env_of(container)["RUNYARD_INSTANCE_FILE"]["value"] == "/etc/runyard/webui.yaml"
    assert ("--insecure-no-auth" in container["command"]) is (webui.auth is None)
    if webui.auth is not None:
        ref = env_of(container)["RUNYARD_WEBUI_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "webui-login", "key": "password"}
        assert webui.auth.username == "ops"


def test_webui_accepts_its_service_and_ingress_host_names(rendered, service_env, tmp_path):
    allowed = load_instance(rendered.webui_text, tmp_path).section("webui").allowed_hosts
    (svc,) = rendered.component("Service", "webui")
    name = svc["metadata"]["name"]
    assert {name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc"} <= set(allowed)
    for ing in rendered.all("Ingress"):
        for rule in ing["spec"]["rules"]:
            assert rule["host"] in allowed
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"] == {"name": name, "port": {"name": "http"}}
        assert ing["spec"]["tls"] == [{"hosts": ["runyard.corp.example"], "secretName": "runyard-tls"}]
    assert bool(rendered.all("Ingress")) is rendered.values.get("ingress", {}).get("enabled", False)
    for host in rendered.values.get("webui", {}).get("allowedHosts", []):
        assert host in allowed


def test_workspace_file_loads_and_names_each_code_location_service(rendered, service_env):
    doc = load_yaml_text(rendered.workspace_text, "/etc/runyard/workspace.yaml")
    origins = parse_workspace(doc)
    locations = rendered.values.get("codeLocations", [])
    assert [o.location_name for o in origins] == [loc["name"] for loc in locations]
    for origin, loc in zip(origins, locations, strict=True):
        assert origin.kind == "code_server" and origin.token == "t0ken"
        service, namespace, svc = origin.host.split(".")
        assert (namespace, svc) == (NAMESPACE, "svc")
        port = rendered.get("Service", service)["spec"]["ports"][0]["port"]
        assert origin.port == port == loc.get("port", 4000)
        image = f"{loc['image']['repository']}:{loc['image']['tag']}"
        assert origin.image == image
        assert origin.container_context == loc.get("containerContext", {})
        dep = rendered.get("Deployment", service)
        assert dep["spec"]["replicas"] == loc.get("replicas", 1)
        (container,) = pod_spec(dep)["containers"]
        assert container["image"] == image
        cmd = container["command"]
        assert cmd[:2] == ["runyard", "code-server"]
        opts = dict(zip(cmd[2::2], cmd[3::2], strict=True))
        assert opts["--port"] == str(port) and opts["--location-name"] == loc["name"]
        assert opts["--host"] == "0.0.0.0" and opts["--image"] == image
        assert opts.get("--module") == loc.get("module") and opts.get("--file") == loc.get("file")
        assert opts.get("--attribute") == loc.get("attribute")
        token = env_of(container)["RUNYARD_CODE_SERVER_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert token == token_ref(rendered)
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert pod_spec(dep)["automountServiceAccountToken"] is False


def token_ref(r: Rendered) -> dict[str, str]:
    existing = r.values.get("codeServerToken", {}).get("existingSecret")
    if existing:
        return existing
    name = f"{RELEASE}-runyard-code-server-token"
    assert len(r.secret_value(name, "token")) == 48
    return {"name": name, "key": "token"}


def test_instance_settings_from_values_reach_the_file(service_env, tmp_path):
    r = render(copy.deepcopy(MATRIX["two_locations"]))
    inst = load_instance(r.instance_text, tmp_path)
    assert inst.settings.run_retries.max_retries == 2
    assert inst.settings.daemon.launch_concurrency == 16
    assert inst.settings.daemon.metrics_port == 9500  # daemon.metrics, merged with the user's daemon keys
    assert inst.run_coordinator.config.max_concurrent_runs == 25
    config = inst.run_launcher.config
    assert config.job_ttl_seconds == 300 and config.image == "registry.example.com/etl:2026-11"
    assert config.image_pull_secrets == ["regcred"]
    assert config.env_from_secrets == [f"{RELEASE}-runyard-postgres", "warehouse"]


# ---- the launcher, its ServiceAccount and RBAC ---------------------------------------------------------
def documented_rbac() -> list[dict[str, Any]]:
    """The rules docs/plugins/launcher_k8s.md lists, with configmaps narrowed to `get` as it says
    for instance_config_map."""
    text = (ROOT / "docs" / "plugins" / "launcher_k8s.md").read_text()
    block = text[text.index("## RBAC"):]
    rules = yaml.safe_load(re.search(r"```yaml\n(.*?)```", block, re.S).group(1))["rules"]
    for rule in rules:
        if rule["resources"] == ["configmaps"]:
            assert "only get with instance_config_map" in block
            rule["verbs"] = ["get"]
    return rules


@pytest.mark.parametrize("case", [c for c in sorted(MATRIX) if MATRIX[c].get("launcher", {}).get("type") != "docker"])
def test_k8s_launcher_names_what_the_chart_creates(case, service_env, tmp_path):
    r = render(copy.deepcopy(MATRIX[case]))
    config = load_instance(r.instance_text, tmp_path).run_launcher.config
    assert config.namespace == NAMESPACE and config.in_cluster is True
    (sa,) = r.all("ServiceAccount")
    assert config.service_account == sa["metadata"]["name"]
    (cm,) = r.all("ConfigMap")
    assert config.instance_config_map == cm["metadata"]["name"]
    secret, key = pg_secret(r)
    assert config.env_from_secrets[0] == secret
    settings = r.values["postgres"].get("settings", {})
    assert r.instance_data()["storage"] == {"postgres": {"url": {"env": key}, **settings}}
    if not r.values["postgres"].get("existingSecret"):
        assert r.secret_value(secret, key) == PG_URL  # envFrom gives the run pods the variable
    # the run pods' home is writable (an emptyDir), as the services' is
    assert config.home == "/var/lib/runyard"
    assert {"name": "runyard-home", "mountPath": "/var/lib/runyard"} in config.volume_mounts

    (role,) = r.all("Role")
    rules = [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in role["rules"]]
    assert rules == documented_rbac()
    assert [rule.get("resourceNames") for rule in role["rules"] if rule["resources"] == ["configmaps"]] == \
        [[cm["metadata"]["name"]]]
    assert not any("secrets" in rule["resources"] for rule in role["rules"])
    (binding,) = r.all("RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    for component in ("webui", "daemon"):
        (dep,) = r.component("Deployment", component)
        assert pod_spec(dep)["serviceAccountName"] == sa["metadata"]["name"]
        assert pod_spec(dep)["automountServiceAccountToken"] is True


def test_docker_launcher(service_env, tmp_path):
    r = render(copy.deepcopy(MATRIX["docker_launcher"]))
    config = load_instance(r.instance_text, tmp_path).run_launcher.config
    assert config.docker_host == "tcp://docker-engine:2375" and config.network == "runyard"
    assert config.mount_home is False  # the services' home is no host path
    assert config.env_vars == ["RUNYARD_PG_URL"]  # the workers get the URL from the daemon's environment
    assert config.mem_limit == "2g"
    assert r.all("Role") == [] and r.all("RoleBinding") == []
    for component in ("webui", "daemon"):
        (dep,) = r.component("Deployment", component)
        assert pod_spec(dep)["automountServiceAccountToken"] is False


def test_services_get_the_database_url_from_the_secret_only(rendered):
    secret, key = pg_secret(rendered)
    for dep in rendered.component("Deployment", "webui") + rendered.component("Deployment", "daemon"):
        (container,) = pod_spec(dep)["containers"]
        assert env_of(container)[key]["valueFrom"] == {"secretKeyRef": {"name": secret, "key": key}}
        assert container["command"][:2] in (["runyard", "webui"], ["runyard", "daemon"])
        assert "-w" in container["command"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/etc/runyard"] == "config"
        assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_daemon_probe_is_opt_in(rendered):
    (dep,) = rendered.component("Deployment", "daemon")
    (container,) = pod_spec(dep)["containers"]
    assert env_of(container)["RUNYARD_DAEMON_ID_FILE"]["value"] == "/var/lib/runyard/daemon.id"
    probe = rendered.values.get("daemon", {}).get("livenessProbe", {})
    if probe.get("enabled"):
        assert container["livenessProbe"]["exec"] == {"command": ["runyard-healthcheck", "daemon"]}
        assert container["livenessProbe"]["periodSeconds"] == probe["periodSeconds"]
    else:
        assert "livenessProbe" not in container
    assert dep["spec"]["replicas"] == rendered.values.get("daemon", {}).get("replicas", 2)


def test_webui_probes_its_health_endpoint(rendered):
    (dep,) = rendered.component("Deployment", "webui")
    (container,) = pod_spec(dep)["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert dep["spec"]["replicas"] == rendered.values.get("webui", {}).get("replicas", 1)


def test_no_password_outside_secrets():
    r = render(copy.deepcopy(MATRIX["two_locations"]))
    holders = {(obj["kind"], obj["metadata"]["name"]) for _, obj in r.objects if PG_PASSWORD in yaml.safe_dump(obj)}
    assert holders == {("Secret", f"{RELEASE}-runyard-postgres"), ("Secret", f"{RELEASE}-runyard-migrate-postgres")}
    assert PG_PASSWORD not in r.files["runyard/templates/NOTES.txt"]
    for _, obj in r.objects:
        if obj["kind"] == "ConfigMap":
            assert "password" not in yaml.safe_dump(obj).lower()


def test_webui_password_never_rendered():
    r = render(copy.deepcopy(MATRIX["external_secret"]))
    assert r.instance_data("webui.yaml")["webui"]["auth"] == {"username": "ops",
                                                              "password": {"env": "RUNYARD_WEBUI_PASSWORD"}}
    assert r.all("Secret") == []  # every credential comes from the operator's Secrets


# ---- Prometheus metrics -------------------------------------------------------------------------------
def scrape_annotations(dep: dict[str, Any]) -> dict[str, str]:
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("prometheus.io/")}


def test_daemon_metrics_port_is_opt_in(rendered, service_env, tmp_path):
    """daemon.metrics.enabled: the daemon's file carries the port on every interface, the container
    names it `metrics` and the pods invite a scrape of it; otherwise none of the three."""
    metrics = rendered.values.get("daemon", {}).get("metrics", {})
    settings = load_instance(rendered.instance_text, tmp_path).settings.daemon
    (dep,) = rendered.component("Deployment", "daemon")
    (container,) = pod_spec(dep)["containers"]
    if metrics.get("enabled"):
        port = metrics.get("port", 9464)
        assert (settings.metrics_port, settings.metrics_host) == (port, "0.0.0.0")
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        assert scrape_annotations(dep) == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                           "prometheus.io/path": "/metrics"}
    else:
        assert "metrics_port" not in rendered.instance_data().get("daemon", {})
        assert settings.metrics_port is None
        assert "ports" not in container and scrape_annotations(dep) == {}


def test_daemon_metrics_keep_the_users_daemon_keys(service_env, tmp_path):
    r = render({**BASE, "daemon": {"metrics": {"enabled": True}},
                "instance": {"settings": {"daemon": {"lease_seconds": 30, "launch_concurrency": 4}}}})
    assert r.instance_data()["daemon"] == {"lease_seconds": 30, "launch_concurrency": 4,
                                           "metrics_port": 9464, "metrics_host": "0.0.0.0"}
    assert load_instance(r.instance_text, tmp_path).settings.daemon.lease_seconds == 30
    (dep,) = r.component("Deployment", "daemon")
    assert scrape_annotations(dep)["prometheus.io/port"] == "9464"


def test_webui_pods_invite_a_scrape_only_without_credentials(rendered, service_env, tmp_path):
    """The web UI's /metrics is on its own port; its pods are annotated when runyard serves it and
    a scrape needs no credentials (an annotation cannot carry them)."""
    webui = load_instance(rendered.webui_text, tmp_path).section("webui")
    (dep,) = rendered.component("Deployment", "webui")
    if webui.metrics_enabled and webui.auth is None:
        assert scrape_annotations(dep) == {"prometheus.io/scrape": "true", "prometheus.io/port": str(webui.port),
                                           "prometheus.io/path": "/metrics"}
    else:
        assert scrape_annotations(dep) == {}
    notes = rendered.files["runyard/templates/NOTES.txt"]
    assert ("behind basic auth" in notes) is (webui.metrics_enabled and webui.auth is not None)


def test_metrics_matrix_covers_every_case():
    """The matrix renders each branch above: daemon metrics on and off; the web UI scraped, behind
    auth, and without metrics."""
    daemon = {bool(v.get("daemon", {}).get("metrics", {}).get("enabled")) for v in MATRIX.values()}
    webui = {("off" if v.get("webui", {}).get("settings", {}).get("metrics_enabled") is False
              else "auth" if v.get("webui", {}).get("auth", {}).get("enabled") else "open") for v in MATRIX.values()}
    assert daemon == {True, False} and webui == {"off", "auth", "open"}


# ---- migrations ---------------------------------------------------------------------------------------
def migrate_job(r: Rendered) -> dict[str, Any]:
    (job,) = r.component("Job", "migrate")
    return job


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(rendered):
    job = migrate_job(rendered)
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert notes["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["runyard", "instance", "migrate"]
    env = env_of(container)
    # hooks run before the release's ConfigMap and Secrets exist: the Job needs none of them
    assert "configMap" not in yaml.safe_dump(job)
    secret, key = pg_secret(rendered)
    ref = env[key]["valueFrom"]["secretKeyRef"]
    if rendered.values["postgres"].get("existingSecret"):
        assert ref == {"name": secret, "key": key}
    else:
        hook_secret = rendered.get("Secret", ref["name"])
        assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < \
            int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    storage = yaml.safe_load(env["RUNYARD_INSTANCE_YAML"]["value"])
    assert storage == {"storage": rendered.instance_data()["storage"]}


def test_migrations_can_be_turned_off():
    r = render({**BASE, "migrations": {"enabled": False}})
    assert r.all("Job") == [] and r.names("Secret") == [f"{RELEASE}-runyard-postgres",
                                                         f"{RELEASE}-runyard-code-server-token"]


def test_migration_job_command_migrates_a_real_database(tmp_path, monkeypatch):
    """The hook Job's own command and environment, run against PostgreSQL: it creates the schema on an
    empty database, does nothing the second time, and the daemon's instance file then opens it."""
    from runyard_storage_postgres.testing import admin_url, create_database, drop_database, require_server

    base = require_server(admin_url())
    url = create_database(base, prefix="runyard_helm")
    try:
        r = render({"postgres": {"url": url}})
        job = migrate_job(r)
        (container,) = pod_spec(job)["containers"]
        env = {k: v["value"] for k, v in env_of(container).items() if "value" in v}
        ref = env_of(container)["RUNYARD_PG_URL"]["valueFrom"]["secretKeyRef"]
        env["RUNYARD_PG_URL"] = r.secret_value(ref["name"], ref["key"])
        env["RUNYARD_HOME"] = str(tmp_path / "home")
        proc_env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")} | env
        cmd = [sys.executable, "-m", *container["command"]]
        first = subprocess.run(cmd, env=proc_env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("Migrated storage from revision (empty) to "), first.stdout
        second = subprocess.run(cmd, env=proc_env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0 and "nothing to do" in second.stdout, second.stdout + second.stderr

        monkeypatch.setenv("RUNYARD_PG_URL", url)
        inst = Instance.from_yaml(str(tmp_path / "home"), r.instance_text)
        try:
            assert inst.storage.count_runs() == 0  # schema at head: the daemon and web UI start on it
        finally:
            inst.dispose()
    finally:
        drop_database(url, base)


# ---- bad values fail at render time, naming the key ----------------------------------------------------
@pytest.mark.parametrize(("values", "expected"), [
    ({**BASE, "launcher": {"type": "kubernetes"}}, "at '/launcher/type': value must be one of 'k8s', 'docker'"),
    ({}, "at '/postgres'"),
    ({"postgres": {}}, "at '/postgres': missing property 'url'"),
    ({"postgres": {"url": PG_URL, "existingSecret": {"name": "a", "key": "B"}}}, "at '/postgres': 'oneOf' failed"),
    ({"postgres": {"existingSecret": {"name": "a", "key": "bad-name"}}}, "at '/postgres/existingSecret/key'"),
    ({"postgres": {"url": PG_URL, "settings": {"password": "x"}}}, "at '/postgres/settings/password'"),
    ({**BASE, "webui": {"replicas": 0}}, "at '/webui/replicas': minimum: got 0, want 1"),
    ({**BASE, "daemon": {"replicas": 0}}, "at '/daemon/replicas': minimum: got 0, want 1"),
    ({**BASE, "codeLocations": [{**ETL, "replicas": 0}]}, "at '/codeLocations/0/replicas': minimum: got 0, want 1"),
    ({**BASE, "codeLocations": [{"name": "etl", "image": {"repository": "x"}}]}, "missing property 'module'"),
    ({**BASE, "codeLocations": [{**ETL, "name": "Bad_Name"}]}, "at '/codeLocations/0/name'"),
    ({**BASE, "launcher": {"type": "docker"}}, "at '/launcher"),
    ({**BASE, "launcher": {"type": "k8s", "k8s": {"config": {"namespace": "other"}}}},
     "at '/launcher/k8s/config/namespace'"),
    ({**BASE, "webui": {"auth": {"enabled": True}}}, "at '/webui/auth': missing property 'existingSecret'"),
    ({**BASE, "instance": {"settings": {"storage": {}}}}, "at '/instance/settings': additional properties 'storage'"),
    ({**BASE, "replicas": 2}, "additional properties 'replicas' not allowed"),
    ({**BASE, "daemon": {"metrics": {"enabled": True, "port": 0}}}, "at '/daemon/metrics/port': minimum: got 0"),
    ({**BASE, "instance": {"settings": {"daemon": {"metrics_port": 9464}}}},
     "at '/instance/settings/daemon/metrics_port'"),
    ({**BASE, "webui": {"settings": {"metrics_enabled": "no"}}}, "at '/webui/settings/metrics_enabled'"),
])
def test_bad_values_fail_at_render_time_naming_the_key(values, expected):
    with pytest.raises(helm_python.HelmValuesError) as err:
        render(values)
    assert expected in str(err.value), str(err.value)


def test_schema_is_strict_everywhere_but_the_pass_through_blocks():
    """Every object the chart reads key by key refuses unknown keys; the free-form blocks are passed
    to runyard (or Kubernetes) whole, which validate them (the tests above load the result)."""
    free = {"postgres.settings", "instance.runCoordinator", "launcher.k8s.config", "launcher.docker.config",
            "webui.settings", "codeLocations[].containerContext", "serviceAccount.annotations",
            "ingress.annotations", "podSecurityContext", "securityContext", "nodeSelector", "affinity",
            "instance.settings.*", "*.resources", "codeLocations[].env[]", "tolerations[]"}
    seen = set()

    def walk(node: Any, key: str) -> None:
        if not isinstance(node, dict):
            return
        for branch in node.get("oneOf", []):
            walk(branch, key)
        if node.get("type") == "object":
            generic = {key.rsplit(".", 1)[0] + ".*", "*." + key.rsplit(".", 1)[-1], key}
            if free & generic:
                seen.update(free & generic)
            else:
                assert node.get("additionalProperties") is False, f"{key or 'the root'} accepts unknown keys"
            for name, child in node.get("properties", {}).items():
                walk(child, f"{key}.{name}" if key else name)
        if node.get("type") == "array":
            walk(node.get("items"), f"{key}[]")

    walk(chart().schema, "")
    assert seen == free


# ---- the values reference ------------------------------------------------------------------------------
def test_packaged_chart_renders_the_same(tmp_path):
    """`helm package` keeps every template (.helmignore drops none) and the schema."""
    archive = helm_python.package(str(CHART_DIR), destination=str(tmp_path))
    packaged = helm_python.Chart.load(archive)
    values = copy.deepcopy(MATRIX["two_locations"])
    assert packaged.schema == chart().schema
    strip = re.compile(r"(token: |checksum/config: ).*")  # a fresh random token per render
    same = {k: strip.sub("", v) for k, v in packaged.render(values, name=RELEASE, namespace=NAMESPACE).items()}
    assert same == {k: strip.sub("", v) for k, v in render(copy.deepcopy(values)).files.items()}


def test_values_reference_is_generated_from_the_schema():
    sys.path.insert(0, str(ROOT / "deploy" / "helm"))
    try:
        import values_reference
    finally:
        sys.path.pop(0)
    assert values_reference.current() == values_reference.render(), \
        "deploy/helm/runyard/README.md is stale: run python deploy/helm/values_reference.py"
    keys = [row[0] for row in values_reference.rows(
        __import__("json").loads((CHART_DIR / "values.schema.json").read_text()), {})]
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

    def leaves(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict) and node:
            return [k for key, value in node.items() for k in leaves(value, f"{prefix}.{key}" if prefix else key)]
        return [prefix]

    # every default in values.yaml is a documented key, or inside a documented free-form block
    for leaf in leaves(defaults, ""):
        parts = leaf.split(".")
        assert any(".".join(parts[:n]) in keys for n in range(1, len(parts) + 1)), leaf
    table = values_reference.current()
    assert all(f"| `{key}` |" in table for key in keys)
