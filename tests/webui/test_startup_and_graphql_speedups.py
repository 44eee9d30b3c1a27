"""What makes the web UI answer sooner, checked for behaviour: it serves while its code servers
still import user code (pages that need a location wait for it, nothing sees one half-started), and
GraphQL's shortcuts (a cache of checked documents, plain leaves read directly) give exactly the
answers — data and errors — that graphql-core's standard path gives; graphene's per-type dataclass
methods, built on first use instead of at import, behave exactly like graphene's own."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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


def _object_types() -> list[type]:
    import graphene

    from runyard_webui.schema import build_schema

    schema = build_schema()
    types = {t.graphene_type for t in schema.graphql_schema.type_map.values()
             if isinstance(getattr(t, "graphene_type", None), type)
             and issubclass(t.graphene_type, graphene.ObjectType)}
    return sorted(types, key=lambda t: t.__name__)


def test_importing_the_schema_builds_no_dataclass():
    code = ("import dataclasses, graphene\n"
            "calls = []\n"
            "real = dataclasses.make_dataclass\n"
            "dataclasses.make_dataclass = lambda *a, **k: calls.append(a[0]) or real(*a, **k)\n"
            "import runyard_webui.schema as s\n"
            "s.build_schema()\n"
            "assert calls == [], calls\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_building_the_app_leaves_pyyaml_and_the_wire_models_for_later(tmp_path: Path):
    """PyYAML is imported by the first page that shows YAML, and the code server's wire models build
    their validators when the first snapshot arrives: neither is paid for before the web UI serves.
    A model built late validates and refuses exactly as before."""
    code = ("import sys\n"
            "from runyard import Instance\n"
            "from runyard_webui.app import create_app\n"
            f"instance = Instance.open(home={str(tmp_path)!r})\n"
            "create_app(instance)\n"
            "import runyard.codeserver.protocol as p, runyard.codeserver.snapshot as s\n"
            "assert 'yaml' not in sys.modules, 'PyYAML imported at start-up'\n"
            "assert not s.LocationSnapshot.__pydantic_complete__\n"
            "assert not p.PartitionRunsResult.__pydantic_complete__\n"
            "import pydantic\n"
            "try:\n"
            "    s.LocationSnapshot.from_json({'format_version': 'one'})\n"
            "except pydantic.ValidationError as exc:\n"
            "    assert 'format_version' in str(exc), exc\n"
            "else:\n"
            "    raise AssertionError('a bad snapshot was accepted')\n"
            "assert s.LocationSnapshot.__pydantic_complete__\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_deferred_dataclass_methods_behave_like_graphenes():
    types = _object_types()
    assert len(types) > 60
    for cls in types:
        fields = list(cls._meta.fields)
        # what graphene would have given the type: a dataclass of the same fields and defaults
        reference = dataclasses.make_dataclass(cls.__name__, [
            (name, "typing.Any", dataclasses.field(default=getattr(f, "default_value", None)))
            for name, f in cls._meta.fields.items()], bases=())
        values = {name: f"{name}-value" for name in fields}
        made, expected = cls(**values), reference(**values)
        assert {n: getattr(made, n) for n in fields} == values
        assert repr(made).partition("(")[2] == repr(expected).partition("(")[2]
        assert made == cls(**values) and (not fields or made != cls())
        assert {n: getattr(cls(), n) for n in fields} == {n: getattr(reference(), n) for n in fields}
        if fields:
            positional = cls(*values.values())
            assert positional == made
        with pytest.raises(TypeError) as got:
            cls(no_such_field=1)
        with pytest.raises(TypeError) as want:
            reference(no_such_field=1)
        assert str(got.value).split("(")[-1] == str(want.value).split("(")[-1]


def test_info_free_resolvers_answer_like_the_standard_path():
    """A resolver marked info_free is called directly on the fast path; whatever is unusual (it
    raises, a forbidden null, a value the scalar refuses) comes out exactly as graphql-core says."""
    import graphene
    from graphql import execute, parse

    from runyard_webui.fast_graphql import LeafFastExecutionContext
    from runyard_webui.schema.plain import info_free

    calls = []

    class Thing(graphene.ObjectType):
        loud = graphene.String(required=True)
        boom = graphene.String()
        missing = graphene.String(required=True)
        count = graphene.Int()

        @staticmethod
        @info_free
        def resolve_loud(root, info):
            calls.append(info)
            return root["name"].upper()

        @staticmethod
        @info_free
        def resolve_boom(root, info):
            raise ValueError(f"boom {root['name']}")

        @staticmethod
        @info_free
        def resolve_missing(root, info):
            return None if root["name"] == "b" else "here"

        @staticmethod
        @info_free
        def resolve_count(root, info):
            return len(root["name"]) if root["name"] == "a" else "many"

    class Query(graphene.ObjectType):
        things = graphene.List(Thing)

        @staticmethod
        def resolve_things(root, info):
            return [{"name": "a"}, {"name": "b"}]

    schema = graphene.Schema(query=Query).graphql_schema
    for query in ("{ things { loud boom count } }", "{ things { loud missing } }", "{ things { loud } }"):
        fast = execute(schema, parse(query), execution_context_class=LeafFastExecutionContext)
        standard = execute(schema, parse(query))
        assert fast.data == standard.data
        assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in standard.errors or ()]
    calls.clear()
    assert execute(schema, parse("{ things { loud } }"), execution_context_class=LeafFastExecutionContext).data == {
        "things": [{"loud": "A"}, {"loud": "B"}]}
    assert calls == [None, None]  # the fast path built no resolve info


def test_lists_answer_like_the_standard_path():
    """Lists of leaves read directly and lists of objects completed item by item give graphql-core's
    answers, errors and their paths included: null items where allowed and where not, a value the
    scalar refuses, something that is not a list, an error as an item, a field of an item that fails
    and, through a non-null item, nulls the whole list."""
    import graphene
    from graphql import execute, parse

    from runyard_webui.fast_graphql import LeafFastExecutionContext

    class Item(graphene.ObjectType):
        name = graphene.String(required=True)
        size = graphene.Int()

    def rows(kind: str):
        return {"ok": [{"name": "a", "size": 1}, {"name": "b", "size": None}],
                "tuple": ({"name": "t", "size": 2},),
                "null item": [{"name": "a"}, None],
                "error item": [{"name": "a"}, ValueError("item failed")],
                "bad field": [{"name": "a", "size": "many"}, {"name": None}],
                "generator": ({"name": n} for n in "xy"),
                "not a list": "abc"}[kind]

    class Query(graphene.ObjectType):
        keys = graphene.List(graphene.NonNull(graphene.String), kind=graphene.String())
        maybe_keys = graphene.List(graphene.String)
        strict_keys = graphene.List(graphene.NonNull(graphene.String))
        sizes = graphene.List(graphene.Int)
        word = graphene.List(graphene.String)
        items = graphene.List(Item, kind=graphene.String(required=True))
        strict_items = graphene.List(graphene.NonNull(Item), kind=graphene.String(required=True))

        @staticmethod
        def resolve_keys(root, info, kind="ok"):
            return {"ok": ["a", "b"], "null": ["a", None], "tuple": ("x",)}[kind]

        @staticmethod
        def resolve_items(root, info, kind):
            return rows(kind)

        @staticmethod
        def resolve_strict_items(root, info, kind):
            return rows(kind)

    class Root:  # what the default resolver reads the argument-free lists from
        maybe_keys = ["a", None]
        strict_keys = ["a", None]
        sizes = [1, "two", 3]
        word = "abc"

    schema = graphene.Schema(query=Query).graphql_schema
    queries = ["{ keys maybeKeys }", '{ keys(kind: "null") }', '{ keys(kind: "tuple") }', "{ sizes }",
               "{ word }", "{ maybeKeys sizes }", "{ strictKeys }", "{ strictKeys maybeKeys }"]
    for kind in ("ok", "tuple", "null item", "error item", "bad field", "generator", "not a list"):
        queries += [f'{{ items(kind: "{kind}") {{ name size }} }}', f'{{ strictItems(kind: "{kind}") {{ name }} }}']
    for query in queries:
        fast = execute(schema, parse(query), root_value=Root(), execution_context_class=LeafFastExecutionContext)
        standard = execute(schema, parse(query), root_value=Root())
        assert fast.data == standard.data, query
        assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in standard.errors or ()], query
