"""The runs list over HTTP and GraphQL (issue 14, item 4): filters by several statuses, job, tags,
launched-by and time range, in the URL and as GraphQL arguments; counts per status; counts only
when asked; bulk terminate / re-execute / delete with per-run results; ``/healthz`` without a count.

A real ``runyard webui`` process over SQLite with the code server of defs_webui.py. Runs the list
shows are written into the same storage by this test process (real storage, another process, as
the daemon would), except the ones that must really run (terminate, re-execute).
Needs: nothing beyond the dev venv."""

from __future__ import annotations

import time
import urllib.parse
import uuid

import pytest

from runyard.instance.instance import Instance
from runyard.storage.records import RunRecord, RunStatus
from runyard.tags import SCHEDULE_TAG, SENSOR_TAG, USER_TAG
from runyard.testing import wait_until

RUNS = """query($statuses: [String!], $job: String, $tags: [TagInput!], $by: String, $after: Float,
    $before: Float, $cursor: String, $limit: Int) {
  runs(statuses: $statuses, jobName: $job, tags: $tags, launchedBy: $by, createdAfter: $after,
       createdBefore: $before, cursor: $cursor, limit: $limit) { count cursor runs { runId status jobName } } }"""
T0 = 1_700_000_000.0


def _add(storage, job: str, status: RunStatus, created: float, tags: dict[str, str] | None = None) -> str:
    run_id = str(uuid.uuid4())
    storage.add_run(RunRecord(run_id=run_id, job_name=job, status=status, tags=tags or {}, created_at=created,
                              start_time=created, end_time=created + 1 if status.is_finished else None))
    return run_id


@pytest.fixture
def seeded(webui):
    """12 runs: jobs hello/broken, statuses SUCCESS/FAILURE/CANCELED/STARTED, a schedule's, a sensor's
    and a user's, team tags, one minute apart from T0 (run i created at T0 + 60 i)."""
    inst = Instance.open(home=str(webui.home))
    statuses = [RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED, RunStatus.SUCCESS]
    ids = []
    for i in range(12):
        tags = {"team": "data" if i % 2 else "ops"}
        if i % 3 == 0:
            tags[SCHEDULE_TAG] = "nightly_hello"
        elif i % 3 == 1:
            tags[USER_TAG] = "alice" if i < 6 else "bob"
        elif i == 5:
            tags[SENSOR_TAG] = "file_sensor"
        ids.append(_add(inst.storage, "hello" if i < 8 else "broken", statuses[i % 4], T0 + 60 * i, tags))
    yield inst, ids
    inst.storage.dispose()


def _ids(webui, **variables) -> list[str]:
    return [r["runId"] for r in webui.gql(RUNS, variables)["runs"]["runs"]]


def test_graphql_filters(seeded, webui):
    inst, ids = seeded
    newest_first = list(reversed(ids))
    assert _ids(webui) == newest_first
    both = _ids(webui, statuses=["FAILURE", "CANCELED"])
    assert both == [ids[i] for i in (10, 9, 6, 5, 2, 1)]
    assert _ids(webui, job="broken") == [ids[i] for i in (11, 10, 9, 8)]
    assert _ids(webui, tags=[{"key": "team", "value": "data"}], statuses=["FAILURE"]) == [ids[i] for i in (9, 5, 1)]
    two_tags = [{"key": "team", "value": "data"}, {"key": USER_TAG, "value": "alice"}]
    assert _ids(webui, tags=two_tags) == [ids[1]]
    assert _ids(webui, by="schedule:nightly_hello") == [ids[i] for i in (9, 6, 3, 0)]
    assert _ids(webui, by="schedule") == [ids[i] for i in (9, 6, 3, 0)]
    assert _ids(webui, by="sensor:file_sensor") == [ids[5]]
    assert _ids(webui, by="user:bob") == [ids[i] for i in (10, 7)]
    assert _ids(webui, by="manual") == [ids[i] for i in (10, 7, 4, 1)]
    # time range: after inclusive, before exclusive
    assert _ids(webui, after=T0 + 120, before=T0 + 300) == [ids[i] for i in (4, 3, 2)]
    # count is what matches, all pages together; the cursor pages on through the same filter
    page = webui.gql(RUNS, {"statuses": ["SUCCESS"], "limit": 4})["runs"]
    assert page["count"] == 6 and len(page["runs"]) == 4
    rest = webui.gql(RUNS, {"statuses": ["SUCCESS"], "limit": 4, "cursor": page["cursor"]})["runs"]
    assert [r["runId"] for r in page["runs"] + rest["runs"]] == [ids[i] for i in (11, 8, 7, 4, 3, 0)]
    assert rest["cursor"] is None


def test_status_counts_follow_every_filter_but_the_statuses(seeded, webui):
    query = """query($statuses: [String!], $tags: [TagInput!]) { runs(statuses: $statuses, tags: $tags) {
        statusCounts { status count } } }"""
    counts = webui.gql(query, {})["runs"]["statusCounts"]
    assert counts == [{"status": "SUCCESS", "count": 6}, {"status": "FAILURE", "count": 3},
                      {"status": "CANCELED", "count": 3}]
    # the statuses filter does not change the chips (each chip says what choosing it would show)
    assert webui.gql(query, {"statuses": ["FAILURE"]})["runs"]["statusCounts"] == counts
    data = webui.gql(query, {"tags": [{"key": "team", "value": "ops"}]})["runs"]["statusCounts"]
    assert data == [{"status": "SUCCESS", "count": 3}, {"status": "CANCELED", "count": 3}]


def test_bad_filters_are_refused_naming_the_parameter(seeded, webui):
    def error(**variables) -> str:
        body = webui.gql_raw(RUNS, variables)
        assert body.get("errors"), body
        return body["errors"][0]["message"]

    assert "unknown run status 'DONE' in statuses" in error(statuses=["DONE"])
    assert "launched_by 'robot:x'" in error(by="robot:x")
    assert "time range is empty" in error(after=T0 + 100, before=T0)
    assert "unknown cursor" in error(cursor="nope")
    for url, expected in [("/runs?status=DONE", "unknown status &#39;DONE&#39; in status"),
                          ("/runs?tag=team", "tag=&#39;team&#39; is not key=value"),
                          ("/runs?after=yesterday", "after=&#39;yesterday&#39; is not a time"),
                          ("/runs?launched_by=manual:x", "launched_by"),
                          ("/runs?tag=a=1&tag=a=2", "given twice")]:
        status, html = webui.get(url)
        assert status == 400 and expected in html, (url, status, html[-600:])


def test_the_page_keeps_every_filter_in_its_links(seeded, webui):
    inst, ids = seeded
    url = ("/runs?status=FAILURE&status=CANCELED&tag=team=data&launched_by=user:bob&after="
           + urllib.parse.quote("2023-11-14T22:13:20Z"))
    status, html = webui.get(url)
    assert status == 200
    rows = [i for i, rid in enumerate(ids) if f'data-run-id="{rid}"' in html]
    assert rows == []  # bob's runs: 7 is SUCCESS, 10 is CANCELED but its team is ops
    status, html = webui.get("/runs?status=FAILURE&status=CANCELED&tag=team=data")
    assert [i for i, rid in enumerate(ids) if f'data-run-id="{rid}"' in html] == [1, 5, 9]
    # the status chips carry the counts and keep the other filters; toggling one keeps the rest
    assert 'data-chip="FAILURE"' in html and "tag=team%3Ddata" in html
    at = html.index('data-chip="CANCELED"')
    chip = html[at:html.index("</a>", at)]
    assert "status=FAILURE" in chip and "status=CANCELED" not in chip  # clicking it removes CANCELED
    # tags link to the filtered list
    assert 'href="/runs?tag=team%3Ddata"' in html
    # paging keeps the filters
    inst.storage.dispose()
    status, html = webui.get("/runs?job=hello&tag=team=ops")
    assert status == 200 and [i for i, rid in enumerate(ids) if f'data-run-id="{rid}"' in html] == [0, 2, 4, 6]


def test_paging_links_keep_the_filter(webui):
    inst = Instance.open(home=str(webui.home))
    try:
        ids = [_add(inst.storage, "hello", RunStatus.FAILURE, T0 + i, {"team": "x"}) for i in range(55)]
        _add(inst.storage, "hello", RunStatus.SUCCESS, T0 + 100, {"team": "x"})
    finally:
        inst.storage.dispose()
    status, html = webui.get("/runs?status=FAILURE&tag=team=x")
    assert status == 200 and html.count("data-run-id=") == 50
    older = html[html.index('id="older" href="') + len('id="older" href="'):]
    older = older[:older.index('"')].replace("&amp;", "&")
    assert "status=FAILURE" in older and "tag=team%3Dx" in older and f"cursor={ids[5]}" in older
    status, html = webui.get(older)
    assert status == 200 and [rid for rid in ids if f'data-run-id="{rid}"' in html] == ids[:5]


_RESULTS = "{ ok message code results { runId ok message code %s } }"
BULK = {
    "terminate": "mutation($ids: [ID!]!) { terminateRuns(runIds: $ids) %s }" % (_RESULTS % "run { status }"),
    "delete": "mutation($ids: [ID!]!) { deleteRuns(runIds: $ids) %s }" % (_RESULTS % ""),
    "reexecute": "mutation($ids: [ID!]!, $mode: String) { reexecuteRuns(runIds: $ids, mode: $mode) %s }"
                 % (_RESULTS % "run { runId status parentRunId tags { key value } }"),
}


def test_bulk_delete_refuses_unfinished_runs_and_deletes_the_rest(webui):
    inst = Instance.open(home=str(webui.home))
    try:
        done = [_add(inst.storage, "hello", RunStatus.SUCCESS, T0 + i) for i in range(2)]
        running = _add(inst.storage, "hello", RunStatus.STARTED, T0 + 5)
        result = webui.gql(BULK["delete"], {"ids": [done[0], running, done[1], "no-such-run"]})["deleteRuns"]
        assert result["ok"] is False and result["message"] == "2 of 4 run(s) refused"
        by_id = {r["runId"]: r for r in result["results"]}
        assert by_id[done[0]]["ok"] and by_id[done[1]]["ok"]
        assert not by_id[running]["ok"] and "STARTED" in by_id[running]["message"]
        assert by_id["no-such-run"]["code"] == "NOT_FOUND"
        assert inst.storage.get_run(done[0]) is None and inst.storage.get_run(done[1]) is None
        assert inst.storage.get_run(running) is not None
        # an empty request is refused as a whole
        empty = webui.gql(BULK["delete"], {"ids": []})["deleteRuns"]
        assert empty["ok"] is False and empty["results"] == [] and "no runs" in empty["message"]
    finally:
        inst.storage.dispose()


def test_bulk_terminate_and_reexecute_real_runs(webui):
    launched = [webui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 60}}}}) for _ in range(2)]
    ids = [r["run"]["runId"] for r in launched]
    for r in launched:
        assert r["ok"], r
    # launched from the web UI: tagged as launched by a user (no auth: anonymous)
    assert webui.gql(RUNS, {"by": "manual"})["runs"]["count"] == 2
    assert webui.gql(RUNS, {"by": "user:anonymous"})["runs"]["count"] == 2
    inst = Instance.open(home=str(webui.home))
    try:
        wait_until(lambda: all(inst.storage.get_run(i).status == RunStatus.STARTED for i in ids), 60,
                   what="both runs to start")
        finished = _add(inst.storage, "hello", RunStatus.SUCCESS, time.time() - 1000)
        result = webui.gql(BULK["terminate"], {"ids": [*ids, finished]})["terminateRuns"]
        by_id = {r["runId"]: r for r in result["results"]}
        assert by_id[ids[0]]["ok"] and by_id[ids[1]]["ok"]
        assert not by_id[finished]["ok"] and "already finished" in by_id[finished]["message"]
        wait_until(lambda: all(inst.storage.get_run(i).status == RunStatus.CANCELED for i in ids), 60,
                   what="both runs to be CANCELED")
        again = webui.gql(BULK["reexecute"], {"ids": ids[:1], "mode": "all"})["reexecuteRuns"]
        assert again["ok"], again
        new = again["results"][0]["run"]
        assert new["parentRunId"] == ids[0]
        assert {"key": USER_TAG, "value": "anonymous"} in new["tags"]
        webui.gql(BULK["terminate"], {"ids": [new["runId"]]})
        wait_until(lambda: inst.storage.get_run(new["runId"]).status.is_finished, 60, what="the re-execution to stop")
    finally:
        inst.storage.dispose()


def test_read_only_refuses_bulk_actions(start_webui):
    ui = start_webui("--read-only")
    result = ui.gql(BULK["delete"], {"ids": ["x"]})["deleteRuns"]
    assert result == {"ok": False, "message": result["message"], "code": "READ_ONLY", "results": []}


def test_healthz_does_not_count_runs(webui):
    """/healthz answers from a SELECT 1, whatever is in the runs table: with the runs table gone it
    still says ok (a count would fail), so it costs the same at a million runs as at none."""
    import sqlite3

    assert webui.get("/healthz") == (200, '{"status":"ok"}\n')
    db = sqlite3.connect(str(webui.home / "runyard.db"))
    try:
        db.execute("ALTER TABLE runs RENAME TO runs_hidden")
        db.commit()
        status, body = webui.get("/healthz")
        assert status == 200, body
        db.execute("ALTER TABLE runs_hidden RENAME TO runs")
        db.commit()
    finally:
        db.close()


def test_a_cli_launch_is_launched_by_its_os_user(webui, cli):
    """``runyard job launch`` tags the run with the OS user, so the list's launched-by finds it."""
    import getpass
    from pathlib import Path

    cli.ok("job", "launch", "-f", str(Path(__file__).with_name("defs_webui.py")), "-j", "hello", "--wait")
    runs = webui.gql(RUNS, {"by": f"user:{getpass.getuser()}"})["runs"]
    assert runs["count"] == 1 and runs["runs"][0]["jobName"] == "hello"
    assert webui.gql(RUNS, {"by": "manual"})["runs"]["count"] == 1
