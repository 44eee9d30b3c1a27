"""Secrets are scoped to the process that needs them: a plugin section's ``{env: ...}`` (the web UI's
password) is resolved only where its plugin asks for it, and the processes runyard starts — run
workers (cold and from the warm zygote) and code servers, which run user code — do not inherit the
variables named only by parts of the instance file they do not use. Run workers still work.

Needs: real subprocesses (run workers, a zygote, code servers) and SQLite files under tmp_path;
runyard-webui installed (it owns the ``webui:`` section); Linux /proc.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from runyard import Instance
from runyard.errors import ConfigError
from runyard.instance.instance import CODE_SERVER_KEYS, RUN_WORKER_KEYS

PASSWORD_ENV = "RUNYARD_TEST_SCOPE_WEBUI_PW"
PASSWORD = "s3cret-webui-pw-271828"
STORAGE_ENV = "RUNYARD_TEST_SCOPE_DB_PATH"
LAUNCHER_ENV = "RUNYARD_TEST_SCOPE_LAUNCHER_TOKEN"

INSTANCE = f"""
storage:
  sqlite:
    path: {{env: {STORAGE_ENV}}}
webui:
  auth:
    username: admin
    password: {{env: {PASSWORD_ENV}}}
"""

# Writes what the run worker (and the code server importing it) can see; an op of job ``spy``.
SPY_DEFS = '''
import json
import os

from runyard import Definitions, job, op

OUT = os.environ.get("RUNYARD_TEST_SCOPE_OUT")
if OUT:  # at import: in a code server as in a run worker
    with open(f"{OUT}/import-{os.getpid()}.json", "w") as f:
        json.dump({"environ": dict(os.environ), "proc": open("/proc/self/environ", "rb").read().decode("latin-1")}, f)


@op
def look(context) -> None:
    with open(f"{OUT}/op-{os.getpid()}.json", "w") as f:
        json.dump({"environ": dict(os.environ), "proc": open("/proc/self/environ", "rb").read().decode("latin-1")}, f)
    context.log.info("looked")


@job
def spy():
    look()


defs = Definitions(jobs=[spy])
'''


def test_a_worker_opens_the_instance_without_the_web_ui_variable(home, monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, str(home / "runyard.db"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    inst = Instance.from_yaml(str(home), INSTANCE)  # what a run worker does: no error for the password
    assert inst.storage is not None
    with pytest.raises(ConfigError, match=PASSWORD_ENV):
        inst.section("webui")  # only the process that uses the section needs the variable
    inst.dispose()


def test_a_bad_value_in_a_section_names_the_variable_when_used(home, monkeypatch):
    monkeypatch.setenv("RUNYARD_TEST_SCOPE_PORT", "not-a-port")
    inst = Instance.from_yaml(str(home), "webui:\n  port: {env: RUNYARD_TEST_SCOPE_PORT}\n")
    with pytest.raises(ConfigError) as info:
        inst.section("webui")
    assert "webui.port" in str(info.value) and "RUNYARD_TEST_SCOPE_PORT" in str(info.value)
    assert "line 2" in str(info.value)


def test_child_environ_drops_what_the_child_does_not_use(home):
    inst = Instance.from_yaml(str(home), INSTANCE + f"run_launcher:\n  process:\n    env:\n"
                                                   f"      TOKEN: {{env: {LAUNCHER_ENV}}}\n")
    base = {PASSWORD_ENV: PASSWORD, STORAGE_ENV: "x.db", LAUNCHER_ENV: "t", "PATH": "/bin", "HOME": "/root"}
    worker = inst.child_environ(RUN_WORKER_KEYS, base=base)
    assert worker == {STORAGE_ENV: "x.db", "PATH": "/bin", "HOME": "/root"}
    assert inst.child_environ(CODE_SERVER_KEYS, base=base) == {"PATH": "/bin", "HOME": "/root"}
    # what a launcher is told to pass explicitly is passed
    assert inst.child_environ(RUN_WORKER_KEYS, base=base, extra={PASSWORD_ENV: "given"})[PASSWORD_ENV] == "given"


def _seen(out: Path, prefix: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{prefix}-*.json"))]


def _assert_no_password(records: list[dict]) -> None:
    assert records
    for record in records:
        assert PASSWORD_ENV not in record["environ"] and PASSWORD not in json.dumps(record["environ"])
        assert PASSWORD not in record["proc"], "the password is in /proc/self/environ"


@pytest.fixture
def scoped_home(home, tmp_path, write_defs):
    (home / "runyard.yaml").write_text(INSTANCE)
    out = tmp_path / "seen"
    out.mkdir()
    env = {PASSWORD_ENV: PASSWORD, STORAGE_ENV: str(home / "runyard.db"), "RUNYARD_TEST_SCOPE_OUT": str(out)}
    return write_defs(SPY_DEFS, name="spy_defs.py"), out, env


def test_cold_worker_from_the_cli_cannot_see_the_web_ui_password(cli, scoped_home, wait_for):
    defs, out, env = scoped_home
    proc = cli("job", "launch", "-f", defs, "-j", "spy", env=env)
    assert proc.returncode == 0, proc.stderr
    run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    wait_for(lambda: cli.json("run", "show", run_id, "--json", env=env)["status"] in ("SUCCESS", "FAILURE"),
             timeout=60, what="the run to finish")
    assert cli.json("run", "show", run_id, "--json", env=env)["status"] == "SUCCESS"
    _assert_no_password(_seen(out, "op"))
    assert all(r["environ"][STORAGE_ENV] for r in _seen(out, "op"))  # what the worker uses, it keeps


def test_warm_worker_and_code_server_of_runyard_dev_cannot_see_it(cli, home, scoped_home, wait_for):
    """``runyard dev`` (daemon + web UI + code server), launching through the web UI's GraphQL: the
    zygote-forked worker and the code server see no password; the web UI still asks for it."""
    import base64
    import urllib.request

    defs, out, env = scoped_home
    dev = cli.popen("dev", "-f", defs, "-p", "0", env=env)
    try:
        url = None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = dev.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if m and "web" in line.lower():
                url = m.group(1)
        assert url, "".join(lines) + (dev.stderr.read() if dev.poll() is not None else "")
        query = json.dumps({"query": 'mutation { launchRun(location: "spy_defs", jobName: "spy") { ok message '
                                     'run { runId } } }'}).encode()

        def post(auth: bool) -> tuple[int, dict]:
            headers = {"Content-Type": "application/json", "Origin": url}
            if auth:
                headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
            req = urllib.request.Request(url + "/graphql", data=query, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, {}

        assert post(auth=False)[0] == 401  # the web UI resolved its password
        status, body = post(auth=True)
        assert status == 200 and body["data"]["launchRun"]["ok"], body
        run_id = body["data"]["launchRun"]["run"]["runId"]
        wait_for(lambda: cli.json("run", "show", run_id, "--json", env=env)["status"] in ("SUCCESS", "FAILURE"),
                 timeout=60, what="the run to finish")
        shown = cli.json("run", "show", run_id, "--json", env=env)
        assert shown["status"] == "SUCCESS" and shown["launcher_info"].get("mode") == "warm", shown
        _assert_no_password(_seen(out, "op"))
        _assert_no_password(_seen(out, "import"))  # the code server (and the worker) importing the defs
    finally:
        dev.terminate()
        try:
            dev.wait(30)
        except Exception:  # noqa: BLE001
            dev.kill()
            dev.wait()
