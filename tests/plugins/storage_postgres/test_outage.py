"""Outages longer than the storage's own retries: nothing a run worker did may be lost.

A private server of this module (initdb + pg_ctl on a free port; see conftest.py) is stopped while a
real run worker (``runyard job execute`` in a subprocess) is running, for much longer than the
storage's ``reconnect_timeout`` and ``connect_timeout`` — the point at which a worker used to give
up, fail the run and lose its events. The op finishes during the outage, so the run's final status
change has to wait for the server too.

* Within ``run_worker.outage_tolerance_seconds`` the worker keeps its events (in memory, spilled to
  a local file past ``run_worker.max_buffered_events``), retries with backoff, and once the server is
  back writes them all, in order, and ends the run SUCCESS.
* Past the tolerance the worker exits non-zero with a message naming the spill file, which holds
  every event it could not write (and the status change it meant to make).
* A database dropped under the worker is not an outage (waiting cannot bring it back): the worker
  exits with the server's message at its next status change, without waiting for the tolerance.

The web UI's side of an outage is in tests/webui/test_postgres_outage.py (that env installs it).

Needs: PostgreSQL server binaries (initdb, pg_ctl); real subprocesses.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import open_storage

from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard_storage_postgres.testing import PostgresUnavailable, PrivateServer

TICKS = 40

DEFS = f'''
import time

from runyard import job, op


@op
def work(context) -> int:
    for i in range({TICKS}):
        context.log.info(f"tick {{i}}")
        time.sleep(0.05)
    return {TICKS}


@op
def after(context, n: int) -> None:
    for i in range(5):
        context.log.info(f"after {{i}}")
    context.log.info(f"done {{n}}")


@job
def outage_job():
    after(work())
'''


@pytest.fixture(scope="module")
def server():
    """A private server of this module only: the tests stop it for long stretches."""
    try:
        srv = PrivateServer().init().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield srv
    srv.destroy()


@pytest.fixture
def db(server):
    if not server.running:
        server.start()
    return server.create_database(f"outage_{uuid.uuid4().hex[:8]}")


def _instance_file(home: Path, *, tolerance: float, buffered: int) -> None:
    # The storage gives up after 2 s of retrying: what used to end the run FAILURE.
    (home / "runyard.yaml").write_text(
        "storage:\n  postgres:\n    url: {env: RY_OUTAGE_PG_URL}\n    reconnect_timeout: 2\n"
        "    connect_timeout: 2\n    pool_size: 2\n"
        f"run_worker:\n  outage_tolerance_seconds: {tolerance}\n  max_buffered_events: {buffered}\n")


def _start(cli, defs: Path, db: str) -> tuple[subprocess.Popen, str]:
    proc = cli.popen("job", "execute", "-f", defs, "-j", "outage_job", env={"RY_OUTAGE_PG_URL": db})
    first = proc.stdout.readline()
    match = re.search(r"as run ([0-9a-f]{32})", first)
    assert match, first + proc.stderr.read() if proc.poll() is not None else first
    return proc, match.group(1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_worker_rides_out_an_outage_longer_than_the_storage_retries(cli, home, write_defs, server, db):
    defs = write_defs(DEFS)
    _instance_file(home, tolerance=300, buffered=10)  # a small memory bound: the spill file is used
    proc, run_id = _start(cli, defs, db)
    watcher = open_storage(db)
    try:
        def ticks() -> int:
            return sum(1 for e in watcher.get_events(run_id) if e.message.startswith("tick "))

        wait_until(lambda: ticks() >= 5, 60, what="the worker to write some events")
        watcher.dispose()
        server.stop("fast")
        try:
            # 5x the storage's reconnect_timeout and connect_timeout (what used to fail the run);
            # the op finishes meanwhile (2 s of ticks), so the final status change waits too
            time.sleep(10)
            assert proc.poll() is None, f"the worker gave up during the outage: {proc.communicate()}"
            spilled = list((home / "spill").glob("*.jsonl"))
            assert spilled, "events past max_buffered_events go to a spill file"
        finally:
            server.start()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        run = watcher.get_run(run_id)
        events = watcher.get_events(run_id)
        logged = [e.message for e in events if e.message.startswith(("tick ", "after ", "done "))]
        expected = [f"tick {i}" for i in range(TICKS)] + [f"after {i}" for i in range(5)] + [f"done {TICKS}"]
        assert logged == expected, Counter(logged).most_common(3)
        kinds = Counter(str(e.event_type) for e in events)
        assert kinds["RUN_START"] == 1 and kinds["RUN_SUCCESS"] == 1 and kinds["RUN_FAILURE"] == 0, kinds
        assert str(events[-1].event_type) == "RUN_SUCCESS"
        assert run.status == RunStatus.SUCCESS
        steps = {st.step_key: st.status for st in watcher.get_step_stats(run_id)}
        assert steps == {"work": "SUCCESS", "after": "SUCCESS"}
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
        assert not list((home / "spill").glob("*.jsonl")), "a spill file written back is removed"
        assert "storage is back" in err  # the worker said what it waited for
    finally:
        _stop(proc)
        watcher.dispose()


def test_worker_exits_with_the_events_on_disk_once_the_tolerance_passes(cli, home, write_defs, server, db):
    defs = write_defs(DEFS)
    _instance_file(home, tolerance=8, buffered=10_000)
    proc, run_id = _start(cli, defs, db)
    watcher = open_storage(db)
    try:
        wait_until(lambda: len(watcher.get_events(run_id)) >= 8, 60, what="the worker to write some events")
        watcher.dispose()
        server.stop("fast")
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            server.start()
        # what reached the database, read once it is back (the worker went on writing until the stop)
        after = open_storage(db)
        try:
            stored = [e.message for e in after.get_events(run_id)]
            status = after.get_run(run_id).status
        finally:
            after.dispose()
        assert proc.returncode not in (0, None), out + err
        assert "Traceback" not in err, err
        assert "outage_tolerance_seconds" in err and "8" in err, err
        spill = re.search(r"kept in (\S+\.jsonl)", err)
        assert spill, err
        path = Path(spill.group(1))
        assert path.parent == home / "spill" and run_id in path.name
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert {r["run_id"] for r in records} == {run_id}
        messages = [r["message"] for r in records]
        # the spill continues exactly where the stored events stop: together, every event in order
        logged = [m for m in stored + messages if m.startswith(("tick ", "after ", "done "))]
        assert logged == [f"tick {i}" for i in range(TICKS)] + [f"after {i}" for i in range(5)] + \
            [f"done {TICKS}"]
        assert records[-1]["event_type"] == "RUN_SUCCESS"  # the status change it could not make
        # the run is left as the worker last wrote it; nothing claims it finished
        assert status == RunStatus.STARTED
    finally:
        _stop(proc)


def test_worker_fails_fast_when_its_database_is_dropped(cli, home, write_defs, server, db):
    """A database that no longer exists is not an outage: waiting cannot bring it back, so the
    worker reports it at once instead of retrying for ``outage_tolerance_seconds``."""
    defs = write_defs(DEFS.replace(f"range({TICKS})", "range(200)"))  # 10 s of ticks: still running
    _instance_file(home, tolerance=300, buffered=10_000)
    proc, run_id = _start(cli, defs, db)
    watcher = open_storage(db)
    try:
        wait_until(lambda: len(watcher.get_events(run_id)) >= 8, 60, what="the worker to write some events")
        watcher.dispose()
        admin = _connect_admin(server)
        try:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE "{db.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            admin.close()
        dropped_at = time.monotonic()
        # the op logs for 20 s more; the worker ends once its next status change fails
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the worker was still waiting 90 s after its database was dropped:\n{err}")
        took = time.monotonic() - dropped_at
        assert proc.returncode not in (0, None), out + err
        assert "does not exist" in err, err
        assert "Traceback" not in err, err
        assert "storage unavailable" not in err, err  # never taken for an outage
        assert took < 60, f"the worker waited {took:.0f}s for a database that does not exist"
    finally:
        _stop(proc)


def _connect_admin(server):
    import psycopg2

    conn = psycopg2.connect(server.url())
    conn.autocommit = True
    return conn
