"""Who may make a code server run user code: a shared token (``Authorization: Bearer``), JSON-only
POSTs and no browser cross-origin requests. Local servers a workspace starts get a generated token
through their environment; remote ones are configured with ``--token-env`` or
``RUNYARD_CODE_SERVER_TOKEN`` and reached through a workspace ``token: {env: NAME}``.

Needs: nothing beyond Python. Real ``runyard code-server`` subprocesses, raw sockets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from codeserver_proc import DEFS, CodeServerProcess, child_env, json_error, raw_http, request_bytes

from runyard.codeserver.client import CodeServerClient
from runyard.codeserver.errors import CodeServerError
from runyard.errors import ConfigError
from runyard.workspace.workspace import Workspace

TOKEN = "s3cret-token-for-tests"
JSON = {"Content-Type": "application/json"}


def bearer(token: str = TOKEN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server configured through RUNYARD_CODE_SERVER_TOKEN."""
    d = tmp_path_factory.mktemp("guarded")
    srv = CodeServerProcess(d, env=child_env(d / "home", RUNYARD_CODE_SERVER_TOKEN=TOKEN))
    yield srv
    assert srv.stop() == 0


def test_without_or_with_a_wrong_token_every_endpoint_is_401(guarded):
    for method, path, body in [("GET", "/v1/health", None), ("GET", "/v1/snapshot", None),
                               ("POST", "/v1/reload", b"{}"), ("POST", "/v1/sensors/pings/evaluate", b"{}"),
                               ("POST", "/v1/jobs/etl/validate", b"{}"), ("GET", "/v1/nothing", None)]:
        for headers in [JSON, bearer("wrong", **JSON), {"Authorization": TOKEN, **JSON},
                        bearer(TOKEN + "x", **JSON), bearer("", **JSON)]:
            status, kind, message = json_error(raw_http(guarded.port, request_bytes(method, path, body, headers)))
            assert (status, kind) == (401, "unauthorized"), (method, path, headers)
            assert "Authorization: Bearer" in message and TOKEN not in message
    status, headers, _ = raw_http(guarded.port, request_bytes("GET", "/v1/snapshot"))
    assert headers.get("www-authenticate") == "Bearer"


def test_with_the_token_it_works(guarded):
    status, _, body = raw_http(guarded.port, request_bytes("GET", "/v1/health", None, bearer()))
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = raw_http(guarded.port, request_bytes("POST", "/v1/sensors/pings/evaluate", b"{}",
                                                           bearer(**JSON)))
    assert status == 200 and json.loads(body)["run_requests"][0]["run_key"] == "one"
    client = CodeServerClient("127.0.0.1", guarded.port, token=TOKEN)
    assert client.health().ok and client.snapshot().job_names == ["etl"]
    assert client.reload().status == "ok"


def test_the_client_without_the_token_gets_a_clear_error(guarded):
    with pytest.raises(CodeServerError) as info:
        CodeServerClient("127.0.0.1", guarded.port).snapshot()
    assert info.value.status == 401 and "token" in str(info.value)


def test_liveness_needs_no_token_and_tells_nothing(guarded):
    status, _, body = raw_http(guarded.port, request_bytes("GET", "/healthz"))
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_posts_must_be_json(guarded):
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         None]:
        headers = bearer() if content_type is None else bearer(**{"Content-Type": content_type})
        status, kind, message = json_error(raw_http(guarded.port, request_bytes("POST", "/v1/reload", b"{}",
                                                                                headers)))
        assert (status, kind) == (415, "unsupported_media_type") and "application/json" in message
    status, _, _ = raw_http(guarded.port, request_bytes("POST", "/v1/reload", b"{}",
                                                        bearer(**{"Content-Type": "application/json; charset=utf-8"})))
    assert status == 200


@pytest.mark.parametrize("header", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
def test_browser_cross_origin_requests_are_403(guarded, header):
    # even with the token: a browser page must never drive a code server
    for method, body in [("POST", b"{}"), ("GET", None)]:
        status, kind, message = json_error(raw_http(guarded.port, request_bytes(
            method, "/v1/reload" if body else "/v1/snapshot", body, bearer(**JSON, **header))))
        assert (status, kind) == (403, "forbidden"), header
        assert next(iter(header)) in message


def test_the_token_is_not_on_the_command_line_nor_left_to_user_code(guarded):
    cmdline = Path(f"/proc/{guarded.proc.pid}/cmdline").read_bytes()
    assert TOKEN.encode() not in cmdline
    # the definitions were imported after the server took the token out of its environment
    assert (guarded.directory / "token_seen_by_user_code").read_text() == "[]"


# ---- without a token ---------------------------------------------------------------------------------

def test_loopback_without_a_token_works_but_warns_and_still_refuses_browsers(tmp_path):
    srv = CodeServerProcess(tmp_path)
    try:
        assert CodeServerClient("127.0.0.1", srv.port).health().ok
        status, kind, _ = json_error(raw_http(srv.port, request_bytes("POST", "/v1/reload", b"{}",
                                                                      {"Content-Type": "text/plain"})))
        assert status == 415
        status, kind, _ = json_error(raw_http(srv.port, request_bytes("POST", "/v1/reload", b"{}",
                                                                      {**JSON, "Origin": "http://evil.example"})))
        assert status == 403
    finally:
        assert srv.stop() == 0
    assert any("without a token" in line for line in srv.output), srv.output


def _start_and_fail(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "defs.py").write_text(DEFS)
    return subprocess.run([sys.executable, "-m", "runyard", "code-server", "-f", "defs.py", "--port", "0", *args],
                          cwd=tmp_path, env=env or child_env(tmp_path), capture_output=True, text=True, timeout=60)


def test_a_public_bind_without_a_token_is_refused(tmp_path):
    proc = _start_and_fail(tmp_path, "--host", "0.0.0.0")
    assert proc.returncode == 2, proc.stderr
    assert "--insecure-no-auth" in proc.stderr and "RUNYARD_CODE_SERVER_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "token_seen_by_user_code").exists()  # refused before importing user code


def test_a_public_bind_with_a_token_or_insecure_flag_starts(tmp_path):
    srv = CodeServerProcess(tmp_path / "a", "--host", "0.0.0.0", "--token-env", "MY_TOKEN",
                            env=child_env(tmp_path, MY_TOKEN=TOKEN))
    try:
        assert CodeServerClient("127.0.0.1", srv.port, token=TOKEN).health().ok
        assert json_error(raw_http(srv.port, request_bytes("GET", "/v1/health")))[0] == 401
    finally:
        assert srv.stop() == 0
    srv = CodeServerProcess(tmp_path / "b", "--host", "0.0.0.0", "--insecure-no-auth")
    try:
        assert CodeServerClient("127.0.0.1", srv.port).health().ok
    finally:
        assert srv.stop() == 0
    assert any("--insecure-no-auth" in line for line in srv.output)


def test_token_env_naming_an_unset_variable_is_a_clear_error(tmp_path):
    proc = _start_and_fail(tmp_path, "--token-env", "NOT_SET_ANYWHERE")
    assert proc.returncode == 2 and "NOT_SET_ANYWHERE" in proc.stderr and "Traceback" not in proc.stderr


# ---- workspaces ------------------------------------------------------------------------------------

def test_workspace_servers_get_a_generated_token(tmp_path):
    (tmp_path / "defs.py").write_text(DEFS)
    (tmp_path / "workspace.yaml").write_text("load_from:\n  - python_file: defs.py\n")
    with Workspace.from_file(str(tmp_path / "workspace.yaml"), env=child_env(tmp_path)) as ws:
        [loc] = ws.locations()
        assert loc.status == "ok", loc.error
        port = loc.client.port
        assert loc.client.evaluate_sensor("pings").run_requests[0].run_key == "one"
        # nobody else gets in: not without the token, not from the command line
        assert json_error(raw_http(port, request_bytes("GET", "/v1/snapshot")))[0] == 401
        cmdline = Path(f"/proc/{loc.pid}/cmdline").read_bytes()
        assert loc.client.token and loc.client.token.encode() not in cmdline
        assert ws.reload()[0]["status"] == "ok"
    assert (tmp_path / "token_seen_by_user_code").read_text() == "[]"


def test_workspace_code_server_entry_takes_the_token_from_the_environment(tmp_path, monkeypatch):
    srv = CodeServerProcess(tmp_path / "remote", env=child_env(tmp_path, RUNYARD_CODE_SERVER_TOKEN=TOKEN))
    try:
        ws_file = tmp_path / "workspace.yaml"
        ws_file.write_text(textwrap.dedent(f"""\
            load_from:
              - code_server: {{port: {srv.port}, location_name: remote, token: {{env: REMOTE_TOKEN}}}}
        """))
        monkeypatch.setenv("REMOTE_TOKEN", TOKEN)
        with Workspace.from_file(str(ws_file)) as ws:
            [loc] = ws.locations()
            assert loc.status == "ok", loc.error
            assert TOKEN not in json.dumps(loc.describe()) and TOKEN not in repr(loc.origin)
        monkeypatch.setenv("REMOTE_TOKEN", "wrong")
        with Workspace.from_file(str(ws_file)) as ws:
            [loc] = ws.locations()
            assert loc.status == "unavailable" and "token" in loc.error.message
        monkeypatch.delenv("REMOTE_TOKEN")
        with pytest.raises(ConfigError) as info:
            Workspace.from_file(str(ws_file))
        assert "REMOTE_TOKEN" in str(info.value) and "workspace.yaml" in str(info.value)
    finally:
        assert srv.stop() == 0


def test_a_literal_token_in_the_workspace_file_is_refused(tmp_path):
    ws_file = tmp_path / "workspace.yaml"
    ws_file.write_text("load_from:\n  - code_server: {port: 4000, token: s3cret}\n")
    with pytest.raises(ConfigError) as info:
        Workspace.from_file(str(ws_file))
    message = str(info.value)
    assert "token" in message and "{env: NAME}" in message and "line 2" in message and "s3cret" not in message
