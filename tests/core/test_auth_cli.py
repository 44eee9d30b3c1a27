"""``runyard auth token create|list|revoke`` and ``runyard auth audit``, end to end in subprocesses:
a created token verifies against storage until it is revoked or expires, the secret is shown once and
never stored or listed, creating and revoking are audited, and bad input (unknown role, bad
duration, unknown or ambiguous token) is one message, exit code 1 and nothing stored.

Needs: real subprocesses (``python -m runyard``) and a SQLite file per test home.
"""

from __future__ import annotations

import time

import pytest

from runyard.auth import principal_for_token, token_problem, verify_token
from runyard.instance.instance import Instance
from runyard.tags import os_user

TOKEN_FIELDS = {"token_id", "name", "role", "locations", "created_at", "created_by", "last_used_at",
                "expires_at", "revoked_at", "status"}


@pytest.fixture
def storage(cli):
    cli.ok("instance", "migrate")
    instance = Instance.open(str(cli.home))
    yield instance.storage
    instance.dispose()


def created(cli, *args: str) -> dict:
    return cli.json("auth", "token", "create", *args, "--json")


def test_create_prints_the_token_once_and_stores_only_its_digest(cli, storage):
    before = time.time()
    proc = cli.ok("auth", "token", "create", "ci", "--role", "launcher", "--location", "etl",
                  "--location", "reports", "--location", "etl", "--expires-in", "30d")
    secret = next(word for word in proc.stdout.split() if word.startswith("ryt_"))
    assert "only time the token is shown" in proc.stdout and "Authorization: Bearer" in proc.stdout
    assert "role launcher, code locations etl, reports" in proc.stdout

    token = verify_token(storage, secret, time.time())
    assert token is not None and token.name == "ci" and token.created_by == os_user()
    assert token.locations == ("etl", "reports")
    assert token.expires_at == pytest.approx(token.created_at + 30 * 86400) and token.created_at >= before
    assert token.digest != secret and secret not in repr(storage.list_api_tokens())
    principal = principal_for_token(token)
    assert (principal.name, principal.role.label, principal.locations) == ("token:ci", "launcher",
                                                                          frozenset({"etl", "reports"}))
    assert token_problem(storage, secret, token.expires_at + 1) == "expired"

    listed = cli.ok("auth", "token", "list").stdout
    assert token.token_id in listed and "launcher" in listed and "etl,reports" in listed
    assert secret not in listed and token.digest not in listed


def test_json_shapes_never_hold_the_digest(cli, storage):
    made = created(cli, "bot", "--role", "viewer")
    assert set(made) == TOKEN_FIELDS | {"token"}
    assert made["locations"] is None and made["expires_at"] is None and made["status"] == "active"
    [row] = cli.json("auth", "token", "list", "--json")
    assert set(row) == TOKEN_FIELDS and row["token_id"] == made["token_id"]
    stored = storage.get_api_token(made["token_id"])
    listing = cli.ok("auth", "token", "list", "--all", "--json").stdout
    assert stored.digest not in listing and made["token"] not in listing


def test_revoke_by_id_or_unique_name_and_list_all(cli, storage):
    a = created(cli, "ci", "--role", "viewer")
    b = created(cli, "ci", "--role", "editor")
    other = created(cli, "deploy", "--role", "admin")

    refused = cli("auth", "token", "revoke", "ci")  # two active tokens share the name
    assert refused.returncode == 1
    assert "2 active API tokens are named 'ci'" in refused.stderr
    assert a["token_id"] in refused.stderr and b["token_id"] in refused.stderr
    assert all(verify_token(storage, t["token"], time.time()) for t in (a, b, other))

    assert f"Revoked API token {a['token_id']} 'ci'." in cli.ok("auth", "token", "revoke", a["token_id"]).stdout
    assert verify_token(storage, a["token"], time.time()) is None
    assert token_problem(storage, a["token"], time.time()) == "revoked"
    cli.ok("auth", "token", "revoke", "ci")  # now only b is active under that name
    assert verify_token(storage, b["token"], time.time()) is None
    assert verify_token(storage, other["token"], time.time()) is not None

    again = cli("auth", "token", "revoke", a["token_id"])
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert [t["token_id"] for t in cli.json("auth", "token", "list", "--json")] == [other["token_id"]]
    every = cli.json("auth", "token", "list", "--all", "--json")
    assert [(t["token_id"], t["status"]) for t in every] == [
        (other["token_id"], "active"), (b["token_id"], "revoked"), (a["token_id"], "revoked")]
    assert "revoked" in cli.ok("auth", "token", "list", "--all").stdout


def test_create_and_revoke_are_audited(cli, storage):
    made = created(cli, "ci", "--role", "launcher", "--location", "etl", "--expires-in", "12h")
    cli.ok("auth", "token", "revoke", made["token_id"])
    entries = cli.json("auth", "audit", "--json")
    assert [(e["action"], e["actor"], e["via"], e["result"], e["target"]) for e in entries] == [
        ("token.revoke", os_user(), "cli", "ok", made["token_id"]),
        ("token.create", os_user(), "cli", "ok", made["token_id"])]
    assert entries[1]["details"] == {"name": "ci", "role": "launcher", "locations": ["etl"],
                                     "expires_at": made["expires_at"]}
    assert entries[0]["id"] > entries[1]["id"]
    assert made["token"] not in cli.ok("auth", "audit").stdout

    assert [e["action"] for e in cli.json("auth", "audit", "--action", "token.create", "--json")] == ["token.create"]
    assert cli.json("auth", "audit", "--actor", "somebody-else", "--json") == []
    assert len(cli.json("auth", "audit", "--limit", "1", "--json")) == 1
    text = cli.ok("auth", "audit").stdout.splitlines()
    assert "token.revoke" in text[0] and "token.create" in text[1] and f"{os_user()} (cli)" in text[0]


def test_audit_shows_entries_other_front_ends_wrote(cli, storage):
    from runyard.storage.records import AuditEntry

    storage.add_audit_entry(AuditEntry(action="deleteRun", actor="bob", via="basic", role="launcher",
                                       result="refused", timestamp=time.time(), target="r1", location="etl",
                                       code="FORBIDDEN", message="bob has role 'launcher'",
                                       remote_addr="10.0.0.7"))
    storage.add_audit_entry(AuditEntry(action="launchRun", actor="token:ci", via="token", role="launcher",
                                       result="ok", timestamp=time.time(), target="etl/etl_job", location="etl"))
    line = cli.ok("auth", "audit", "--result", "refused").stdout.strip()
    assert "refused" in line and "bob (basic, launcher)" in line and "deleteRun r1 [etl]" in line
    assert "FORBIDDEN: bob has role 'launcher'" in line
    assert [e["actor"] for e in cli.json("auth", "audit", "--location", "etl", "--json")] == ["token:ci", "bob"]
    assert cli.ok("auth", "audit", "--location", "nowhere").stdout.strip() == "No audit entries."


@pytest.mark.parametrize("args, message", [
    (["x", "--role", "superuser"], "unknown role 'superuser': choose one of viewer, launcher, editor, admin"),
    (["x", "--role", "admin", "--expires-in", "3x"], "bad duration '3x'"),
    (["x", "--role", "admin", "--expires-in", "0d"], "bad duration '0d'"),
    (["x", "--role", "admin", "--expires-in", "99999d"], "at most 36500d"),
    (["x", "--role", "admin", "--expires-in", "-5m"], "bad duration '-5m'"),
    ([" padded", "--role", "admin"], "bad token name"),
    (["n" * 101, "--role", "admin"], "bad token name"),
    (["x", "--role", "admin", "--location", ""], "bad code location"),
])
def test_bad_create_input_stores_nothing(cli, storage, args, message):
    proc = cli("auth", "token", "create", *args)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "ryt_" not in proc.stdout
    assert storage.list_api_tokens(include_revoked=True) == [] and storage.get_audit_entries() == []


def test_unknown_token_revoke_stores_nothing(cli, storage):
    proc = cli("auth", "token", "revoke", "nope")
    assert proc.returncode == 1
    assert "no API token has the id or name 'nope'" in proc.stderr
    assert storage.get_audit_entries() == []


def test_role_is_required_and_names_its_choices_in_help(cli):
    proc = cli("auth", "token", "create", "x")
    assert proc.returncode == 2 and "--role" in proc.stderr
    assert "viewer, launcher, editor or admin" in cli.ok("auth", "token", "create", "--help").stdout


def test_empty_lists(cli):
    assert cli.ok("auth", "token", "list").stdout.strip().startswith("No active API tokens")
    assert cli.ok("auth", "token", "list", "--all").stdout.strip() == "No API tokens."
    assert cli.ok("auth", "audit").stdout.strip() == "No audit entries."
    assert cli.json("auth", "audit", "--json") == []
