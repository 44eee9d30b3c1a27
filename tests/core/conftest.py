"""Fixtures for the core distribution's tests.

Needs: nothing beyond Python (SQLite files under pytest's tmp_path, local subprocesses, /proc).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard import Instance
from runyard.daemon import Daemon
from runyard.operations.workspace import open_workspace
from runyard.testing import SuiteHome


@pytest.fixture
def instance(home: Path):
    """The test home opened in this process (real SQLite file at <home>/runyard.db)."""
    inst = Instance.open(home=str(home))
    yield inst
    inst.dispose()


def event_types(instance, run_id: str, step_key: str | None = None) -> list[str]:
    return [str(e.event_type) for e in instance.storage.get_events(run_id, step_key=step_key)]


@pytest.fixture
def types_of(instance):
    """``types_of(run_id, step_key=None)``: the run's event types in order."""

    def get(run_id: str, step_key: str | None = None) -> list[str]:
        return event_types(instance, run_id, step_key)

    return get


SAMPLE_DEFS = '''
"""A small code location used by the CLI tests."""

import os
import time

from runyard import Config, Definitions, job, op


class WaitConfig(Config):
    go_file: str = ""
    seconds: float = 0.0


@op
def extract(context) -> list[int]:
    context.log.info("extracted 3 rows")
    return [1, 2, 3]


@op
def transform(rows: list[int]) -> list[int]:
    return [r * 10 for r in rows]


@op
def load(context, rows: list[int]) -> int:
    context.log.info(f"loaded {len(rows)} rows")
    return len(rows)


@op
def explode(rows: list[int]) -> list[int]:
    raise ValueError(f"cannot handle {len(rows)} rows")


@op
def wait(context, config: WaitConfig) -> None:
    context.log.info("waiting")
    if config.go_file:
        while not os.path.exists(config.go_file):
            time.sleep(0.02)
    time.sleep(config.seconds)


@job(tags={"team": "data"})
def etl():
    """Extract, transform, load."""
    load(transform(extract()))


@job
def broken():
    load(explode(extract()))


@job
def waiting():
    wait()


defs = Definitions(jobs=[etl, broken, waiting])
'''


@pytest.fixture
def sample_defs(write_defs) -> Path:
    """``defs.py`` under tmp_path with jobs ``etl`` (3 ops), ``broken`` (middle op raises) and
    ``waiting`` (waits for ``go_file`` and/or sleeps ``seconds``, from op config)."""
    return write_defs(SAMPLE_DEFS)


@pytest.fixture
def waiting_config(tmp_path: Path):
    """``waiting_config(go_file=None, seconds=0.0)``: write run config for the ``waiting`` job to a
    file under tmp_path and return its path."""
    import json

    def write(go_file: Path | None = None, seconds: float = 0.0) -> Path:
        config = {"seconds": seconds, **({"go_file": str(go_file)} if go_file else {})}
        path = tmp_path / f"waiting-{len(list(tmp_path.glob('waiting-*.yaml')))}.yaml"
        path.write_text(json.dumps({"ops": {"wait": {"config": config}}}))  # JSON is YAML
        return path

    return write


# ---- the daemon tests: a suite home plus a started workspace on one definitions file ---------------

DAEMON_IMPORTS = """
from runyard import RunRequest, SkipReason, schedule, sensor


class NCfg(Config):
    n: int


@op
def show(config: NCfg) -> None:
    record("ran", config.n)


@job
def shown():
    show()
"""


class DaemonHarness:
    """Made by the ``daemon_harness`` fixture; closed at the test's end."""

    def __init__(self, tmp_path, source: str, settings: dict | None = None, evaluation_timeout: float | None = None):
        self.suite = SuiteHome(tmp_path, {"run_launcher": {"process": {"warm": False}}, **(settings or {})})
        self.instance = self.suite.instance
        self.defs = self.suite.write_defs(DAEMON_IMPORTS + source, name="daemon_defs.py")
        self.workspace = open_workspace([str(self.defs)], evaluation_timeout=evaluation_timeout).start()
        self.location = self.workspace.locations()[0]
        assert self.location.snapshot is not None, self.location.error
        self.daemon = Daemon(self.instance, self.workspace)
        assert self.daemon.lease.tick()  # the only daemon: it leads; loops are called directly

    def runs(self, tag: str, name: str):
        from runyard.storage.records import RunFilter

        return self.instance.storage.get_runs(RunFilter(tags={tag: name}))

    def close(self) -> None:
        self.daemon.stop()
        self.workspace.shutdown()
        self.suite.close()


@pytest.fixture
def daemon_harness(tmp_path):
    """``daemon_harness(source, settings=None, evaluation_timeout=None)``: a DaemonHarness whose
    definitions file is :data:`DAEMON_IMPORTS` + ``source``."""
    made: list[DaemonHarness] = []

    def make(source: str, settings: dict | None = None, evaluation_timeout: float | None = None):
        made.append(DaemonHarness(tmp_path, source, settings, evaluation_timeout))
        return made[-1]

    yield make
    for h in made:
        h.close()
