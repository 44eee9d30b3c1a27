"""The web UI's authentication hooks and the plain-HTTP warning against a real ``runyard webui``
(docs/auth.md, docs/plugin-authors.md): a trusted-proxy-header plugin installed as a distribution
authenticates through ``runyard_web_authenticate`` and vetoes through ``runyard_web_authorize``; a
password or token sent over plain HTTP from another machine is warned about once. Needs: a
non-loopback IPv4 address on this machine."""

from __future__ import annotations

import socket
import urllib.parse

import pytest
from auth_support import Client, add_token, hello_config, start_secured

PROXY_PLUGIN = """
    from runyard import hookimpl
    from runyard.auth import Action, AuthError, Principal, Role

    #: set by the proxy in front of the web UI, which strips it from what clients send
    USER_HEADER, ROLE_HEADER = "X-Proxy-User", "X-Proxy-Role"


    @hookimpl
    def runyard_web_authenticate(request, web):
        user = request.headers.get(USER_HEADER)
        if user is None:
            return None  # not through the proxy: the web UI's own users and tokens decide
        if user == "mallory":
            raise AuthError("mallory is locked out")
        return Principal(name=user, role=Role.parse(request.headers.get(ROLE_HEADER, "viewer")), via="proxy")


    @hookimpl
    def runyard_web_authorize(principal, action, location, web):
        if principal.name == "bob" and action is Action.TOGGLE_INSTIGATOR:
            return False
        if principal.name == "carol" and action is Action.LAUNCH_RUN and location == "defs_webui":
            return False
        return None
"""


def _proxied(ui, user: str, role: str | None = None) -> Client:
    client = Client(ui, None)
    headers = {"X-Proxy-User": user, **({"X-Proxy-Role": role} if role else {})}
    original = client.request

    def request(path, body=None, extra=None, timeout=60):
        return original(path, body, {**headers, **(extra or {})}, timeout)

    client.request = request
    return client


def test_a_trusted_proxy_plugin_authenticates_and_vetoes(start_webui, instance_file, tmp_path, site):
    env = site("proxyauth", PROXY_PLUGIN)
    ui = start_secured(start_webui, instance_file, tmp_path, env=env)
    alice = _proxied(ui, "alice", "editor")
    assert alice.gql("{ viewer { name role via } }")["viewer"] == {"name": "alice", "role": "editor", "via": "proxy"}
    assert alice.gql('mutation { startSchedule(name: "nightly_hello") { ok } }')["startSchedule"]["ok"]
    assert _proxied(ui, "dave").launch(config=hello_config())["code"] == "FORBIDDEN"  # a viewer
    bob = _proxied(ui, "bob", "admin")
    answer = bob.gql('mutation { stopSchedule(name: "nightly_hello") { ok code message } }')["stopSchedule"]
    assert answer["code"] == "FORBIDDEN" and "refused by an authorization plugin" in answer["message"]
    carol = _proxied(ui, "carol", "launcher")
    assert carol.launch(config=hello_config())["code"] == "FORBIDDEN"
    assert carol.launch("other_job", "other")["ok"]
    status, text, _ = _proxied(ui, "mallory").request("/runs")
    assert status == 401 and "mallory is locked out" in text
    # without the header, the web UI's own users still log in
    assert Client.user(ui, "vi").gql("{ viewer { via } }")["viewer"]["via"] == "basic"
    assert Client(ui, None).get("/runs") == 401
    actors = [(e["actor"], e["via"], e["result"]) for e in Client.user(ui, "ad").gql(
        "{ auditLog { entries { actor via result } } }")["auditLog"]["entries"]]
    assert ("bob", "proxy", "refused") in actors and ("alice", "proxy", "ok") in actors


def _this_machines_address() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: only picks the outgoing interface
        address = probe.getsockname()[0]
    finally:
        probe.close()
    if address.startswith("127."):
        pytest.fail("this test needs a non-loopback IPv4 address on this machine", pytrace=False)
    return address


def test_credentials_over_plain_http_from_another_machine_are_warned_about(start_webui, instance_file, tmp_path,
                                                                            home):
    address = _this_machines_address()
    ui = start_secured(start_webui, instance_file, tmp_path, "--host", "0.0.0.0",
                       extra=f"  allowed_hosts: ['{address}']\n")
    port = urllib.parse.urlsplit(ui.url).port
    _, secret = add_token(home, "ci", "viewer")
    ui.url = f"http://127.0.0.1:{port}"
    assert Client.user(ui, "vi").get("/runs") == 200  # from loopback: nothing to warn about
    ui.url = f"http://{address}:{port}"
    for _ in range(2):  # warned once per credential
        assert Client.user(ui, "vi").get("/runs") == 200
        assert Client.token(ui, secret).get("/runs") == 200
    ui.stop()
    stderr = ui.proc.stderr.read()
    assert "passwords and API tokens sent to this web UI travel in clear over plain HTTP" in stderr  # the banner
    user_warning = f"the password of user vi came over plain HTTP from {address}"
    token_warning = "API token ci ("
    assert stderr.count(user_warning) == 1, stderr
    assert stderr.count(token_warning) == 1 and f"came over plain HTTP from {address}" in stderr, stderr
    assert "127.0.0.1" not in stderr.split("travel in clear")[1]
