"""Bad input through the CLI: each case gives one clear message that says what and where, a
non-zero exit code, and no half-written state.

(Instance file errors — malformed YAML, unknown component, wrong-typed value, unset ``{env:}`` —
are in test_instance_file.py and test_plugins.py; a killed run worker is in test_worker_lifecycle.py.)

Needs: real subprocesses and a SQLite file per test home.
"""

from __future__ import annotations

import re

import pytest


def assert_error(proc, *fragments: str, code: int | None = None) -> str:
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, proc.stderr
    err = proc.stderr
    assert err.startswith("Error: "), err
    assert sum(line.startswith("Error: ") for line in err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    return err


@pytest.mark.parametrize("yaml_text, fragments", [
    ("storage:\n  sqlite: {\n", ["invalid YAML", "line "]),
    ("storage:\n  sqlite:\n    busy_timeout_ms: abc\n", ["storage.sqlite.busy_timeout_ms"]),
    ("storage:\n  sqlite:\n    path: {env: RUNYARD_TEST_NOT_SET}\n", ["RUNYARD_TEST_NOT_SET is not set"]),
])
def test_bad_instance_file_stops_job_execute_before_anything_runs(cli, home, sample_defs, yaml_text,
                                                                   fragments):
    (home / "runyard.yaml").write_text(yaml_text)
    proc = cli("job", "execute", "-f", sample_defs, "-j", "etl")
    err = assert_error(proc, str(home / "runyard.yaml"), *fragments, code=2)
    assert "Traceback" not in err
    assert not (home / "storage").exists()


def test_unknown_component_stops_job_launch_before_a_run_is_stored(cli, home, sample_defs,
                                                                   uninstalled_component):
    kind, name, dist = uninstalled_component
    (home / "runyard.yaml").write_text(f"{kind}:\n  {name}: {{}}\n")
    proc = cli("job", "launch", "-f", sample_defs, "-j", "etl")
    err = assert_error(proc, str(home / "runyard.yaml"), f"unknown {kind.replace('_', ' ')} '{name}'", dist,
                       code=2)
    assert "Traceback" not in err
    if kind != "storage":  # storage itself is fine: prove nothing was written to it
        (home / "runyard.yaml").unlink()
        assert cli.json("run", "list", "--json") == []


RAISES_ON_IMPORT = '''
from runyard import job, op


def load_settings():
    return {"region": "eu"}["zone"]


SETTINGS = load_settings()


@op
def noop() -> None:
    pass


@job
def never():
    noop()
'''


def test_definitions_file_that_raises_on_import(cli, write_defs):
    path = write_defs(RAISES_ON_IMPORT, name="bad_defs.py")
    for args in (["job", "list", "-f", path], ["job", "execute", "-f", path, "-j", "never"]):
        proc = cli(*args)
        err = assert_error(proc, f"error while importing {path}: KeyError: 'zone'", code=1)
        # the user's traceback: their file, their lines, not runyard's import machinery
        assert "Traceback (most recent call last):" in err
        assert f'File "{path}", line 8, in <module>' in err
        assert f'File "{path}", line 5, in load_settings' in err
        assert 'return {"region": "eu"}["zone"]' in err
        assert "runyard/workspace" not in err and "importlib" not in err
    assert cli.json("run", "list", "--json") == []


def test_definitions_module_that_raises_on_import(cli, write_defs, tmp_path):
    write_defs(RAISES_ON_IMPORT, name="bad_module.py")
    err = assert_error(cli("job", "list", "-m", "bad_module", "-d", tmp_path),
                       "error while importing module bad_module: KeyError: 'zone'")
    assert "bad_module.py" in err and "load_settings" in err


def test_definitions_with_a_syntax_error(cli, write_defs):
    path = write_defs("from runyard import job\n\ndef broken(:\n    pass\n", name="syntax.py")
    err = assert_error(cli("job", "list", "-f", path), f"error while importing {path}: SyntaxError")
    assert f'File "{path}", line 3' in err and "def broken(:" in err
    assert "runyard/workspace" not in err and "importlib" not in err


def test_definitions_with_a_definition_error(cli, write_defs):
    path = write_defs("""
        from runyard import job, op

        @op
        def needs(x: int) -> int:
            return x

        @job
        def incomplete():
            needs()
    """, name="invalid.py")
    err = assert_error(cli("job", "list", "-f", path), f"invalid definitions in {path}",
                       "input 'x' of op 'needs' is not connected", code=1)
    assert f'File "{path}", line 7, in <module>' in err  # the user's @job line, not runyard's frames
    assert "runyard/definitions" not in err


def test_definitions_file_that_does_not_exist(cli, tmp_path):
    missing = tmp_path / "nowhere.py"
    assert_error(cli("job", "list", "-f", missing), f"definitions file not found: {missing}")


def test_definitions_module_that_does_not_exist(cli):
    assert_error(cli("job", "list", "-m", "no_such_module_here"), "module 'no_such_module_here' not found")


def test_unknown_job_name_lists_the_jobs(cli, sample_defs):
    for command in ("execute", "launch"):
        proc = cli("job", command, "-f", sample_defs, "-j", "elt")
        assert_error(proc, "No job named 'elt'. Jobs defined here: broken, etl, waiting.", code=1)
    assert cli.json("run", "list", "--json") == []


@pytest.mark.parametrize("command", ["execute", "launch"])
def test_invalid_run_config_names_the_key_path_and_creates_no_run(cli, sample_defs, write_file, command):
    config = write_file("bad.yaml", "ops:\n  wait:\n    config:\n      seconds: soon\n")
    proc = cli("job", command, "-f", sample_defs, "-j", "waiting", "-c", config)
    err = assert_error(proc, "run config", "ops.wait.config.seconds", "'soon'", code=2)
    assert "Traceback" not in err
    assert cli.json("run", "list", "--json") == []


@pytest.mark.parametrize("yaml_text, fragment", [
    ("ops:\n  nope:\n    config: {}\n", "ops.nope: job 'waiting' has no op named 'nope'"),
    ("ops:\n  wait:\n    config:\n      second: 1\n", "ops.wait.config.second: unknown key"),
    ("opps: {}\n", "opps: unknown key"),
    ("execution:\n  turbo: {}\n", "execution.turbo: unknown executor 'turbo'"),
    ("execution:\n  in_process:\n    retries: yes\n", "execution.in_process.retries: unknown key"),
])
def test_other_invalid_run_configs(cli, sample_defs, write_file, yaml_text, fragment):
    config = write_file("bad.yaml", yaml_text)
    assert_error(cli("job", "execute", "-f", sample_defs, "-j", "waiting", "-c", config), fragment, code=2)
    assert cli.json("run", "list", "--json") == []


def test_malformed_run_config_yaml_names_its_file_and_line(cli, sample_defs, write_file):
    config = write_file("bad.yaml", "ops:\n  wait:\n    config: [\n")
    assert_error(cli("job", "execute", "-f", sample_defs, "-j", "waiting", "-c", config),
                 str(config), "invalid YAML", code=2)
    assert cli.json("run", "list", "--json") == []


@pytest.mark.parametrize("args", [
    ["run", "show", "0123456789abcdef0123456789abcdef"],
    ["run", "show", "0123456789abcdef0123456789abcdef", "--json"],
    ["run", "logs", "0123456789abcdef0123456789abcdef"],
    ["run", "terminate", "0123456789abcdef0123456789abcdef"],
    ["run", "delete", "0123456789abcdef0123456789abcdef", "--yes"],
    ["execute-run", "0123456789abcdef0123456789abcdef"],
])
def test_run_id_that_does_not_exist(cli, args):
    proc = cli(*args)
    assert proc.returncode != 0
    assert "No run with id '0123456789abcdef0123456789abcdef' in this instance." in proc.stderr
    assert "Traceback" not in proc.stderr


def test_op_that_raises(cli, sample_defs):
    proc = cli("job", "execute", "-f", sample_defs, "-j", "broken")
    assert proc.returncode == 1
    run_id = re.search(r"as run ([0-9a-f]{32})", proc.stdout).group(1)
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "FAILURE"
    assert {s["step_key"]: s["status"] for s in run["steps"]} == {
        "extract": "SUCCESS", "explode": "FAILURE", "load": "SKIPPED"}
    import json

    events = [json.loads(ln) for ln in cli.ok("run", "logs", run_id, "--json").stdout.splitlines()]
    failure, = [e for e in events if e["event_type"] == "STEP_FAILURE"]
    assert failure["data"]["error"] == "ValueError: cannot handle 3 rows"
    assert failure["data"]["error_class"] == "ValueError"
    assert "in explode" in failure["data"]["traceback"]
    assert "runyard/execution" not in failure["data"]["traceback"]
    skipped, = [e for e in events if e["event_type"] == "STEP_SKIPPED"]
    assert skipped["step_key"] == "load" and "explode" in skipped["message"]


def test_op_that_calls_sys_exit(cli, write_defs):
    path = write_defs("""
        import sys

        from runyard import job, op

        @op
        def bail() -> int:
            sys.exit(4)

        @op
        def after(x: int) -> int:
            return x

        @job
        def exits():
            after(bail())
    """)
    proc = cli("job", "execute", "-f", path, "-j", "exits")
    assert proc.returncode == 1  # the run failed; the process was not replaced by the op's exit code
    assert re.search(r"STEP_FAILURE\s+bail\s+Step 'bail' failed: op 'bail' called sys.exit\(4\)", proc.stdout)
    assert re.search(r"STEP_SKIPPED\s+after", proc.stdout)
    run_id = re.search(r"as run ([0-9a-f]{32})", proc.stdout).group(1)
    assert cli.json("run", "show", run_id, "--json")["status"] == "FAILURE"


def test_op_that_calls_sys_exit_in_a_launched_worker(cli, write_defs):
    path = write_defs("""
        import sys

        from runyard import job, op

        @op
        def bail() -> None:
            sys.exit(0)

        @job
        def exits():
            bail()
    """)
    proc = cli("job", "launch", "-f", path, "-j", "exits", "--wait")
    assert proc.returncode == 1
    run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "FAILURE"
    assert "called sys.exit(0)" in run["steps"][0]["error"]


def test_terminating_a_finished_run(cli, sample_defs):
    run_id = re.search(r"as run ([0-9a-f]{32})",
                       cli.ok("job", "execute", "-f", sample_defs, "-j", "etl").stdout).group(1)
    assert_error(cli("run", "terminate", run_id), f"Run {run_id} already finished (SUCCESS).", code=1)
