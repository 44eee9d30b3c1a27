"""The launchpad over HTTP: GraphQL ``validateRunConfig`` against a real ``runyard webui`` with a real
code server (every problem at once, each with its key path and the line and column of its key;
YAML syntax errors located; op selection and tags checked; nothing stored), ``launchRun`` returning
every problem too, and the launchpad page prefilled from ``?ops=`` and ``?from_run=``."""

from __future__ import annotations

import html
import json
import re

VALIDATE = """query($job: String!, $cfg: String, $ops: String, $tags: [TagInput!], $loc: String! = "defs_webui") {
  validateRunConfig(location: $loc, jobName: $job, runConfigYaml: $cfg, ops: $ops, tags: $tags) {
    valid code message stepKeys errors { message reason path source line column } } }"""

GOOD = """ops:
  read_csv:
    config:
      path: in.csv
resources:
  catalog:
    config:
      url: mem://catalog
"""

# six problems in four places: an unknown top-level key, an unknown op, a required field left out,
# a wrong type, an unknown field, and a resource whose required field is missing
BAD = """ops:
  read_csv:
    config:
      rows: many
      colour: red
  read_cvs: {}
resources:
  catalog:
    config: {}
extra: 1
"""


def validate(webui, text, job="ingest_csv", **variables):
    return webui.gql(VALIDATE, {"job": job, "cfg": text, **variables})["validateRunConfig"]


def located(answer) -> dict[str, tuple]:
    return {e["path"]: (e["line"], e["column"], e["reason"]) for e in answer["errors"]}


def test_every_problem_at_once_each_with_its_path_line_and_column(webui):
    answer = validate(webui, BAD)
    assert answer["valid"] is False and answer["code"] is None
    assert located(answer) == {
        "extra": (10, 1, "unknown key (allowed: ops, resources, execution, tags)"),
        "ops.read_cvs": (6, 3, "job 'ingest_csv' has no op named 'read_cvs' (ops: read_csv, total_rows)"),
        # a key left out is placed at the deepest key on its path that the text holds
        "ops.read_csv.config.path": (3, 5, "required key is missing"),
        "ops.read_csv.config.rows": (4, 7, "Input should be a valid integer, unable to parse string as an integer "
                                           "(got 'many')"),
        "ops.read_csv.config.colour": (5, 7, "unknown key"),
        "resources.catalog.config.url": (9, 5, "required key is missing"),
    }
    assert {e["source"] for e in answer["errors"]} == {"run config"}
    for error in answer["errors"]:
        assert error["message"] == f"run config: {error['path']}: {error['reason']}"
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_launch_run_returns_every_problem_too_and_stores_nothing(webui):
    payload = webui.gql("""mutation($cfg: String) { launchRun(location: "defs_webui", jobName: "ingest_csv",
        runConfigYaml: $cfg) { ok code run { runId } errors { path message } } }""", {"cfg": BAD})["launchRun"]
    assert payload["ok"] is False and payload["code"] == "INVALID" and payload["run"] is None
    assert {e["path"] for e in payload["errors"]} == set(located(validate(webui, BAD)))
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_fixing_the_problems_makes_it_valid_and_the_selection_names_its_steps(webui):
    answer = validate(webui, GOOD)
    assert answer == {"valid": True, "code": None, "message": None, "stepKeys": None, "errors": []}
    selected = validate(webui, GOOD, ops="read_csv")
    assert selected["valid"] and selected["stepKeys"] == ["read_csv"]
    downstream = validate(webui, GOOD, ops="read_csv*")
    assert downstream["stepKeys"] == ["read_csv", "total_rows"]


def test_yaml_syntax_errors_are_located(webui):
    answer = validate(webui, "ops:\n  read_csv:\n    config:\n      path: x\n   bad: 1\n")
    (error,) = answer["errors"]
    assert answer["valid"] is False and error["source"] == "yaml"
    assert (error["line"], error["column"]) == (5, 4)
    assert error["message"].startswith("run config is not valid YAML at line 5: ")
    unclosed = validate(webui, "ops: [read_csv\nresources: {}\n")["errors"][0]
    assert unclosed["source"] == "yaml" and unclosed["line"] in (2, 3) and unclosed["column"] is not None
    dates = validate(webui, "tags:\n  day: 2024-13-01\n")["errors"][0]
    assert dates["line"] == 2 and dates["path"] == "tags.day" and "not a valid date" in dates["reason"]


def test_a_config_that_is_not_a_mapping_and_an_empty_one(webui):
    listed = validate(webui, "- read_csv\n")
    assert [(e["reason"], e["line"]) for e in listed["errors"]] == [("run config must be a mapping (got a list)", 1)]
    empty = validate(webui, "")  # every required field is then missing: said, but nowhere in the text
    assert {p: (line, col) for p, (line, col, _) in located(empty).items()} == {
        "ops.read_csv.config.path": (None, None), "resources.catalog.config.url": (None, None)}


def test_op_selection_and_reserved_tags_are_checked_with_the_config(webui):
    tags = [{"key": "runyard/tick", "value": "1"}, {"key": "runyard/priority", "value": "3"},
            {"key": "team", "value": "x"}]
    answer = validate(webui, BAD, ops="nope", tags=tags)
    sources = [e["source"] for e in answer["errors"]]
    assert sources.count("run config") == 6 and sources.count("op selection") == 1 and sources.count("tags") == 1
    selection = next(e for e in answer["errors"] if e["source"] == "op selection")
    assert "nope" in selection["message"] and selection["line"] is None
    tag = next(e for e in answer["errors"] if e["source"] == "tags")
    assert tag["path"] == "runyard/tick" and "reserved tag" in tag["reason"]


def test_unknown_location_or_job_answers_a_code_not_an_error(webui):
    job = validate(webui, GOOD, job="no_such_job")
    assert job["valid"] is False and job["code"] == "NOT_FOUND" and "no_such_job" in job["message"]
    loc = webui.gql(VALIDATE, {"job": "hello", "cfg": "", "loc": "elsewhere"})["validateRunConfig"]
    assert loc["code"] == "NOT_FOUND" and loc["errors"] == []


def test_a_read_only_web_ui_still_validates(start_webui):
    ui = start_webui("--read-only")
    assert validate(ui, GOOD)["valid"] is True
    assert located(validate(ui, BAD))["extra"][:2] == (10, 1)


# ---- the page -------------------------------------------------------------------------------------

def page_data(text: str) -> dict:
    block = re.search(r'<script type="application/json" id="launchpad-data">(.*?)</script>', text, re.S)
    return json.loads(html.unescape(block.group(1)))


def textarea(text: str) -> str:
    return html.unescape(re.search(r'<textarea id="run-config"[^>]*>(.*?)</textarea>', text, re.S).group(1))


def ops_value(text: str) -> str:
    return html.unescape(re.search(r'<input id="ops"[^>]*value="([^"]*)"', text).group(1))


def test_the_page_starts_from_the_scaffold_and_prefills_the_selection(webui):
    status, text = webui.get("/locations/defs_webui/jobs/ingest_csv/launchpad?ops=read_csv*")
    assert status == 200
    assert "path: null" in textarea(text) and "url: null" in textarea(text) and "rows: 5" in textarea(text)
    assert ops_value(text) == "read_csv*"
    data = page_data(text)
    assert data["location"] == "defs_webui" and data["job"] == "ingest_csv" and data["tags"] == {}
    schema = data["schema"]
    assert set(schema["ops"]) == {"read_csv", "total_rows"} and set(schema["resources"]) == {"catalog"}
    assert "path" in schema["ops"]["read_csv"]["properties"] and "in_process" in schema["executors"]
    assert "runyard/priority" in data["userTags"]
    # the job page links here instead of holding the launchpad
    _, job_page = webui.get("/locations/defs_webui/jobs/ingest_csv")
    assert 'href="/locations/defs_webui/jobs/ingest_csv/launchpad"' in job_page and 'id="run-config"' not in job_page


def test_prefilled_from_a_run_config_tags_and_selection(webui):
    tags = [{"key": "team", "value": "web"}, {"key": "runyard/priority", "value": "2"}]
    launched = webui.gql("""mutation($cfg: String, $tags: [TagInput!]) { launchRun(location: "defs_webui",
        jobName: "ingest_csv", runConfigYaml: $cfg, tags: $tags, ops: "read_csv") {
          ok run { runId } errors { message } } }""",
                         {"cfg": GOOD + "tags:\n  origin: config\n", "tags": tags})["launchRun"]
    assert launched["ok"], launched
    run_id = launched["run"]["runId"]
    status, text = webui.get(f"/locations/defs_webui/jobs/ingest_csv/launchpad?from_run={run_id}")
    assert status == 200 and f'href="/runs/{run_id}"' in text
    assert textarea(text).startswith("ops:\n  read_csv:\n    config:\n      path: in.csv\n")
    assert "origin: config" in textarea(text)
    # runyard/location is runyard's own (refused from users); runyard/priority a user may set
    assert page_data(text)["tags"] == {"team": "web", "runyard/priority": "2"}
    assert ops_value(text) == "read_csv"
    # the prefill is valid as it stands
    assert validate(webui, textarea(text), ops=ops_value(text),
                    tags=[{"key": k, "value": v} for k, v in page_data(text)["tags"].items()])["valid"]
    # ?ops= wins over the run's selection
    _, chosen = webui.get(f"/locations/defs_webui/jobs/ingest_csv/launchpad?from_run={run_id}&ops=total_rows")
    assert ops_value(chosen) == "total_rows"


def test_prefill_from_an_unknown_run_or_another_jobs_run_is_refused(webui):
    status, text = webui.get("/locations/defs_webui/jobs/ingest_csv/launchpad?from_run=0123456789abcdef")
    assert status == 404 and "no run with id" in text
    other = webui.launch("hello")["run"]["runId"]
    status, text = webui.get(f"/locations/defs_webui/jobs/ingest_csv/launchpad?from_run={other}")
    assert status == 400 and "is a run of job 'hello', not of 'ingest_csv'" in html.unescape(text)
    assert webui.get("/locations/defs_webui/jobs/nope/launchpad")[0] == 404
