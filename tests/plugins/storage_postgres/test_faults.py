"""Faults: the PostgreSQL server goes away mid-run and comes back.

A private server (initdb + pg_ctl on a free port, password auth; see conftest.py) is stopped while a
real run worker — launched by ``runyard job launch`` through the process launcher — is writing events,
then restarted. The worker's storage retries with backoff; its event sink keeps what it could not
write. Afterwards every event is stored exactly once, in order, and the run ends SUCCESS. Both a clean
shutdown (``pg_ctl stop -m fast``: sessions are terminated) and a crash (``-m immediate``: the server
dies and replays its WAL on restart) are tested; the storage API is also tested directly under the
same faults.

Needs: PostgreSQL server binaries (initdb, pg_ctl); real subprocesses.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter

import pytest
from conftest import open_storage

from runyard.storage.records import RunStatus
from runyard.testing import wait_until
from runyard.testing.storage import ev, make_run

TICKS = 100
AFTER = 20

DEFS = f'''
import time

from runyard import job, op


@op
def chatter(context) -> int:
    for i in range({TICKS}):
        context.log.info(f"tick {{i}}")
        time.sleep(0.05)
    return {TICKS}


@op
def summarise(context, n: int) -> None:
    for i in range({AFTER}):
        context.log.info(f"after {{i}}")
        time.sleep(0.02)
    context.log.info(f"done {{n}}")


@job
def faulty():
    summarise(chatter())
'''


@pytest.fixture
def fault_db(private_server):
    if not private_server.running:
        private_server.start()
    return private_server.create_database(f"fault_{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_run_worker_survives_a_server_restart(cli, home, write_defs, private_server, fault_db, mode):
    defs = write_defs(DEFS)
    (home / "runyard.yaml").write_text(
        "storage:\n  postgres:\n    url: {env: RY_FAULT_PG_URL}\n    reconnect_timeout: 90\n    pool_size: 2\n")
    env = {"RY_FAULT_PG_URL": fault_db}
    out = cli.ok("job", "launch", "-f", defs, "-j", "faulty", env=env).stdout
    run_id = re.search(r"Launched run ([0-9a-f]{32})", out).group(1)

    watcher = open_storage(fault_db)
    try:
        def ticks() -> int:
            return sum(1 for e in watcher.get_events(run_id) if e.message.startswith("tick "))

        wait_until(lambda: ticks() >= 15, 60, what="the worker to write some events")
        private_server.stop(mode)
        try:
            down_at = time.monotonic()
            time.sleep(3.0)  # the worker keeps logging; its writes fail and are retried
        finally:
            private_server.start()
        assert time.monotonic() - down_at >= 3.0
        ticks_before = ticks()
        assert ticks_before < TICKS, "the run finished before the outage: make it longer"

        run = wait_until(lambda: (r := watcher.get_run(run_id)) and r.status.is_finished and r, 120,
                         what="the run to finish")
        events = watcher.get_events(run_id)
        logged = [e.message for e in events if e.message.startswith(("tick ", "after ", "done "))]
        expected = [f"tick {i}" for i in range(TICKS)] + [f"after {i}" for i in range(AFTER)] + [f"done {TICKS}"]
        assert logged == expected, Counter(logged).most_common(3)
        kinds = Counter(str(e.event_type) for e in events)
        for kind in ("RUN_STARTING", "RUN_START", "RUN_SUCCESS"):
            assert kinds[kind] == 1, kinds
        assert kinds["RUN_FAILURE"] == 0
        assert run.status == RunStatus.SUCCESS, [e.message for e in events if e.level == "ERROR"]
        steps = {st.step_key: st for st in watcher.get_step_stats(run_id)}
        assert {k: (st.status, st.attempts) for k, st in steps.items()} == {
            "chatter": ("SUCCESS", 1), "summarise": ("SUCCESS", 1)}
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
    finally:
        watcher.dispose()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_storage_calls_during_an_outage_are_applied_exactly_once(private_server, fault_db, mode):
    storage = open_storage(fault_db, reconnect_timeout=60, pool_size=2)
    run = make_run()
    storage.add_run(run)
    calls: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        try:
            while not stop.is_set():
                message = f"m{i}"
                if i % 10 == 9:
                    storage.store_events([ev(run.run_id, f"{message}.{j}") for j in range(3)])
                    calls.extend(f"{message}.{j}" for j in range(3))
                else:
                    storage.store_event(ev(run.run_id, message))
                    calls.append(message)
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    private_server.stop(mode)
    time.sleep(2.0)
    private_server.start()
    time.sleep(1.0)
    # every kind of call works again on the same storage object
    assert storage.transition_run(run.run_id, [RunStatus.NOT_STARTED], RunStatus.STARTED)
    assert storage.get_run(run.run_id).status == RunStatus.STARTED
    stop.set()
    t.join(90)
    assert not errors, errors
    stored = [e.message for e in storage.get_events(run.run_id)]
    assert stored == calls  # nothing lost, nothing doubled, in call order
    assert len(calls) > 20
    storage.dispose()


def test_a_new_process_fails_fast_when_the_server_is_down(cli, home, private_server, fault_db):
    (home / "runyard.yaml").write_text("storage:\n  postgres:\n    url: {env: RY_FAULT_PG_URL}\n")
    private_server.stop("fast")
    try:
        start = time.monotonic()
        proc = cli("run", "list", env={"RY_FAULT_PG_URL": fault_db})
        elapsed = time.monotonic() - start
    finally:
        private_server.start()
    assert proc.returncode == 1, proc.stderr
    assert "Connection refused" in proc.stderr and "Is the server running" in proc.stderr
    assert private_server.password not in proc.stderr
    assert elapsed < 15
