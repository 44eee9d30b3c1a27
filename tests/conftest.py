"""Fixtures shared by every test directory (tests/core, tests/webui, tests/all, tests/e2e, ...).

Everything here drives the real thing: the CLI runs as ``python -m runyard`` in a subprocess with
``RUNYARD_HOME`` pointing at a fresh directory, storage is a real SQLite file in that directory.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runyard.testing import wait_until

CLI_TIMEOUT = 60


def runyard_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a runyard subprocess: ours without any RUNYARD_* setting, plus the home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["RUNYARD_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Cli:
    """``cli("run", "list")`` runs ``python -m runyard run list`` against the test's home."""

    def __init__(self, home: Path, cwd: Path):
        self.home = home
        self.cwd = cwd

    def env(self, **extra: str) -> dict[str, str]:
        return runyard_env(self.home, **extra)

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT,
                 input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runyard", *map(str, args)], cwd=self.cwd,
                              env={**self.env(), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, input=input if input is not None else "")

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run and insist on exit code 0."""
        proc = self(*args, **kwargs)
        assert proc.returncode == 0, f"runyard {' '.join(map(str, args))} exited {proc.returncode}\n" \
                                     f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    def json(self, *args: str, **kwargs: Any) -> Any:
        """Run a ``--json`` command, insist on exit code 0, and parse its output."""
        return json.loads(self.ok(*args, **kwargs).stdout)

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "runyard", *map(str, args)], cwd=self.cwd,
                                env={**self.env(), **(env or {})}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh, empty instance home (no instance file: all defaults, SQLite storage)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(home: Path, tmp_path: Path) -> Cli:
    return Cli(home, cwd=tmp_path)


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_file("defs.py", source)``: write dedented text under tmp_path, return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def write_defs(write_file: Callable[[str, str], Path]) -> Callable[..., Path]:
    """``write_defs(source, name="defs.py")``: a definitions file under tmp_path."""

    def write(source: str, name: str = "defs.py") -> Path:
        return write_file(name, source)

    return write


#: one job, ``tiny``, of one op: for tests about plugins, commands and services, not about jobs
TINY_DEFS = """
from runyard import Definitions, job, op


@op
def hello() -> str:
    return "hello"


@job
def tiny():
    hello()


defs = Definitions(jobs=[tiny])
"""


@pytest.fixture
def tiny_defs(write_defs: Callable[..., Path]) -> Path:
    """A definitions file holding the job ``tiny`` (one op, ``hello``)."""
    return write_defs(TINY_DEFS)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=15, what="...")``: poll until truthy, return the value."""
    return functools.partial(wait_until, timeout=15.0)


@pytest.fixture
def uninstalled_component() -> tuple[str, str, str]:
    """(instance-file key, name, distribution) of a component this project publishes separately whose
    distribution is not installed here — for "unknown name says what to install" tests."""
    from importlib.metadata import PackageNotFoundError, distribution

    from runyard.registry import KNOWN_DISTRIBUTIONS

    for (kind, name), dist in KNOWN_DISTRIBUTIONS.items():
        if kind == "executor":
            continue  # executors are chosen in run config, not the instance file
        try:
            distribution(dist)
        except PackageNotFoundError:
            return kind, name, dist
    raise AssertionError("every separately published component is installed; cannot test an unknown one")


# ---- third-party plugins, installed for real ------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path):
    """``site(plugin_name, source, dist="runyard-test-<name>")``: install a one-module plugin
    distribution (module ``runyard_test_<name>`` plus a ``.dist-info`` with an entry point in group
    ``runyard``) into ``tmp_path/site``; returns the env that puts it on a CLI subprocess's path,
    where ``importlib.metadata`` finds it exactly like an installed one."""
    import textwrap

    root = tmp_path / "site"
    root.mkdir(exist_ok=True)

    def install(name: str, source: str, dist: str | None = None, version: str = "1.2.3") -> dict[str, str]:
        dist = dist or f"runyard-test-{name}"
        module = f"runyard_test_{name}"
        (root / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[runyard]\n{name} = {module}\n")
        return {"PYTHONPATH": str(root)}

    return install


# ---- long-running processes a test starts ----------------------------------------------------------

class Procs:
    """Processes a test starts, each in its own session; every one is stopped (its whole session) at
    the end."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def add(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode


@pytest.fixture
def procs():
    """A :class:`Procs`: ``procs.add(cli.popen(..., start_new_session=True))``."""
    p = Procs()
    yield p
    for proc in p.started:
        p.stop(proc, signal.SIGKILL)
