"""Run config resolution reports every problem, not the first: unknown keys, unknown ops and
resources, each config field pydantic rejects, missing required fields, the executor and reserved
tags — one RunConfigError carrying them all, each at its key path. The CLI prints every one of them,
one per line; a single problem reads as it always did."""

from __future__ import annotations

import pytest

import runyard as ry
from runyard.definitions.config import MAX_PROBLEMS, resolve_run_config
from runyard.errors import RunConfigError


class LoadConfig(ry.Config):
    path: str
    rows: int = 10


class WarehouseConfig(ry.Config):
    url: str


@ry.resource(config=WarehouseConfig)
def warehouse(context):
    return context.resource_config.url


@ry.op
def load(context, config: LoadConfig) -> int:
    return config.rows


@ry.op(required_resource_keys={"warehouse"})
def store(context, n: int) -> None:
    pass


@ry.job(resources={"warehouse": warehouse})
def etl():
    store(load())


GOOD = {"ops": {"load": {"config": {"path": "in.csv"}}}, "resources": {"warehouse": {"config": {"url": "db"}}}}


def _problems(run_config, **kwargs) -> dict[str, str]:
    with pytest.raises(RunConfigError) as info:
        resolve_run_config(etl, run_config, **kwargs)
    return {p.path: p.message for p in info.value.problems}


def test_good_config_resolves():
    resolved = resolve_run_config(etl, GOOD, check_executor=True)
    assert resolved.op_configs["load"].path == "in.csv" and resolved.resource_configs["warehouse"].url == "db"


def test_every_problem_of_every_op_and_resource_is_reported_with_its_key_path():
    problems = _problems({
        "ops": {"load": {"config": {"rows": "many", "colour": "red"}, "retries": 1}, "lode": {},
                "store": {"config": {"x": 1}}},
        "resources": {"warehouse": {"config": {}}, "cache": {}},
        "execution": {"in_process": {}, "multiprocess": {}},
        "tags": {"runyard/location": "x", "runyard/tick": "y", "team": "data"},
        "opz": {},
    })
    assert problems == {
        "opz": "unknown key (allowed: ops, resources, execution, tags)",
        "ops.lode": "job 'etl' has no op named 'lode' (ops: load, store)",
        "ops.load.retries": "unknown key (allowed: config)",
        "ops.load.config.path": "required key is missing",
        "ops.load.config.rows": "Input should be a valid integer, unable to parse string as an integer (got 'many')",
        "ops.load.config.colour": "unknown key",
        "ops.store.config": "op 'store' takes no config",
        "resources.cache": "job 'etl' has no resource 'cache' (resources: warehouse)",
        "resources.warehouse.config.url": "required key is missing",
        "execution": "choose exactly one executor (got in_process, multiprocess)",
        "tags.runyard/location": problems["tags.runyard/location"],
        "tags.runyard/tick": problems["tags.runyard/tick"],
    }
    assert "reserved tag" in problems["tags.runyard/location"]


def test_the_error_keeps_each_problems_keys_and_lists_them_one_per_line():
    with pytest.raises(RunConfigError) as info:
        resolve_run_config(etl, {"ops": {"load": {"config": {"rows": "x"}}}, "resources": {"warehouse": {}}})
    exc = info.value
    assert exc.total == 3 and exc.path is None
    assert [p.keys for p in exc.problems] == [("ops", "load", "config", "path"), ("ops", "load", "config", "rows"),
                                              ("resources", "warehouse", "config", "url")]
    assert str(exc).splitlines() == [
        "run config: invalid config:",
        "  ops.load.config.path: required key is missing",
        "  ops.load.config.rows: Input should be a valid integer, unable to parse string as an integer (got 'x')",
        "  resources.warehouse.config.url: required key is missing",
    ]


def test_one_problem_reads_as_before():
    with pytest.raises(RunConfigError) as info:
        resolve_run_config(etl, {**GOOD, "ops": {**GOOD["ops"], "nope": {}}})
    assert str(info.value) == "run config: ops.nope: job 'etl' has no op named 'nope' (ops: load, store)"
    assert info.value.path == "ops.nope" and len(info.value.problems) == 1


def test_the_executor_is_checked_with_the_rest_when_asked():
    problems = _problems({"ops": {"load": {"config": {}}}, "resources": GOOD["resources"],
                          "execution": {"no_such_executor": {}}}, check_executor=True)
    assert set(problems) == {"ops.load.config.path", "execution.no_such_executor"}
    assert "unknown executor 'no_such_executor'" in problems["execution.no_such_executor"]
    # without check_executor (the run worker checks it apart), only the rest
    assert set(_problems({"ops": {"load": {"config": {}}}, "execution": {"no_such_executor": {}}})) == {
        "ops.load.config.path", "resources.warehouse.config.url"}


def test_blocks_that_are_not_mappings_are_problems_too():
    problems = _problems({"ops": ["load"], "resources": {"warehouse": "db"}, "tags": "x"})
    assert problems == {"ops": "expected a mapping, got list", "resources.warehouse": "expected a mapping, got str",
                        "tags": "expected a mapping, got str",
                        "ops.load.config.path": "required key is missing",
                        "resources.warehouse.config.url": "required key is missing"}
    assert _problems([1, 2]) == {"(top level)": "expected a mapping, got list",
                                 "ops.load.config.path": "required key is missing",
                                 "resources.warehouse.config.url": "required key is missing"}


def test_thousands_of_problems_are_cut_short_and_counted():
    with pytest.raises(RunConfigError) as info:
        resolve_run_config(etl, {**GOOD, "ops": {**GOOD["ops"], **{f"op{i}": {} for i in range(5000)}}})
    exc = info.value
    assert exc.total == 5000 and len(exc.problems) == MAX_PROBLEMS
    message = str(exc)
    assert message.startswith("run config: invalid config (5,000 problems; the first 20):")
    assert message.splitlines()[-1] == "  ... and 4,980 more" and message.count("\n") == 21


def test_the_cli_prints_every_problem_one_per_line_and_stores_no_run(cli, write_defs, write_file):
    defs = write_defs("""
        from runyard import Config, job, op

        class Cfg(Config):
            greeting: str
            times: int = 1

        @op
        def hello(context, config: Cfg) -> str:
            return config.greeting

        @job
        def greet():
            hello()
    """)
    bad = write_file("bad.yaml", "ops:\n  hello:\n    config:\n      times: lots\n  helo: {}\nextra: 1\n")
    for command in ("launch", "execute"):
        proc = cli("job", command, "-f", defs, "-j", "greet", "-c", bad)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            "Error: run config: invalid config:",
            "  extra: unknown key (allowed: ops, resources, execution, tags)",
            "  ops.helo: job 'greet' has no op named 'helo' (ops: hello)",
            "  ops.hello.config.greeting: required key is missing",
            "  ops.hello.config.times: Input should be a valid integer, unable to parse string as an integer "
            "(got 'lots')",
        ], proc.stderr
    assert cli.json("run", "list", "--json") == []
