"""Roles against a real ``runyard webui`` with basic-auth users of every role (docs/auth.md): each
role against each mutation of the schema (runyard's and Dagster's), what an allowed mutation then
does, each page for each role, and the ``viewer`` query. Needs: nothing beyond the dev venv."""

from __future__ import annotations

import pytest
from auth_support import ROLES, USERS, Client, hello_config, start_secured

from runyard.auth import Role
from runyard_webui.auth import MUTATION_ACTIONS

#: every root field of Mutation with arguments that do nothing when allowed (an unknown run,
#: schedule or location; an invalid run config), and the least role that may call it
MUTATIONS = {
    "launchRun": ('launchRun(location: "defs_webui", jobName: "hello", runConfig: {ops: {greet: {config: '
                  '{nope: 1}}}})', "launcher"),
    "launchPipelineExecution": ('launchPipelineExecution(executionParams: {selector: {repositoryLocationName: '
                                '"defs_webui", repositoryName: "__repository__", jobName: "no_such_job"}})',
                                "launcher"),
    "reexecuteRun": ('reexecuteRun(runId: "no-such-run")', "launcher"),
    "reexecuteRuns": ('reexecuteRuns(runIds: ["no-such-run"])', "launcher"),
    "terminateRun": ('terminateRun(runId: "no-such-run")', "launcher"),
    "terminateRuns": ('terminateRuns(runIds: ["no-such-run"])', "launcher"),
    "dryRunInstigator": ('dryRunInstigator(kind: "schedule", name: "no_such_schedule")', "launcher"),
    "startSchedule": ('startSchedule(name: "no_such_schedule")', "editor"),
    "stopSchedule": ('stopSchedule(name: "no_such_schedule")', "editor"),
    "startSensor": ('startSensor(name: "no_such_sensor")', "editor"),
    "stopSensor": ('stopSensor(name: "no_such_sensor")', "editor"),
    "deleteRun": ('deleteRun(runId: "no-such-run")', "editor"),
    "deleteRuns": ('deleteRuns(runIds: ["no-such-run"])', "editor"),
    "reloadLocation": ('reloadLocation(name: "no_such_location")', "editor"),
    "reloadRepositoryLocation": ('reloadRepositoryLocation(repositoryLocationName: "no_such_location")', "editor"),
    "shutdownRepositoryLocation": ('shutdownRepositoryLocation(repositoryLocationName: "no_such_location")',
                                   "admin"),
    "launchBackfill": ('launchBackfill(location: "defs_webui", jobName: "hello", allPartitions: true)', "launcher"),
    "cancelBackfill": ('cancelBackfill(backfillId: "no-such-backfill")', "launcher"),
    "retryBackfill": ('retryBackfill(backfillId: "no-such-backfill")', "launcher"),
}


#: what each of Dagster's operations answers a refusal with: the type its client reads a message from
DAGSTER_REFUSALS = {"launchRun": "UnauthorizedError", "launchPipelineExecution": "UnauthorizedError",
                    "terminateRun": "PythonError", "reloadRepositoryLocation": "ReloadNotSupported",
                    "shutdownRepositoryLocation": "PythonError", "terminateRuns": "TerminateRunsResult"}


@pytest.fixture
def ui(start_webui, instance_file, tmp_path):
    return start_secured(start_webui, instance_file, tmp_path)


def test_every_mutation_is_mapped_to_a_role_and_listed_here():
    from runyard_webui.schema import build_schema

    fields = set(build_schema().graphql_schema.mutation_type.fields)
    assert fields == set(MUTATION_ACTIONS) == set(MUTATIONS)
    assert all(MUTATION_ACTIONS[f].role == Role.parse(MUTATIONS[f][1]) for f in fields)


def test_each_role_against_each_mutation(ui):
    for role, user in ROLES.items():
        client = Client.user(ui, user)
        for field, (call, least) in MUTATIONS.items():
            answer = client.gql(f"mutation {{ {call} {{ __typename ok code message }} }}")[field]
            allowed = Role.parse(role) >= Role.parse(least)
            assert answer["ok"] is False, (role, field, answer)  # nothing to do, allowed or not
            if allowed:
                assert answer["code"] != "FORBIDDEN", (role, field, answer)
            else:
                assert answer["code"] == "FORBIDDEN", (role, field, answer)
                assert f"has role '{role}'" in answer["message"] and f"'{least}' or above" in answer["message"]
                if field in DAGSTER_REFUSALS:  # the type whose message Dagster's client reads
                    assert answer["__typename"] == DAGSTER_REFUSALS[field], (field, answer)
    # queries are every role's
    for user in ROLES.values():
        assert Client.user(ui, user).gql("{ runs { count } locations { name } schedules { name } }")


def test_what_an_allowed_mutation_does_and_a_refused_one_does_not(ui):
    viewer, launcher, editor, admin = (Client.user(ui, ROLES[r]) for r in ("viewer", "launcher", "editor", "admin"))
    refused = viewer.launch(config=hello_config())
    assert refused["code"] == "FORBIDDEN" and refused["run"] is None
    assert admin.gql("{ runs { count } }")["runs"]["count"] == 0  # nothing stored

    launched = launcher.launch(config=hello_config())
    assert launched["ok"] and launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    ui.auth = ("la", USERS["la"][0])
    assert ui.wait_finished(run_id)[0] == "SUCCESS"
    tags = admin.gql('query($id: ID!) { run(runId: $id) { tags { key value } } }', {"id": run_id})["run"]["tags"]
    assert {"key": "runyard/user", "value": "la"} in tags  # who launched it

    toggle = 'mutation { startSchedule(name: "nightly_hello") { ok code instigator { status } } }'
    assert launcher.gql(toggle)["startSchedule"]["code"] == "FORBIDDEN"
    assert editor.gql(toggle)["startSchedule"] == {"ok": True, "code": None, "instigator": {"status": "RUNNING"}}

    delete = 'mutation($id: ID!) { deleteRun(runId: $id) { ok code } }'
    assert launcher.gql(delete, {"id": run_id})["deleteRun"]["code"] == "FORBIDDEN"
    assert admin.gql('query($id: ID!) { run(runId: $id) { runId } }', {"id": run_id})["run"]
    assert editor.gql(delete, {"id": run_id})["deleteRun"] == {"ok": True, "code": None}

    shutdown = 'mutation { shutdownRepositoryLocation(repositoryLocationName: "defs_webui") { __typename ok code } }'
    assert editor.gql(shutdown)["shutdownRepositoryLocation"]["code"] == "FORBIDDEN"
    assert admin.gql(shutdown)["shutdownRepositoryLocation"] == {
        "__typename": "ShutdownRepositoryLocationSuccess", "ok": True, "code": None}


PAGES = ("/runs", "/runs/{run}", "/runs/{run}/steps/greet/logs", "/jobs", "/locations/defs_webui/jobs/hello",
         "/locations/defs_webui/jobs/hello/launchpad", "/status", "/automation", "/automation/schedule/nightly_hello",
         "/backfills", "/graphql", "/live/status", "/metrics", "/static/app.js")


def test_each_page_for_each_role(ui):
    admin = Client.user(ui, "ad")
    run_id = admin.launch(config=hello_config())["run"]["runId"]
    pages = [p.format(run=run_id) for p in PAGES]
    for user in ROLES.values():
        client = Client.user(ui, user)
        assert {p: client.get(p) for p in pages} == dict.fromkeys(pages, 200), user
        audit = client.get("/audit")
        assert audit == (200 if user == "ad" else 403), (user, audit)
    # nobody, a wrong password, an unknown user: asked to log in, on every page
    for client in (Client(ui, None), Client.user(ui, "vi", "wrong"), Client.user(ui, "nobody", "x")):
        for path in pages:
            status, _, headers = client.request(path)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), (path, status)
    assert Client(ui, None).get("/healthz") == 200


def test_viewer_query_says_who_asks_and_what_they_may_do(ui):
    query = """{ viewer { name role via locations permissions
                 launch: can(action: "launch_run") other: can(action: "launch_run", location: "other")
                 mine: can(action: "launch_run", location: "defs_webui") toggle: can(action: "toggle_instigator") } }"""
    assert Client.user(ui, "vi").gql(query)["viewer"] == {
        "name": "vi", "role": "viewer", "via": "basic", "locations": None, "permissions": ["read"],
        "launch": False, "other": False, "mine": False, "toggle": False}
    assert Client.user(ui, "sc").gql(query)["viewer"] == {
        "name": "sc", "role": "launcher", "via": "basic", "locations": ["other"],
        "permissions": ["read", "launch_run", "reexecute_run", "terminate_run", "dry_run_instigator"],
        "launch": True, "other": True, "mine": False, "toggle": False}
    assert len(Client.user(ui, "ad").gql(query)["viewer"]["permissions"]) == 11


def test_without_webui_auth_everyone_is_an_anonymous_admin(webui):
    client = Client(webui, "Bearer ryt_000000000000_not-a-token")  # ignored: nothing is asked
    assert client.gql("{ viewer { name role via } }")["viewer"] == {"name": "anonymous", "role": "admin",
                                                                    "via": "none"}
    assert client.launch(config=hello_config())["ok"]
