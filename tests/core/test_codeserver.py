"""The code location server (``runyard code-server``) and its client, over real HTTP.

Needs: nothing beyond Python. Every server is a real ``python -m runyard code-server`` subprocess on
a free port; the "foreign" servers the client must reject are stdlib ``http.server`` instances.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runyard.codeserver.client import CodeServerClient
from runyard.codeserver.errors import (
    CodeLocationLoadError,
    CodeServerError,
    CodeServerNotFoundError,
    CodeServerUnavailableError,
)
from runyard.errors import RunyardError


def runyard_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    return {**env, "RUNYARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}

DEFS = '''
"""A code location exercising everything a snapshot describes."""

import time

from runyard import (
    Config, Definitions, RetryPolicy, Backoff, RunRequest, SkipReason, job, op, resource, schedule,
    sensor,
)
from runyard.definitions.schedules import ScheduleDefinition


class ExtractConfig(Config):
    """How much to extract."""

    rows: int = 3
    source: str


class DbConfig(Config):
    url: str


@resource(config=DbConfig)
def database(context):
    """The warehouse."""
    return context.config.url


@op(retry_policy=RetryPolicy(max_retries=2, delay=1.5, backoff=Backoff.EXPONENTIAL), tags={"kind": "io"})
def extract(context, config: ExtractConfig) -> list[int]:
    """Read rows."""
    return list(range(config.rows))


@op
def transform(rows: list[int], factor: int = 2) -> list[int]:
    return [r * factor for r in rows]


@op(required_resource_keys={"database"})
def load(context, rows: list[int], raw: list[int]) -> None:
    pass


@job(tags={"team": "data"}, description="Extract, transform, load.")
def etl():
    rows = extract()
    load(transform(rows), rows)


@op
def hello() -> str:
    return "hi"


@job
def tiny():
    hello()


@schedule("0 6 * * *", job=etl, execution_timezone="Europe/Paris", tags={"origin": "schedule"},
          default_status="RUNNING")
def daily(context):
    t = context.scheduled_time
    return RunRequest(run_key=t.isoformat(), run_config={"ops": {"extract": {"config": {
        "source": f"{t.isoformat()} {t.tzname()} {context.schedule_name}"}}}})


@schedule("*/5 * * * *", job="tiny")
def skipping(context):
    return SkipReason("nothing to do at " + context.scheduled_time.isoformat())


@schedule("0 * * * *", job=etl)
def exploding_schedule(context):
    return 1 / 0


static = ScheduleDefinition(name="static", cron_schedule="30 2 * * 1", job="tiny",
                            run_config={"tags": {"static": "yes"}}, tags={"t": "1"})


@sensor(job=etl, minimum_interval_seconds=15)
def new_files(context):
    n = int(context.cursor or 0)
    if n >= 2:
        return SkipReason(f"cursor at {n}: no new files")
    context.update_cursor(str(n + 1))
    return [RunRequest(run_key=f"file-{n}", run_config={"ops": {"extract": {"config": {"source": f"f{n}"}}}},
                       tags={"file": str(n)})]


def fail_here(cursor):
    raise ValueError(f"sensor broke at cursor {cursor}")


@sensor(job="tiny", default_status="RUNNING")
def broken_sensor(context):
    context.update_cursor("moved")
    fail_here(context.cursor)


@sensor(job="tiny")
def slow_sensor(context):
    time.sleep(30)


@sensor()
def no_job_sensor(context):
    yield RunRequest(run_key="x")


defs = Definitions(jobs=[etl, tiny], schedules=[daily, skipping, exploding_schedule, static],
                   sensors=[new_files, broken_sensor, slow_sensor, no_job_sensor],
                   resources={"database": database, "plain": {"a": 1}})
'''

BAD_DEFS = '''
import json


def helper():
    return json.loads("{not json")


VALUE = helper()
'''


# ---- helpers ---------------------------------------------------------------------------------------

class CodeServer:
    """A ``python -m runyard code-server`` subprocess on a free port, learnt from its readiness
    handshake (``--ready-fd``), as a workspace learns it."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60.0):
        from runyard.codeserver.protocol import ServerReady

        ready_read, ready_write = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "runyard", "code-server", "--port", "0",
                                      "--ready-fd", str(ready_write), *args],
                                     cwd=cwd, env=env or runyard_env(cwd / "home"), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     pass_fds=(ready_write,))
        os.close(ready_write)
        self.lines: list[str] = []
        found = threading.Event()
        self.port: int | None = None

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)

        def read_ready() -> None:
            with os.fdopen(ready_read, "rb") as pipe:
                line = pipe.readline()
            if line:
                self.port = ServerReady.from_line(line).port
            found.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        threading.Thread(target=read_ready, daemon=True).start()
        found.wait(timeout)
        if self.port is None:
            self.stop()
            raise AssertionError(f"code server did not start: {''.join(self.lines)}\n{self.proc.stderr.read()}")
        self.client = CodeServerClient("127.0.0.1", self.port, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_banner(self, timeout: float = 10.0) -> None:
        """The human start line follows the handshake on stdout (read by another thread)."""
        deadline = time.monotonic() + timeout
        while not self.lines and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        return code


def raw(method: str, url: str, body: bytes | None = None) -> tuple[int, dict]:
    """One HTTP request without the client: (status, parsed JSON body)."""
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"] == "application/json"
        return exc.code, json.loads(exc.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def location_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("location")
    (d / "defs.py").write_text(textwrap.dedent(DEFS))
    (d / "home").mkdir()
    return d


@pytest.fixture(scope="module")
def server(location_dir: Path):
    srv = CodeServer("-f", "defs.py", "--location-name", "main", "--evaluation-timeout", "1.5", cwd=location_dir)
    yield srv
    assert srv.stop() == 0, "SIGTERM must stop the code server cleanly (exit code 0)"


@pytest.fixture
def start_server(tmp_path: Path):
    """``start_server(*args, cwd=tmp_path)``: a code server stopped (SIGTERM) after the test."""
    started: list[CodeServer] = []
    (tmp_path / "home").mkdir(exist_ok=True)

    def start(*args: str, cwd: Path | None = None) -> CodeServer:
        srv = CodeServer(*args, cwd=cwd or tmp_path, env=runyard_env(tmp_path / "home"))
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def user_module(location_dir: Path):
    """The same definitions imported here, to compare schemas with pydantic's own output."""
    from runyard.workspace.loader import code_pointer_for, load_definitions

    return load_definitions(code_pointer_for(str(location_dir / "defs.py")))


# ---- health and snapshot ---------------------------------------------------------------------------

def test_start_line_and_health(server: CodeServer, location_dir: Path):
    server.wait_for_banner()
    assert server.lines[0].strip() == f"code server for location main listening on http://127.0.0.1:{server.port}"
    health = server.client.health()
    assert health.ok and health.status == "ok" and health.error is None
    assert health.location_name == "main"
    assert health.pid == server.proc.pid
    assert health.snapshot_id == server.client.snapshot().snapshot_id
    assert health.code_pointer == {"python_file": str(location_dir / "defs.py"),
                                   "working_directory": str(location_dir)}
    assert health.api_version == "v1" and health.evaluation_timeout == 1.5


def test_snapshot_content(server: CodeServer, user_module):
    snap = server.client.snapshot()
    assert snap.job_names == ["etl", "tiny"]
    # the wire format, field for field (test_snapshot_models_type_what_was_dicts reads the models)
    wire = snap.to_json()
    jobs, schedules, sensors, resources = ({item["name" if kind != "resources" else "key"]: item
                                            for item in wire[kind]}
                                           for kind in ("jobs", "schedules", "sensors", "resources"))
    etl = jobs["etl"]
    assert etl["description"] == "Extract, transform, load."
    assert etl["tags"] == {"team": "data"}
    assert [o["name"] for o in etl["ops"]] == ["extract", "transform", "load"] == etl["op_order"]
    extract, transform, load = etl["ops"]

    # op config schema: exactly pydantic's JSON schema of the Config model
    model = user_module.jobs["etl"].nodes["extract"].op.config_model
    assert extract["config_schema"] == model.model_json_schema()
    assert extract["config_schema"]["required"] == ["source"]
    assert extract["config_schema"]["additionalProperties"] is False
    assert extract["description"] == "Read rows."
    assert extract["tags"] == {"kind": "io"}
    assert extract["retry_policy"] == {"max_retries": 2, "delay": 1.5, "backoff": "EXPONENTIAL", "jitter": None}
    assert extract["outputs"] == [{"name": "result", "type": "list[int]", "description": None,
                                   "io_manager_key": "io_manager"}]
    assert extract["inputs"] == [] and extract["upstream"] == []

    assert transform["config_schema"] is None and transform["retry_policy"] is None
    assert transform["inputs"] == [
        {"name": "rows", "type": "list[int]", "description": None, "has_default": False, "fan_in": False,
         "upstream": [{"op": "extract", "output": "result"}]},
        {"name": "factor", "type": "int", "description": None, "has_default": True, "fan_in": False,
         "upstream": []},
    ]
    assert load["required_resources"] == ["database"]
    assert [(i["name"], i["upstream"]) for i in load["inputs"]] == [
        ("rows", [{"op": "transform", "output": "result"}]), ("raw", [{"op": "extract", "output": "result"}])]
    assert load["upstream"] == ["extract", "transform"]
    assert load["outputs"][0]["type"] == "Nothing"
    assert etl["required_resources"] == ["database"]

    # resources: keys and config schema, at the location and per job
    db_model = user_module.resources["database"].config_model
    assert resources["database"]["config_schema"] == db_model.model_json_schema()
    assert resources["database"]["description"] == "The warehouse."
    assert resources["plain"] == {"key": "plain", "kind": "object", "type": "builtins.dict",
                                       "description": None, "config_schema": None}
    assert [r["key"] for r in etl["resources"]] == ["database", "plain"]

    assert schedules["daily"] == {
        "name": "daily", "job_name": "etl", "cron_schedule": "0 6 * * *", "execution_timezone": "Europe/Paris",
        "default_status": "RUNNING", "description": None, "tags": {"origin": "schedule"},
        "has_evaluation_fn": True, "run_config": None}
    assert schedules["static"]["run_config"] == {"tags": {"static": "yes"}}
    assert schedules["static"]["execution_timezone"] == "UTC"
    assert schedules["static"]["default_status"] == "STOPPED"
    assert sensors["new_files"] == {"name": "new_files", "job_name": "etl", "minimum_interval_seconds": 15,
                                         "default_status": "STOPPED", "description": None}
    assert sensors["broken_sensor"]["default_status"] == "RUNNING"
    assert sensors["no_job_sensor"]["job_name"] is None


def test_snapshot_id_is_the_hash_of_the_rest(server: CodeServer):
    status, data = raw("GET", server.url + "/v1/snapshot")
    assert status == 200
    body = {k: v for k, v in data.items() if k != "snapshot_id"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data["snapshot_id"] == hashlib.sha256(canonical.encode()).hexdigest()


# The id of tests/core/data/snapshot_defs.py's snapshot, computed before the snapshot became pydantic
# models. It must never change by accident: replicas of one location running different runyard
# versions would disagree, and the daemon and web UI would refetch every location's snapshot.
FIXED_DEFS = Path(__file__).parent / "data" / "snapshot_defs.py"
FIXED_SNAPSHOT_ID = "5713683e076f712f4ca3009aa66d0902721c5850fd861542f18f0e6eca1778a4"


def test_snapshot_id_of_a_fixed_definitions_file_is_stable():
    from runyard.codeserver.snapshot import LocationSnapshot
    from runyard.codeserver.snapshot_builder import build_snapshot, snapshot_id_of
    from runyard.workspace.loader import code_pointer_for, load_definitions

    snapshot = build_snapshot(load_definitions(code_pointer_for(str(FIXED_DEFS))))
    assert snapshot.snapshot_id == FIXED_SNAPSHOT_ID
    data = snapshot.to_json()
    assert snapshot_id_of(data) == FIXED_SNAPSHOT_ID  # the id is the hash of what is served
    # what a client validates from the wire is the same snapshot, field for field
    again = LocationSnapshot.model_validate(json.loads(json.dumps(data)))
    assert again == snapshot and again.to_json() == data


def test_snapshot_models_type_what_was_dicts(server: CodeServer):
    snap = server.client.snapshot()
    etl = snap.jobs_by_name["etl"]
    assert [op.name for op in etl.ops] == etl.topological_order == ["extract", "transform", "load"]
    extract = etl.node("extract")
    assert extract.retry_policy.max_retries == 2 and extract.retry_policy.backoff == "EXPONENTIAL"
    assert etl.node("load").outputs[0].is_nothing and not extract.outputs[0].is_nothing
    assert etl.node("transform").inputs[0].upstream[0].op == "extract"
    assert etl.executor.name == "in_process"
    daily = snap.schedules_by_name["daily"]
    assert (daily.cron_schedule, daily.execution_timezone, daily.default_status) == (
        "0 6 * * *", "Europe/Paris", "RUNNING")
    assert snap.schedule_names == ["daily", "exploding_schedule", "skipping", "static"]
    assert snap.sensors_by_name["new_files"].minimum_interval_seconds == 15
    assert snap.sensors_by_name["no_job_sensor"].job_name is None
    assert snap.instigators("sensor") is snap.sensors_by_name
    assert snap.resources_by_key["plain"].kind == "object"
    with pytest.raises(KeyError, match="has no op 'nope'"):
        etl.node("nope")


def test_replicas_agree_and_a_changed_file_changes_the_id(start_server, tmp_path: Path):
    # Two replicas of one location, started from different directories with different names and a
    # copy of the file at a different path: same code, same id.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "defs.py").write_text(textwrap.dedent(DEFS))
    shutil.copy(tmp_path / "a" / "defs.py", tmp_path / "b" / "defs.py")
    one = start_server("-f", "defs.py", cwd=tmp_path / "a")
    two = start_server("-f", str(tmp_path / "b" / "defs.py"), "--location-name", "replica")
    id_one = one.client.snapshot().snapshot_id
    assert id_one == two.client.snapshot().snapshot_id == two.client.health().snapshot_id
    assert len(id_one) == 64

    # A changed definition (a new op tag) changes the id ...
    changed = textwrap.dedent(DEFS).replace('tags={"kind": "io"}', 'tags={"kind": "io", "v": "2"}')
    (tmp_path / "b" / "defs.py").write_text(changed)
    three = start_server("-f", str(tmp_path / "b" / "defs.py"))
    assert three.client.snapshot().snapshot_id != id_one
    # ... and a reload of the running replica picks it up and agrees with the fresh server.
    result = two.client.reload()
    assert result.status == "ok" and result.changed is True
    assert result.previous_snapshot_id == id_one
    assert result.snapshot_id == three.client.snapshot().snapshot_id == two.client.snapshot().snapshot_id
    assert two.client.snapshot().jobs_by_name["etl"].ops[0].tags == {"kind": "io", "v": "2"}
    assert two.client.reload().changed is False


# ---- validation ------------------------------------------------------------------------------------

GOOD_CONFIG = {"ops": {"extract": {"config": {"source": "s3://x"}}},
               "resources": {"database": {"config": {"url": "postgres://db"}}}, "tags": {"extra": "1"}}


def test_validate_ok_returns_the_plan(server: CodeServer):
    result = server.client.validate("etl", GOOD_CONFIG)
    assert result.ok and result.errors == []
    assert result.step_order == ["extract", "transform", "load"]
    assert result.to_json()["plan"]["steps"] == [
        {"key": "extract", "op": "extract", "upstream": [], "priority": 0},
        {"key": "transform", "op": "transform", "upstream": ["extract"], "priority": 0},
        {"key": "load", "op": "load", "upstream": ["extract", "transform"], "priority": 0},
    ]
    assert [(s.key, s.upstream) for s in result.plan.steps] == [
        ("extract", []), ("transform", ["extract"]), ("load", ["extract", "transform"])]
    assert result.tags == {"team": "data", "extra": "1"}
    assert result.executor == "in_process"
    assert result.step_keys_to_execute is None

    selected = server.client.validate("etl", GOOD_CONFIG, ops="extract*")
    assert selected.ok and selected.step_keys_to_execute == ["extract", "transform", "load"]
    only = server.client.validate("tiny", {"resources": GOOD_CONFIG["resources"]}, ops=["hello"])
    assert only.ok and only.step_order == ["hello"]


@pytest.mark.parametrize("run_config, path, reason", [
    ({"ops": {"extract": {"config": {"source": "x", "rows": "many"}}},
      "resources": {"database": {"config": {"url": "u"}}}}, "ops.extract.config.rows", "valid integer"),
    ({"ops": {"extract": {"config": {}}}, "resources": {"database": {"config": {"url": "u"}}}},
     "ops.extract.config.source", "required key is missing"),
    ({**GOOD_CONFIG, "ops": {**GOOD_CONFIG["ops"], "extrakt": {}}}, "ops.extrakt", "has no op named 'extrakt'"),
    ({"ops": {"extract": {"config": {"source": "x"}}}, "resources": {"database": {"config": {"url": 3}}}},
     "resources.database.config.url", "valid string"),
    ({**GOOD_CONFIG, "opz": {}}, "opz", "unknown key"),
])
def test_validate_bad_config_names_the_key_path(server: CodeServer, run_config, path, reason):
    result = server.client.validate("etl", run_config)
    assert not result.ok and result.plan is None
    assert [e.path for e in result.errors] == [path]
    error = result.errors[0]
    assert reason in error.reason and error.source == "run config"
    assert error.message == f"run config: {path}: {error.reason}"


def test_validate_several_problems_one_error_each(server: CodeServer):
    result = server.client.validate("etl", {"ops": {"extract": {"config": {"rows": "x", "bogus": 1}}},
                                            "resources": GOOD_CONFIG["resources"]})
    assert not result.ok
    assert sorted(e.path for e in result.errors) == ["ops.extract.config.bogus", "ops.extract.config.rows",
                                                     "ops.extract.config.source"]


def test_validate_reports_every_problem_of_every_op_resource_and_the_selection(server: CodeServer):
    """Not the first failing op or resource: every problem, each with its key path and keys, the
    op selection's included."""
    result = server.client.validate("etl", {
        "ops": {"extract": {"config": {"rows": "x"}, "retries": 2}, "extrakt": {}},
        "resources": {"database": {"config": {"url": 3}}, "cache": {}},
        "execution": {"no_such_executor": {}}, "tags": {"runyard/location": "x"}, "opz": 1}, ops="nope")
    assert not result.ok and result.plan is None
    by_path = {e.path: e for e in result.errors if e.source == "run config"}
    assert set(by_path) == {"opz", "ops.extrakt", "ops.extract.retries", "ops.extract.config.source",
                            "ops.extract.config.rows", "resources.cache", "resources.database.config.url",
                            "tags.runyard/location", "execution.no_such_executor"}, sorted(by_path)
    assert by_path["ops.extract.config.rows"].keys == ["ops", "extract", "config", "rows"]
    assert by_path["tags.runyard/location"].keys == ["tags", "runyard/location"]
    for path, error in by_path.items():
        assert error.message == f"run config: {path}: {error.reason}"
    assert [e.source for e in result.errors if e.source != "run config"] == ["op selection"]
    # the executor is checked once the rest of `execution` is well-formed: alone, it is reported too
    alone = server.client.validate("etl", {**GOOD_CONFIG, "execution": {"no_such_executor": {}}})
    assert [e.path for e in alone.errors] == ["execution.no_such_executor"]


def test_validate_bad_op_selection_and_unknown_job(server: CodeServer):
    result = server.client.validate("etl", GOOD_CONFIG, ops="nope")
    assert not result.ok and result.errors[0].source == "op selection"
    with pytest.raises(CodeServerNotFoundError) as info:
        server.client.validate("etll", {})
    assert info.value.status == 404 and info.value.available == ["etl", "tiny"]
    assert f"127.0.0.1:{server.port}" in str(info.value) and "no job named 'etll'" in str(info.value)


# ---- schedules -------------------------------------------------------------------------------------

TICK = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def test_schedule_gets_its_time_zone_and_returns_run_requests(server: CodeServer):
    result = server.client.evaluate_schedule("daily", TICK)
    assert result.ok and result.skip_reason is None
    (request,) = result.run_requests
    expected = datetime.fromtimestamp(TICK, ZoneInfo("Europe/Paris"))
    assert request.run_key == expected.isoformat() == "2023-11-14T23:13:20+01:00"
    assert request.run_config == {"ops": {"extract": {"config": {"source": f"{expected.isoformat()} CET daily"}}}}
    assert request.tags == {"origin": "schedule"} and request.job_name == "etl"


def test_schedule_skip_static_and_error(server: CodeServer):
    skip = server.client.evaluate_schedule("skipping", TICK)
    assert skip.ok and skip.run_requests == [] and skip.skip_reason == "nothing to do at 2023-11-14T22:13:20+00:00"

    static = server.client.evaluate_schedule("static", TICK)
    assert [(r.job_name, r.run_config, r.tags, r.run_key) for r in static.run_requests] == [
        ("tiny", {"tags": {"static": "yes"}}, {"t": "1"}, None)]

    status, body = raw("POST", server.url + "/v1/schedules/exploding_schedule/evaluate",
                       json.dumps({"tick_time": TICK}).encode())
    assert status == 200
    assert body["run_requests"] == [] and body["skip_reason"] is None
    assert body["error"]["message"] == "error in schedule 'exploding_schedule': ZeroDivisionError: division by zero"
    assert body["error"]["kind"] == "user_code_error"
    tb = body["error"]["traceback"]
    assert "defs.py" in tb and "return 1 / 0" in tb and tb.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "runyard/codeserver" not in tb  # only the user's frames

    with pytest.raises(CodeServerNotFoundError) as info:
        server.client.evaluate_schedule("weekly", TICK)
    assert info.value.available == ["daily", "exploding_schedule", "skipping", "static"]
    status, body = raw("POST", server.url + "/v1/schedules/daily/evaluate", b"{}")
    assert status == 400 and body["error"]["message"] == "'tick_time' (the tick's time in epoch seconds) is required"


# ---- sensors ---------------------------------------------------------------------------------------

def test_sensor_cursor_run_requests_and_skip(server: CodeServer):
    first = server.client.evaluate_sensor("new_files", cursor=None, last_tick_time=None)
    assert first.ok and first.cursor == "1"
    (request,) = first.run_requests
    assert (request.run_key, request.job_name, request.tags) == ("file-0", "etl", {"file": "0"})
    assert request.run_config == {"ops": {"extract": {"config": {"source": "f0"}}}}
    second = server.client.evaluate_sensor("new_files", cursor=first.cursor, last_tick_time=time.time())
    assert second.cursor == "2" and second.run_requests[0].run_key == "file-1"
    skipped = server.client.evaluate_sensor("new_files", cursor="2")
    assert skipped.ok and skipped.run_requests == [] and skipped.skip_reason == "cursor at 2: no new files"
    assert skipped.cursor == "2"


def test_sensor_that_raises_returns_error_json(server: CodeServer):
    status, body = raw("POST", server.url + "/v1/sensors/broken_sensor/evaluate",
                       json.dumps({"cursor": "c0", "last_tick_time": None}).encode())
    assert status == 200
    assert body["error"]["message"] == "error in sensor 'broken_sensor': ValueError: sensor broke at cursor moved"
    tb = body["error"]["traceback"]
    assert "in broken_sensor" in tb and "in fail_here" in tb and "ValueError: sensor broke" in tb
    assert body["cursor"] == "c0"  # a failed evaluation does not move the cursor
    result = server.client.evaluate_sensor("broken_sensor", cursor="c0")
    assert not result.ok and result.error.traceback == tb


def test_sensor_without_job_must_name_one(server: CodeServer):
    result = server.client.evaluate_sensor("no_job_sensor")
    assert not result.ok and result.error.kind == "invalid_result"
    assert "RunRequest(job_name=...)" in result.error.message


def test_sensor_timeout(server: CodeServer):
    started = time.monotonic()
    result = server.client.evaluate_sensor("slow_sensor", cursor="keep")
    took = time.monotonic() - started
    assert not result.ok and result.error.kind == "timeout"
    assert "did not finish within 1.5 seconds" in result.error.message
    assert result.cursor == "keep"
    assert 1.4 < took < 10
    assert server.client.health().ok  # the server still answers while the function runs on


# ---- load errors and bad requests ------------------------------------------------------------------

def test_import_error_leaves_server_up(start_server, tmp_path: Path):
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent(BAD_DEFS))
    srv = start_server("-f", str(path))
    health = srv.client.health()
    assert health.status == "error" and health.snapshot_id is None
    assert health.error.message.startswith(f"error while importing {path}: JSONDecodeError")
    assert 'File "' + str(path) + '", line 9, in <module>' in health.error.traceback
    assert "in helper" in health.error.traceback and "importlib" not in health.error.traceback

    for method, endpoint, body in [("GET", "/v1/snapshot", None),
                                   ("POST", "/v1/jobs/etl/validate", b"{}"),
                                   ("POST", "/v1/schedules/daily/evaluate", b'{"tick_time": 1}'),
                                   ("POST", "/v1/sensors/s/evaluate", b"{}")]:
        status, data = raw(method, srv.url + endpoint, body)
        assert status == 503, endpoint
        assert data["error"]["kind"] == "load_error" and "JSONDecodeError" in data["error"]["message"]
        assert "in helper" in data["error"]["traceback"]
    with pytest.raises(CodeLocationLoadError) as info:
        srv.client.snapshot()
    assert "JSONDecodeError" in str(info.value) and "in helper" in info.value.user_traceback

    # fix the file: a reload brings the location up without restarting the server
    path.write_text(textwrap.dedent(DEFS))
    result = srv.client.reload()
    assert result.status == "ok" and result.changed is True and result.error is None
    assert srv.client.health().ok and srv.client.snapshot().job_names == ["etl", "tiny"]
    # break it again: the reload reports the error, the server stays up
    path.write_text("raise SystemExit('nope')\n")
    result = srv.client.reload()
    assert result.status == "error" and "SystemExit" in result.error.message
    assert srv.client.health().status == "error"


def test_bad_requests_get_json_answers(server: CodeServer):
    status, body = raw("GET", server.url + "/v1/nothing")
    assert status == 404 and "GET /v1/health" in body["error"]["endpoints"]
    status, body = raw("GET", server.url + "/")
    assert status == 404 and body["error"]["kind"] == "not_found"
    status, body = raw("GET", server.url + "/v1/jobs/etl/validate")
    assert status == 405 and "takes POST" in body["error"]["message"]
    status, body = raw("POST", server.url + "/v1/jobs/etl/validate", b"{not json")
    assert status == 400 and "not JSON" in body["error"]["message"]
    status, body = raw("POST", server.url + "/v1/jobs/etl/validate", b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]["message"]
    status, body = raw("POST", server.url + "/v1/sensors/new_files/evaluate", b'{"cursor": 5}')
    assert status == 400 and body["error"]["message"] == "'cursor' must be a string or null"
    status, body = raw("POST", server.url + "/v1/sensors/new_files/evaluate", b'{"last_tick_time": true}')
    assert status == 400 and body["error"]["message"] == "'last_tick_time' must be epoch seconds or null"
    status, body = raw("POST", server.url + "/v1/schedules/daily/evaluate", b'{"tick_time": "soon"}')
    assert status == 400 and body["error"]["message"] == "'tick_time' must be the tick's time in epoch seconds"
    status, body = raw("POST", server.url + "/v1/jobs/etl/validate", b'{"ops": 5}')
    assert status == 400 and body["error"]["message"] == (
        "'ops' must be an op selection string or a list of op names")
    assert body["error"]["kind"] == "bad_request"
    with pytest.raises(CodeServerNotFoundError) as info:
        server.client.evaluate_sensor("nope")
    assert info.value.available == ["broken_sensor", "new_files", "no_job_sensor", "slow_sensor"]


def test_module_location_and_attribute(start_server, tmp_path: Path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "defs.py").write_text(textwrap.dedent(DEFS) + "\nother = Definitions(jobs=[tiny])\n")
    srv = start_server("-m", "pkg.defs", "-a", "other", "-d", str(tmp_path))
    health = srv.client.health()
    assert health.location_name == "pkg.defs" and health.ok
    assert health.code_pointer == {"module": "pkg.defs", "attribute": "other", "working_directory": str(tmp_path)}
    assert srv.client.snapshot().job_names == ["tiny"]


def test_sigint_stops_cleanly(start_server, tmp_path: Path):
    (tmp_path / "defs.py").write_text(textwrap.dedent(DEFS))
    srv = start_server("-f", "defs.py")
    assert srv.client.health().ok
    assert srv.stop(signal.SIGINT) == 0


def test_ready_file_handshake(start_server, tmp_path: Path):
    """--ready-file: one JSON line for programs, written once the server listens; the banner stays."""
    from runyard.codeserver.protocol import ServerReady

    (tmp_path / "defs.py").write_text(textwrap.dedent(DEFS))
    ready_file = tmp_path / "ready.json"
    srv = start_server("-f", "defs.py", "--location-name", "hs", "--ready-file", str(ready_file))
    text = ready_file.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    ready = ServerReady.from_line(text)
    assert (ready.host, ready.port, ready.pid, ready.location) == ("127.0.0.1", srv.port, srv.proc.pid, "hs")
    assert json.loads(text) == {"host": "127.0.0.1", "port": srv.port, "pid": srv.proc.pid, "location": "hs",
                                "api_version": "v1"}
    srv.wait_for_banner()
    assert srv.lines[0].startswith("code server for location hs listening on")


def test_ready_fd_handshake(tmp_path: Path):
    """--ready-fd: the line arrives on the inherited descriptor, which is then closed (EOF)."""
    from runyard.codeserver.protocol import ServerReady

    (tmp_path / "defs.py").write_text(textwrap.dedent(DEFS))
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "runyard", "code-server", "--port", "0", "-f", "defs.py",
                             "--ready-fd", str(write_end)], cwd=tmp_path, env=runyard_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            pass_fds=(write_end,))
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()  # to EOF: the server closes its end after the line
        ready = ServerReady.from_line(data)
        assert ready.pid == proc.pid and ready.location == "defs"
        assert CodeServerClient(ready.host, ready.port).health().pid == proc.pid
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        proc.stderr.close()


def test_cli_errors(cli, tmp_path: Path):
    proc = cli("code-server")
    assert proc.returncode == 2 and "-f FILE" in proc.stderr
    (tmp_path / "defs.py").write_text(textwrap.dedent(DEFS))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("code-server", "-f", "defs.py", "--port", str(port))
    assert proc.returncode == 1
    assert f"Error: code server cannot listen on 127.0.0.1:{port}" in proc.stderr


# ---- the client against things that are not a code server -----------------------------------------

def test_client_against_dead_port():
    port = free_port()
    client = CodeServerClient("127.0.0.1", port, timeout=5)
    for call in (client.health, client.snapshot, lambda: client.validate("x", {}),
                 lambda: client.evaluate_sensor("s")):
        with pytest.raises(CodeServerUnavailableError) as info:
            call()
        assert str(info.value) == (f"code server at 127.0.0.1:{port} is unreachable: connection refused "
                                   "(is `runyard code-server` running there?)")
        assert isinstance(info.value, RunyardError)


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Answers like a web server that is not a code server."""

    def log_message(self, *args):
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path == "/v1/health":
            self._send(200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>")
        elif self.path == "/v1/snapshot":
            self._send(200, "application/json", b'{"jobs": "not a list"}')
        elif self.path == "/v1/slow":
            time.sleep(3)
        else:
            self._send(502, "text/html", b"<html>Bad Gateway</html>")

    def do_POST(self):  # noqa: N802
        self._send(500, "application/json", b'{"detail": "oops"}')


@pytest.fixture
def foreign_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_client_against_html_server(foreign_server: int):
    client = CodeServerClient("127.0.0.1", foreign_server, timeout=5)
    where = f"code server at 127.0.0.1:{foreign_server}"
    with pytest.raises(CodeServerUnavailableError) as info:
        client.health()
    message = str(info.value)
    assert message.startswith(f"{where} answered GET /health with HTTP 200 and text/html, not JSON")
    assert "Welcome to nginx" in message and "something other than a runyard code server" in message

    with pytest.raises(CodeServerUnavailableError) as info:
        client.snapshot()
    assert str(info.value).startswith(f"{where} sent an unexpected answer to GET /snapshot (")
    assert "jobs: Input should be a valid list" in str(info.value)  # the validation problem, in one line
    assert "\n" not in str(info.value)

    with pytest.raises(CodeServerUnavailableError) as info:
        client.evaluate_schedule("s", 1.0)
    assert "HTTP 500 and JSON that is not a code server error" in str(info.value)

    with pytest.raises(CodeServerUnavailableError) as info:
        client._call("GET", "/missing", None, lambda d: d)
    assert "HTTP 502 and text/html, not JSON" in str(info.value)

    slow = CodeServerClient("127.0.0.1", foreign_server, timeout=0.5)
    with pytest.raises(CodeServerUnavailableError) as info:
        slow._call("GET", "/slow", None, lambda d: d)
    assert str(info.value) == f"{where} did not answer GET /slow within 0.5s"
    assert isinstance(info.value, CodeServerError)


def test_import_runyard_codeserver_client_is_cheap():
    """The daemon and web UI import the client: it validates answers with pydantic models, but must
    not pull in the definitions API (only its small graph protocol), the HTTP server or SQLAlchemy."""
    code = ("import sys, runyard.codeserver.client, runyard.codeserver; "
            "print(sorted(m for m in sys.modules if m.startswith(('runyard.definitions', "
            "'http.server', 'sqlalchemy', 'runyard.codeserver.server', 'runyard.codeserver.snapshot_builder'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")})
    assert out.stdout.strip() == "['runyard.definitions', 'runyard.definitions.graph_view']"
