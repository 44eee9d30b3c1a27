"""Nested graphs in the web UI over HTTP: GraphQL ``Job.graphs`` / ``Op.graphPath`` and op selection of
a graph, the launchpad's scaffold in Dagster's nested ``ops`` form (a config-mapped graph by its own
config), the completion schema, and the code location validating nested run config.

Needs: the web UI fixtures (SQLite, a code server) serving tests/webui/defs_nested_graphs.py."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import yaml

DEFS = Path(__file__).with_name("defs_nested_graphs.py")
LOC = "defs_nested_graphs"


@pytest.fixture
def nested_webui(start_webui):
    return start_webui("-f", str(DEFS), defs=False)


def test_graphql_describes_the_nested_graphs(nested_webui):
    data = nested_webui.gql("""query { job(location: "defs_nested_graphs", name: "nested_graphs") {
        ops { name graphPath }
        graphs { path name description configMapped configSchema ops
                 inputs { name targets } outputs { name source fromInput } }
        opSelection(selection: "outer.inner") { ops error } } }""")["job"]
    assert {o["name"]: o["graphPath"] for o in data["ops"]} == {
        "seed": "", "outer.inner.add": "outer.inner", "outer.inner.add_2": "outer.inner",
        "outer.inner_2.add": "outer.inner_2", "outer.inner_2.add_2": "outer.inner_2",
        "outer.scaled.add": "outer.scaled", "report": ""}
    graphs = {g["path"]: g for g in data["graphs"]}
    assert list(graphs) == ["outer", "outer.inner", "outer.inner_2", "outer.scaled"]
    assert graphs["outer"]["description"] == "Two levels of graphs."
    assert graphs["outer"]["inputs"] == [{"name": "x", "targets": ["outer.inner.add.x", "outer.scaled.add.x"]}]
    assert graphs["outer"]["outputs"] == [{"name": "deep", "source": "outer.inner_2.add_2.result", "fromInput": None},
                                          {"name": "scaled", "source": "outer.scaled.add.result", "fromInput": None}]
    assert graphs["outer.inner_2"]["name"] == "inner" and graphs["outer.inner_2"]["ops"] == [
        "outer.inner_2.add", "outer.inner_2.add_2"]
    assert graphs["outer.scaled"]["configMapped"] and "factor" in graphs["outer.scaled"]["configSchema"]["properties"]
    assert data["opSelection"] == {"ops": ["outer.inner.add", "outer.inner.add_2"], "error": None}


def test_the_launchpad_scaffold_and_schema_have_the_nested_shape(nested_webui):
    status, text = nested_webui.get(f"/locations/{LOC}/jobs/nested_graphs/launchpad")
    assert status == 200
    config = yaml.safe_load(html.unescape(re.search(r'<textarea id="run-config"[^>]*>(.*?)</textarea>', text,
                                                    re.S).group(1)))
    assert config == {"ops": {"outer": {"ops": {
        "inner": {"ops": {"add": {"config": {"n": 1}}, "add_2": {"config": {"n": 1}}}},
        "inner_2": {"ops": {"add": {"config": {"n": 1}}, "add_2": {"config": {"n": 1}}}},
        "scaled": {"config": {"factor": 3}}}}}}
    block = re.search(r'<script type="application/json" id="launchpad-data">(.*?)</script>', text, re.S)
    schema = json.loads(html.unescape(block.group(1)))["schema"]
    assert schema["graphs"]["outer.scaled"]["mapped"] and not schema["graphs"]["outer"]["mapped"]
    assert "outer.inner.add" in schema["ops"]


def test_nested_run_config_is_validated_by_the_location(nested_webui):
    query = """query($cfg: String) { validateRunConfig(location: "defs_nested_graphs", jobName: "nested_graphs",
        runConfigYaml: $cfg) { valid errors { path reason line } } }"""
    good = "ops:\n  outer:\n    ops:\n      scaled:\n        config:\n          factor: 4\n"
    assert nested_webui.gql(query, {"cfg": good})["validateRunConfig"] == {"valid": True, "errors": []}
    bad = ("ops:\n  outer:\n    ops:\n      inner:\n        ops:\n          add:\n            config:\n"
           "              n: x\n")
    result = nested_webui.gql(query, {"cfg": bad})["validateRunConfig"]
    assert not result["valid"]
    (problem,) = result["errors"]
    assert problem["path"] == "ops.outer.ops.inner.ops.add.config.n" and problem["line"] == 8
