"""The web UI's security defaults against a real ``runyard webui`` (and ``runyard dev``) process: no
public bind without authentication, the real bound address in the banner, ``Host`` checked against
the allowed hosts (DNS rebinding), cross-site mutations refused, anti-framing and content-security
headers, and read-only mode refusing every mutation of the schema. Needs: nothing beyond the dev venv."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

from graphql import GraphQLNonNull, get_named_type

from runyard.testing import wait_until

DEFS = Path(__file__).with_name("defs_webui.py")


def _host(ui) -> str:
    return urllib.parse.urlsplit(ui.url).netloc


# ---- public bind -------------------------------------------------------------------------------
def test_a_public_bind_without_auth_is_refused(cli):
    proc = cli("webui", "--host", "0.0.0.0", "--port", "0", timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "webui.auth" in proc.stderr and "--insecure-no-auth" in proc.stderr and "0.0.0.0" in proc.stderr
    assert "serving on" not in proc.stdout


def test_runyard_dev_refuses_a_public_bind_without_auth(cli, instance_file, tiny_defs):
    instance_file("webui:\n  host: 0.0.0.0\n  port: 0\n")
    proc = cli("dev", "-f", str(tiny_defs), timeout=90)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "webui.auth" in proc.stderr and "--insecure-no-auth" in proc.stderr


def test_insecure_no_auth_serves_on_every_interface_and_says_so(start_webui):
    ui = start_webui("--host", "0.0.0.0", "--insecure-no-auth")
    assert re.match(r"http://0\.0\.0\.0:\d+$", ui.url), ui.url  # the real bound address
    banner = "".join(ui.lines)
    assert "every interface" in banner and "no authentication" in banner.lower(), banner
    # reachable through loopback, with the loopback name as Host
    port = urllib.parse.urlsplit(ui.url).port
    ui.url = f"http://127.0.0.1:{port}"
    assert ui.get("/healthz")[0] == 200
    assert ui.gql("{ instance { version } }")


def test_a_public_bind_with_auth_starts(start_webui, instance_file):
    instance_file("webui:\n  auth:\n    username: ops\n    password: s3cret\n")
    ui = start_webui("--host", "0.0.0.0")
    ui.auth = ("ops", "s3cret")
    ui.url = f"http://127.0.0.1:{urllib.parse.urlsplit(ui.url).port}"
    assert ui.gql("{ instance { version } }")


def test_runyard_dev_takes_insecure_no_auth_too(cli, instance_file, tiny_defs):
    instance_file("webui:\n  host: 0.0.0.0\n  port: 0\n")
    proc = cli.popen("dev", "-f", str(tiny_defs), "--insecure-no-auth")
    lines: list[str] = []
    try:
        def banner():
            line = proc.stdout.readline()
            lines.append(line)
            return re.search(r"web UI: (http://\S+)", line) or (proc.poll() is not None and not line)

        found = wait_until(banner, timeout=90, interval=0, what="runyard dev's banner")
        assert found is not True and found.group(1).startswith("http://0.0.0.0:"), "".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- Host, Origin, headers ---------------------------------------------------------------------
def test_host_header_must_be_an_allowed_host(webui):
    port = urllib.parse.urlsplit(webui.url).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        status, _ = webui.request("/runs", headers={"Host": host})
        assert status == 200, host
    for path in ("/runs", "/graphql", "/static/app.js"):
        status, text = webui.request(path, headers={"Host": f"attacker.example:{port}"})
        assert status == 421, (path, status, text)
        assert "attacker.example" in text and "webui.allowed_hosts" in text
    status, text = webui.request("/graphql", json.dumps({"query": "{ instance { version } }"}).encode(),
                                 {"Host": "attacker.example", "Content-Type": "application/json"})
    assert status == 421 and json.loads(text)["errors"][0]["message"]
    # load balancers probe by address: /healthz answers whatever the Host
    assert webui.request("/healthz", headers={"Host": "10.1.2.3:3000"})[0] == 200


def test_allowed_hosts_setting(start_webui, instance_file):
    instance_file("webui:\n  allowed_hosts: [runyard.internal, '.corp.example']\n")
    ui = start_webui()
    assert ui.request("/runs", headers={"Host": "runyard.internal:3000"})[0] == 200
    assert ui.request("/runs", headers={"Host": "ui.corp.example"})[0] == 200
    assert ui.request("/runs", headers={"Host": "corp.example.attacker.example"})[0] == 421
    assert ui.request("/runs", headers={"Host": _host(ui)})[0] == 200  # loopback names stay allowed


def test_cross_site_mutations_are_refused(webui):
    mutation = json.dumps({"query": 'mutation { startSchedule(name: "nightly_hello") { ok } }'}).encode()
    json_type = {"Content-Type": "application/json"}
    for headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": f"http://{_host(webui)}", "Sec-Fetch-Site": "cross-site"}):
        status, text = webui.request("/graphql", mutation, {**json_type, **headers})
        assert status == 403, (headers, status, text)
        assert "cross-site" in json.loads(text)["errors"][0]["message"]
    assert webui.gql("{ schedules { status } }")["schedules"] == [{"status": "STOPPED"}]
    # the same origin (the pages' own fetches) and clients that send no Origin (curl, scripts) pass
    status, text = webui.request("/graphql", mutation, {**json_type, "Origin": f"http://{_host(webui)}",
                                                        "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and json.loads(text)["data"]["startSchedule"]["ok"], text
    assert webui.gql('mutation { stopSchedule(name: "nightly_hello") { ok } }')["stopSchedule"]["ok"]


def test_security_headers_on_every_answer(webui):
    import urllib.request

    for path, accept in (("/runs", "text/html"), ("/graphql", "text/html"), ("/static/app.js", "*/*"),
                         ("/healthz", "*/*"), ("/runs/nope", "text/html")):
        req = urllib.request.Request(webui.url + path, headers={"Accept": accept})
        try:
            resp = urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as exc:
            resp = exc
        headers = resp.headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, (path, csp)
        if path == "/graphql":  # GraphiQL: its inline script runs by nonce, its assets from this server
            nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
            html = resp.read().decode()
            assert f'<script nonce="{nonce}">' in html and "http" not in csp
            assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', html) if not a.startswith("data:")]
            assert assets and all(a.startswith("/static/vendor/") for a in assets), assets
            for asset in assets:  # each served, byte for byte what the page's integrity hash names
                assert urllib.request.urlopen(webui.url + asset, timeout=30).status == 200, asset
            # what the page puts in its inline script from the URL stays a string there
            req = urllib.request.Request(webui.url + "/graphql?query=%3C/script%3E%3Cscript%3Ealert(1)",
                                         headers={"Accept": "text/html"})
            page = urllib.request.urlopen(req, timeout=30).read().decode()
            assert "</script><script>alert(1)" not in page and "\\u003c/script\\u003e" in page
        elif path == "/runs":
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            assert "<script>" not in resp.read().decode()  # no inline script on the pages


# ---- read-only mode ------------------------------------------------------------------------------
def _placeholder(arg_type) -> str:
    named = get_named_type(arg_type).name
    return {"Int": "1", "Float": "1.0", "Boolean": "false"}.get(named, '"x"')


def test_read_only_refuses_every_mutation_of_the_schema(start_webui, tmp_path):
    from runyard_webui.schema import build_schema

    defs = tmp_path / "defs_webui.py"
    shutil.copy(DEFS, defs)
    imports = tmp_path / "imports.log"
    defs.write_text(defs.read_text() + f"\nopen({str(imports)!r}, 'a').write('imported\\n')\n")
    ui = start_webui("--read-only", "-f", str(defs), defs=False)
    assert ui.get("/jobs")[0] == 200  # waits for the code server, which serves after startup has begun
    imported = imports.read_text()

    mutations = build_schema().graphql_schema.mutation_type.fields
    served = ui.gql("{ __schema { mutationType { fields { name } } } }")["__schema"]["mutationType"]["fields"]
    assert sorted(f["name"] for f in served) == sorted(mutations)
    assert "reloadLocation" in mutations
    for name, field in mutations.items():
        args = ", ".join(f"{arg}: {_placeholder(a.type)}" for arg, a in field.args.items()
                         if isinstance(a.type, GraphQLNonNull))
        body = ui.gql_raw(f"mutation {{ {name}{f'({args})' if args else ''} {{ ok code message }} }}")
        assert not body.get("errors"), (name, body)
        assert body["data"][name]["ok"] is False and body["data"][name]["code"] == "READ_ONLY", (name, body)
        assert "read-only" in body["data"][name]["message"]
    reload = json.dumps({"query": 'mutation { reloadLocation(name: "defs_webui") { ok } }'}).encode()
    status, text = ui.request("/graphql", reload, {"Content-Type": "application/json"})
    assert status == 200 and json.loads(text)["data"]["reloadLocation"]["ok"] is False
    assert ui.gql("mutation { __typename }") == {"__typename": "Mutation"}
    assert imports.read_text() == imported  # user code was not imported again
    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0
