"""Bad command-line input: one clear ``Error:`` naming the option or argument, exit code 2, never a
traceback. Every numeric option of every command (core's and installed plugins') is found by walking
the command tree, so a new option without bounds fails here.

Needs: real subprocesses and a SQLite file per test home; runyard-webui installed (its commands are
walked too).
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from runyard.params import FiniteFloatRange

BAD_NUMBERS = ["nan", "inf", "-inf", "1e30", "-1e30", "99999999999999999999999", "-99999999999999999999999",
               "", "ten"]


def run_bytes(cli, *args: str | bytes) -> subprocess.CompletedProcess:
    """``python -m runyard ARGS`` with raw bytes in argv (what a shell passes for $'\\xff')."""
    return subprocess.run([sys.executable.encode(), b"-m", b"runyard",
                           *(a if isinstance(a, bytes) else os.fsencode(a) for a in args)],
                          cwd=cli.cwd, env=cli.env(), capture_output=True, timeout=60)


def assert_usage_error(proc, *fragments: str) -> str:
    err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err, err
    assert "Error: " in err and len(err) < 2000, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    return err


@pytest.mark.parametrize("command", [["run", "show"], ["run", "logs"], ["run", "terminate"],
                                     ["run", "delete", "-y"], ["run", "reexecute"], ["run", "health"],
                                     ["execute-run"]])
def test_non_utf8_run_id(cli, command):
    proc = run_bytes(cli, *command, b"ab\xffcd")
    assert_usage_error(proc, "RUN_ID", "UTF-8")


def test_overlong_or_spaced_run_id(cli):
    assert_usage_error(cli("run", "show", "x" * 65), "RUN_ID")
    assert_usage_error(cli("run", "show", "a b"), "RUN_ID")


@pytest.mark.parametrize("value", ["1e30", "99999999999999999999999", "0", "-5", "nan"])
def test_run_list_limit(cli, value):
    assert_usage_error(cli("run", "list", "--limit", value), "--limit")


def test_run_list_limit_in_range_still_works(cli):
    assert cli.ok("run", "list", "--limit", "5").stdout.strip() == "No runs."


@pytest.mark.parametrize("host", ["bad host", "", "exa_mple.com", "-x.com", "300.1.2.3", "a" * 300])
def test_bad_host(cli, tiny_defs, host):
    assert_usage_error(cli("code-server", "-f", tiny_defs, "--host", host, "--port", "0", timeout=30), "--host")
    assert_usage_error(cli("webui", "--host", host, "--port", "0", timeout=30), "--host")


def test_bad_host_bytes(cli, tiny_defs):
    proc = run_bytes(cli, "code-server", "-f", tiny_defs, "--host", b"h\xffst")
    assert_usage_error(proc, "--host")


@pytest.mark.parametrize("value", ["nan", "inf", "1e30", "0", "-1"])
def test_evaluation_timeout(cli, tiny_defs, value):
    assert_usage_error(cli("code-server", "-f", tiny_defs, "--evaluation-timeout", value, timeout=30),
                       "--evaluation-timeout")


# ---- every numeric option of every command -----------------------------------------------------------

def numeric_options():
    from runyard.cli.main import _add_plugin_commands, cli

    _add_plugin_commands()
    found = []

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        params = cmd.get_params(click.Context(cmd))
        required_args = ["x" for p in params if isinstance(p, click.Argument) and p.required]
        for p in params:
            if isinstance(p.type, (click.types._NumberParamTypeBase,)):
                found.append((" ".join(path), cmd, p, required_args))

    walk(cli, ["runyard"])
    return found


NUMERIC = numeric_options()


def test_the_walk_finds_the_known_numeric_options():
    names = {(path, p.opts[-1]) for path, _, p, _ in NUMERIC}
    assert {("runyard run list", "--limit"), ("runyard code-server", "--evaluation-timeout"),
            ("runyard webui", "--port"), ("runyard dev", "--port")} <= names


@pytest.mark.parametrize("path, cmd, param, required", NUMERIC,
                         ids=[f"{path}{'/' + p.opts[-1]}" for path, _, p, _ in NUMERIC])
def test_every_numeric_option_is_bounded_and_refuses_nan_and_inf(path, cmd, param, required):
    kind = param.type
    assert isinstance(kind, (click.IntRange, click.FloatRange)), f"{path} {param.opts[-1]}: {kind!r} has no bounds"
    assert kind.min is not None and kind.max is not None, f"{path} {param.opts[-1]}: {kind!r} needs min and max"
    if isinstance(kind, click.FloatRange):
        assert isinstance(kind, FiniteFloatRange), f"{path} {param.opts[-1]} must refuse nan and inf"
    for value in BAD_NUMBERS:
        args = [*required, param.opts[-1], value] if param.opts[-1].startswith("-") else [value]
        # make_context parses and converts every parameter without running the command
        with pytest.raises(click.UsageError) as info:
            cmd.make_context(path.split()[-1], list(args))
        assert info.value.exit_code == 2
        assert param.opts[-1] in info.value.format_message() or value == "", (value, info.value.format_message())
