"""Principals limited to code locations, against a real ``runyard webui`` serving two (docs/auth.md):
what they do not see does not exist for them — jobs, runs, schedules, in the pages, GraphQL (runyard's
and Dagster's) and the live streams — and what they may not touch is refused. Needs: nothing beyond
the dev venv."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from auth_support import Client, add_token, hello_config, start_secured

from runyard.testing import wait_until


@pytest.fixture
def ui(start_webui, instance_file, tmp_path):
    return start_secured(start_webui, instance_file, tmp_path)


def _runs(ui, admin):
    """(a finished run of defs_webui, a finished run of other), launched by an admin."""
    mine = admin.launch(config=hello_config())["run"]["runId"]
    theirs = admin.launch("other_job", "other")["run"]["runId"]
    ui.auth = ("ad", "ad-pw")
    for run_id in (mine, theirs):
        assert ui.wait_finished(run_id)[0] == "SUCCESS"
    return mine, theirs


def test_a_scoped_user_sees_only_its_locations(ui):
    admin, scoped = Client.user(ui, "ad"), Client.user(ui, "sc")
    hidden, visible = _runs(ui, admin)

    # GraphQL: locations, jobs, schedules, runs (and their counts), one run, Dagster's lookups
    data = scoped.gql("""query($hidden: ID!, $visible: ID!) {
        locations { name } schedules { name } sensors { name }
        runs { count runs { runId } statusCounts { status count } }
        hiddenRun: run(runId: $hidden) { runId } visibleRun: run(runId: $visible) { runId }
        hiddenJob: job(location: "defs_webui", name: "hello") { name }
        dagsterRun: runOrError(runId: $hidden) { __typename }
        repositoriesOrError { ... on RepositoryConnection { nodes { location { name } } } } }""",
                      {"hidden": hidden, "visible": visible})
    assert data["locations"] == [{"name": "other"}]
    assert data["schedules"] == [{"name": "other_nightly"}] and data["sensors"] == []
    assert data["runs"]["count"] == 1 and data["runs"]["runs"] == [{"runId": visible}]
    assert data["runs"]["statusCounts"] == [{"status": "SUCCESS", "count": 1}]
    assert data["hiddenRun"] is None and data["visibleRun"] == {"runId": visible}
    assert data["hiddenJob"] is None and data["dagsterRun"]["__typename"] == "RunNotFoundError"
    assert data["repositoriesOrError"]["nodes"] == [{"location": {"name": "other"}}]
    events = scoped.gql_raw('query($id: ID!) { runEvents(runId: $id) { cursor } }', {"id": hidden})[1]
    assert events["errors"] and f"no run with id '{hidden}'" in events["errors"][0]["message"]
    assert admin.gql("{ runs { count } locations { name } }") == {
        "runs": {"count": 2}, "locations": [{"name": "defs_webui"}, {"name": "other"}]}

    # pages: what is outside answers 404, as if absent; lists leave it out
    for path in (f"/runs/{hidden}", f"/runs/{hidden}/steps/greet/logs", "/locations/defs_webui/jobs/hello",
                 "/locations/defs_webui/jobs/hello/launchpad", "/automation/schedule/nightly_hello",
                 f"/locations/other/jobs/other_job/launchpad?from_run={hidden}", f"/live/runs/{hidden}/events"):
        assert scoped.get(path) == 404, path
    for path in (f"/runs/{visible}", "/locations/other/jobs/other_job", "/automation/schedule/other_nightly"):
        assert scoped.get(path) == 200, path
    pages = {p: scoped.request(p, headers={"Accept": "text/html"})[1] for p in ("/runs", "/jobs", "/automation",
                                                                             "/status")}
    assert visible in pages["/runs"] and hidden not in pages["/runs"]
    assert "other_job" in pages["/jobs"] and "/locations/defs_webui/" not in pages["/jobs"]
    assert "other_nightly" in pages["/automation"] and "nightly_hello" not in pages["/automation"]
    assert "defs_webui" not in pages["/status"]
    # metrics span every location: an unscoped principal only
    assert scoped.get("/metrics") == 403 and admin.get("/metrics") == 200


def test_a_scoped_user_may_not_act_outside_its_locations(ui):
    admin, scoped = Client.user(ui, "ad"), Client.user(ui, "sc")
    hidden, visible = _runs(ui, admin)
    refused = scoped.launch(config=hello_config())
    assert refused["code"] == "FORBIDDEN" and "limited to code locations other" in refused["message"]
    assert scoped.launch("other_job", "other")["ok"]
    terminate = 'mutation($id: String!) { terminateRun(runId: $id) { __typename ok code message } }'
    assert scoped.gql(terminate, {"id": hidden})["terminateRun"]["code"] == "FORBIDDEN"
    assert scoped.gql(terminate, {"id": visible})["terminateRun"]["__typename"] == "TerminateRunFailure"  # finished
    bulk = scoped.gql('mutation($ids: [ID!]!) { reexecuteRuns(runIds: $ids) { ok results { runId ok code } } }',
                      {"ids": [hidden, visible]})["reexecuteRuns"]
    assert [(r["runId"], r["ok"], r["code"]) for r in bulk["results"]] == [(hidden, False, "FORBIDDEN"),
                                                                            (visible, True, None)]
    dry = 'mutation($n: String!) { dryRunInstigator(kind: "schedule", name: $n) { ok code } }'
    assert scoped.gql(dry, {"n": "nightly_hello"})["dryRunInstigator"]["code"] == "FORBIDDEN"
    assert scoped.gql(dry, {"n": "other_nightly"})["dryRunInstigator"] == {"ok": True, "code": None}
    reload = 'mutation($n: String!) { reloadLocation(name: $n) { ok code } }'
    assert scoped.gql(reload, {"n": "other"})["reloadLocation"]["code"] == "FORBIDDEN"  # launcher: the role


def _sse(client: Client, path: str, seen: list[dict], stop: threading.Event) -> threading.Thread:
    """Read ``path``'s server-sent events into ``seen`` until ``stop`` (on a daemon thread)."""
    request = urllib.request.Request(client.ui.url + path, headers={"Authorization": client.authorization})
    response = urllib.request.urlopen(request, timeout=60)

    def read():
        with response:
            for line in response:
                if stop.is_set():
                    return
                if line.startswith(b"data:"):
                    seen.append(json.loads(line[5:]))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_the_live_runs_feed_carries_only_visible_runs(ui, home):
    admin = Client.user(ui, "ad")
    _, secret = add_token(home, "other-only", "viewer", ["other"])
    scoped = Client.token(ui, secret)
    stop = threading.Event()
    scoped_seen: list[dict] = []
    admin_seen: list[dict] = []
    _sse(scoped, "/live/runs", scoped_seen, stop)
    _sse(admin, "/live/runs", admin_seen, stop)
    try:
        hidden = admin.launch(config=hello_config())["run"]["runId"]
        ui.auth = ("ad", "ad-pw")
        ui.wait_finished(hidden)
        visible = admin.launch("other_job", "other")["run"]["runId"]

        def ids(seen):
            return {rid for message in list(seen) for rid in message.get("runIds", [])}

        wait_until(lambda: {hidden, visible} <= ids(admin_seen), timeout=30, what="the admin's feed")
        wait_until(lambda: visible in ids(scoped_seen), timeout=30, what="the scoped feed")
        assert hidden not in ids(scoped_seen)
    finally:
        stop.set()
