"""What makes the web UI answer sooner, checked for behaviour: it serves while its code servers
still import user code (pages that need a location wait for it, nothing sees one half-started), and
GraphQL's shortcuts (a cache of checked documents, plain leaves read directly) give exactly the
answers — data and errors — that graphql-core's standard path gives."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from runyard.testing import wait_until

SLOW_DEFS = """
import os, pathlib, time
from runyard import job, op

gate = pathlib.Path(os.environ["SLOW_DEFS_GATE"])
while not gate.exists():  # the code server imports this until the test opens the gate
    time.sleep(0.05)


@op
def hi():
    return 1


@job
def slow_to_import():
    hi()
"""


def test_webui_serves_runs_and_health_while_its_code_server_imports(start_webui, tmp_path: Path):
    defs = tmp_path / "slow_defs.py"
    defs.write_text(SLOW_DEFS)
    gate = tmp_path / "gate"
    ui = start_webui("-f", str(defs), env={"SLOW_DEFS_GATE": str(gate)}, defs=False)
    # the code server is still importing: health and the runs API answer anyway
    assert ui.get("/healthz")[0] == 200
    assert ui.gql("{ runs(limit: 5) { runs { runId } } }")["runs"]["runs"] == []
    assert not gate.exists()
    result: dict = {}

    def open_job_page() -> None:  # waits for the location, then renders it loaded
        result["page"] = ui.get("/locations/slow_defs/jobs/slow_to_import")

    opener = threading.Thread(target=open_job_page)
    opener.start()
    time.sleep(0.5)
    assert opener.is_alive(), "the job page answered before its code location had loaded"
    gate.write_text("open")
    opener.join(60)
    status, html = result["page"]
    assert status == 200 and "slow_to_import" in html
    wait_until(lambda: any("code location slow_defs: ok" in line for line in ui.lines), timeout=30,
               what="the location's status line on stdout")


def _post(ui, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(ui.url + "/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, **json.loads(exc.read())}


def test_graphql_answers_are_the_same_through_the_shortcuts(webui):
    """Every answer twice (the second from the document cache), and the standard path's errors: a
    query refused by the schema (never cached), and one refused by the limits after it was cached."""
    run_id = webui.launch("hello", tags=[{"key": "team", "value": "web"}])["run"]["runId"]
    webui.wait_finished(run_id)
    query = """query($id: ID!) { run(runId: $id) { runId status jobName canTerminate createdAt
        tags { key value } stepKeysToExecute } runs(limit: 3) { runs { runId status } } }"""
    first = _post(webui, query, {"id": run_id})
    assert "errors" not in first and first["data"]["run"]["runId"] == run_id
    assert first["data"]["run"]["status"] == "SUCCESS"
    assert {"key": "team", "value": "web"} in first["data"]["run"]["tags"]
    assert _post(webui, query, {"id": run_id}) == first

    unknown = _post(webui, "{ runs { runs { nope } } }")
    assert "Cannot query field 'nope'" in unknown["errors"][0]["message"]
    assert _post(webui, "{ runs { runs { nope } } }") == unknown  # refused documents are never cached

    # cached with a small limit, then asked with one past webui.max_page_size: the limit rule still runs
    paged = "query($n: Int) { runs(limit: $n) { runs { runId } } }"
    assert "errors" not in _post(webui, paged, {"n": 2})
    too_many = _post(webui, paged, {"n": 10 ** 6})
    assert too_many.get("errors") and "limit" in too_many["errors"][0]["message"]
