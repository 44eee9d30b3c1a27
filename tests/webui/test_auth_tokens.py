"""API tokens over HTTP (``Authorization: Bearer``) against a real ``runyard webui`` (docs/auth.md):
a token's role and locations, a token revoked mid-session refused on its next request, a wrong, a
malformed and an expired token, ``webui.auth.tokens: false``, a token-only web UI, and the
settings refused when they are wrong. Needs: nothing beyond the dev venv."""

from __future__ import annotations

import time

from auth_support import Client, add_token, hello_config, start_secured, with_storage

VIEWER = "{ viewer { name role via locations } }"


def test_a_token_acts_with_its_role_until_revoked(start_webui, instance_file, tmp_path, home):
    ui = start_secured(start_webui, instance_file, tmp_path)
    token_id, secret = add_token(home, "ci", "launcher")
    client = Client.token(ui, secret)
    assert client.gql(VIEWER)["viewer"] == {"name": "token:ci", "role": "launcher", "via": "token", "locations": None}
    launched = client.launch(config=hello_config())
    assert launched["ok"], launched
    assert client.gql('mutation { startSchedule(name: "nightly_hello") { code } }')["startSchedule"]["code"] == \
        "FORBIDDEN"
    used = with_storage(home, lambda s: s.get_api_token(token_id)).last_used_at
    assert used is not None and abs(used - time.time()) < 60

    assert with_storage(home, lambda s: s.revoke_api_token(token_id, time.time()))
    status, text, headers = client.request("/graphql", b'{"query": "{ viewer { name } }"}',
                                           {"Content-Type": "application/json"})
    assert status == 401 and "the token was revoked" in text, (status, text)
    assert headers["WWW-Authenticate"].startswith('Bearer realm="runyard", error="invalid_token"')
    assert client.get("/runs") == 401


def test_wrong_malformed_and_expired_tokens_are_refused_without_saying_more(start_webui, instance_file, tmp_path,
                                                                             home):
    ui = start_secured(start_webui, instance_file, tmp_path)
    token_id, secret = add_token(home, "short", "viewer", expires_in=-1)
    _, good = add_token(home, "good", "viewer")
    wrong_secret = f"ryt_{token_id}_{'x' * 43}"  # a known id with another secret: as unknown as any
    for presented, why in ((secret, "the token has expired"), (wrong_secret, "unknown token"),
                           ("ryt_0123456789ab_nope", "unknown token"), ("not-a-token", "unknown token"),
                           ("", "unknown token")):
        status, text, headers = Client.token(ui, presented).request("/runs")
        assert status == 401 and f"invalid API token: {why}" in text, (presented, status, text)
        assert 'error="invalid_token"' in headers["WWW-Authenticate"]
        assert token_id not in text and "good" not in text
    assert Client.token(ui, good).get("/runs") == 200


def test_tokens_can_be_turned_off(start_webui, instance_file, tmp_path, home):
    ui = start_secured(start_webui, instance_file, tmp_path, tokens=False)
    _, secret = add_token(home, "ci", "admin")
    status, text, _ = Client.token(ui, secret).request("/runs")
    assert status == 401 and "webui.auth.tokens is false" in text
    assert Client.user(ui, "vi").get("/runs") == 200


def test_a_token_only_web_ui_and_a_scoped_token(start_webui, instance_file, home):
    instance_file("webui:\n  auth: {}\n")
    ui = start_webui()
    status, _, headers = Client(ui, None).request("/runs")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="runyard"'
    assert Client.user(ui, "vi").get("/runs") == 401  # no users: basic auth is not asked for
    _, secret = add_token(home, "deploy", "editor", ["elsewhere"])
    client = Client.token(ui, secret)
    assert client.gql(VIEWER)["viewer"]["locations"] == ["elsewhere"]
    assert client.gql("{ locations { name } }")["locations"] == []
    assert client.launch(config=hello_config())["code"] == "FORBIDDEN"


def test_bad_auth_settings_name_the_key(cli, instance_file):
    for text, expected in (
            ("webui:\n  auth:\n    users:\n      - {username: a, password: b, role: boss}\n",
             "line 4: webui.auth.users[0].role: unknown role 'boss'"),
            ("webui:\n  auth:\n    username: a\n", "username and password together"),
            ("webui:\n  auth:\n    users:\n      - {username: a, password: b}\n      - {username: a, password: c}\n",
             "user a is defined more than once"),
            ("webui:\n  auth:\n    tokens: false\n", "nobody could log in")):
        instance_file(text)
        proc = cli("instance", "info")
        assert proc.returncode != 0 and expected in proc.stderr, (text, proc.stderr)
