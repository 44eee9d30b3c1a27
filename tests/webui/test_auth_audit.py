"""The audit log against a real ``runyard webui`` (docs/auth.md): every mutation writes one entry —
ok, refused (role, code location, read-only) or failed — with who, what, target, code location,
result and details; GraphQL's ``auditLog`` filters and pages it, for unscoped admins only; a storage
that cannot write the entry never fails the mutation. Needs: nothing beyond the dev venv."""

from __future__ import annotations

import json

import pytest
from auth_support import Client, add_token, hello_config, start_secured

AUDIT = """query($limit: Int, $before: Int, $actor: String, $action: String, $location: String, $result: String) {
  auditLog(limit: $limit, beforeId: $before, actor: $actor, action: $action, location: $location,
           result: $result) {
    hasMore entries { id timestamp actor via role action target location result code message remoteAddr details } } }"""


@pytest.fixture
def ui(start_webui, instance_file, tmp_path):
    return start_secured(start_webui, instance_file, tmp_path)


def _log(client: Client, **filters) -> dict:
    return client.gql(AUDIT, filters)["auditLog"]


def test_mutations_are_recorded_ok_refused_and_failed(ui, home):
    admin, viewer, launcher = Client.user(ui, "ad"), Client.user(ui, "vi"), Client.user(ui, "la")
    run_id = launcher.launch(config=hello_config())["run"]["runId"]  # ok
    ui.auth = ("ad", "ad-pw")
    ui.wait_finished(run_id)
    viewer.launch(config=hello_config())  # refused: the role
    launcher.launch(config={"ops": {"greet": {"config": {"times": "many"}}}})  # failed: invalid config
    Client.user(ui, "sc").launch()  # refused: the code location
    _, secret = add_token(home, "ci", "editor")
    Client.token(ui, secret).gql('mutation { stopSchedule(name: "nightly_hello") { ok } }')  # ok, by a token
    admin.gql('mutation($ids: [String!]!) { terminateRuns(runIds: $ids) { ok } }', {"ids": [run_id, "nope"]})
    admin.gql("{ runs { count } }")  # reads are not audited

    entries = _log(admin)["entries"]
    assert [(e["actor"], e["action"], e["result"]) for e in entries] == [
        ("ad", "terminateRuns", "failed"), ("token:ci", "stopSchedule", "ok"), ("sc", "launchRun", "refused"),
        ("la", "launchRun", "failed"), ("vi", "launchRun", "refused"), ("la", "launchRun", "ok")]
    bulk, toggle, scoped, invalid, by_role, ok = entries
    assert ok["via"] == "basic" and ok["role"] == "launcher" and ok["target"] == "defs_webui/hello"
    assert ok["location"] == "defs_webui" and ok["code"] is None and ok["remoteAddr"] == "127.0.0.1"
    assert json.loads(ok["details"]) == {"run_id": run_id}
    assert by_role["code"] == "FORBIDDEN" and "'launcher' or above" in by_role["message"]
    assert invalid["code"] == "INVALID" and scoped["code"] == "FORBIDDEN" and "limited to" in scoped["message"]
    assert toggle["via"] == "token" and toggle["target"] == "nightly_hello" and toggle["location"] == "defs_webui"
    assert json.loads(toggle["details"]) == {"kind": "schedule"}
    assert bulk["target"] == f"{run_id},nope" and json.loads(bulk["details"]) == {"runs": 2, "ok": 0, "refused": 2}
    assert entries == sorted(entries, key=lambda e: -e["id"])

    # filters and paging
    assert [e["actor"] for e in _log(admin, actor="la")["entries"]] == ["la", "la"]
    assert {e["result"] for e in _log(admin, result="refused")["entries"]} == {"refused"}
    assert len(_log(admin, action="launchRun", location="defs_webui")["entries"]) == 4
    first = _log(admin, limit=4)
    assert first["hasMore"] and len(first["entries"]) == 4
    rest = _log(admin, limit=4, before=first["entries"][-1]["id"])
    assert not rest["hasMore"] and [e["id"] for e in first["entries"] + rest["entries"]] == [e["id"] for e in entries]

    # admins only, unlimited by location
    for client in (Client.user(ui, "ed"), Client.user(ui, "sc")):
        status, body = client.gql_raw(AUDIT)
        assert body["data"]["auditLog"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    status, body = admin.gql_raw(AUDIT, {"result": "maybe"})
    assert "unknown result 'maybe'" in body["errors"][0]["message"]


def test_read_only_refusals_are_recorded(start_webui, instance_file, tmp_path):
    ui = start_secured(start_webui, instance_file, tmp_path, "--read-only")
    admin = Client.user(ui, "ad")
    assert admin.launch(config=hello_config())["code"] == "READ_ONLY"
    assert admin.gql('mutation { reloadLocation(name: "other") { code } }')["reloadLocation"]["code"] == "READ_ONLY"
    entries = _log(admin)["entries"]
    assert [(e["action"], e["result"], e["code"], e["location"]) for e in entries] == [
        ("reloadLocation", "refused", "READ_ONLY", "other"), ("launchRun", "refused", "READ_ONLY", "defs_webui")]


def test_an_audit_entry_that_cannot_be_written_never_fails_the_mutation(start_webui, instance_file, tmp_path, site):
    env = site("brokenaudit", """
        from runyard import hookimpl


        @hookimpl
        def runyard_register_web_routes(app, web):
            storage = type(web.storage)

            def refuse(self, entry):
                raise RuntimeError("the audit table is gone")

            storage.add_audit_entry = refuse
        """)
    ui = start_secured(start_webui, instance_file, tmp_path, env=env)
    launched = Client.user(ui, "la").launch(config=hello_config())
    assert launched["ok"], launched
    ui.stop()
    assert "could not write the audit entry of launchRun" in ui.proc.stderr.read()
