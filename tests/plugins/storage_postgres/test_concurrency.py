"""Concurrency with real processes (``spawn``), each with its own storage object and pool:

* 8 writers append events to one run, and to 8 runs (some batches span two runs), while a reader
  follows by cursor: nothing lost, nothing doubled, each writer's order kept, ids strictly
  increasing, and the live reader sees exactly what storage ends up holding, in order;
* 4 claimers race over 200 queued runs: each run is claimed exactly once, with one RUN_STARTING;
* lease holders (2, and 4) acquire, renew, stall past expiry and release for a few seconds: no two
  ever hold at once, and every change of holder bumps the fencing token.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (see conftest.py).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import defaultdict

import pytest
from conftest import open_storage, truncate_all

from runyard.storage.records import Event, EventType, RunStatus
from runyard.testing.storage import make_run

CTX = multiprocessing.get_context("spawn")
S = RunStatus


def _storage(url: str):
    from runyard_storage_postgres.config import PostgresStorageConfig
    from runyard_storage_postgres.storage import PostgresRunStorage

    return PostgresRunStorage(PostgresStorageConfig(url=url, pool_size=2, max_overflow=0))


# ---- workers (module level: spawned processes import them) ---------------------------------------------
def _writer(url: str, run_ids: list[str], writer: int, batches: int, go, done) -> None:
    storage = _storage(url)
    rng = random.Random(writer)
    seq: dict[str, int] = defaultdict(int)
    go.wait(60)
    for b in range(batches):
        size = rng.randint(1, 6)
        targets = [run_ids[(writer + b) % len(run_ids)]]
        if len(run_ids) > 1 and b % 7 == 3:  # a batch spanning two runs
            targets.append(run_ids[(writer + b + 1) % len(run_ids)])
        events = []
        for i in range(size):
            rid = targets[i % len(targets)]
            events.append(Event(run_id=rid, event_type=EventType.LOG, message=f"w{writer}",
                                data={"w": writer, "seq": seq[rid]}))
            seq[rid] += 1
        if size == 1:
            storage.store_event(events[0])
        else:
            storage.store_events(events)
    storage.dispose()
    done.put((writer, dict(seq)))


def _tail(url: str, run_id: str, stop, out) -> None:
    storage = _storage(url)
    cursor, seen = None, []
    while True:
        finished = stop.is_set()
        for e in storage.get_events(run_id, after_id=cursor):
            seen.append(e.id)
            cursor = e.id
        if finished:
            break
        storage.wait_for_events(run_id, cursor, timeout=0.2)
    storage.dispose()
    out.put(seen)


def _claimer(url: str, name: str, go, out) -> None:
    storage = _storage(url)
    rng = random.Random(name)
    claimed: list[list[str]] = []
    go.wait(60)
    empty = 0
    while empty < 3:
        got = storage.claim_queued_runs(name, limit=rng.randint(1, 7))
        if got:
            claimed.append([r.run_id for r in got])
            empty = 0
        else:
            empty += 1
            time.sleep(0.01)
    storage.dispose()
    out.put((name, claimed))


def _holder(url: str, name: str, seconds: float, ttl: float, go, out) -> None:
    storage = _storage(url)
    rng = random.Random(name)
    held: list[tuple[float, float, int]] = []  # (from, until, token): from = when the call returned
    lease = None
    go.wait(60)
    end = time.time() + seconds
    while time.time() < end:
        if lease is None:
            lease = storage.acquire_lease("leader", name, ttl_seconds=ttl)
        else:
            roll = rng.random()
            if roll < 0.1:
                held.append((held[-1][0], time.time(), lease.token))  # stops acting before it releases
                storage.release_lease("leader", name)
                lease = None
                time.sleep(rng.uniform(0, ttl))
                continue
            if roll < 0.25:
                time.sleep(ttl * 1.5)  # a stall: the lease expires meanwhile, renewal must fail
            renewed = storage.renew_lease(lease, ttl_seconds=ttl)
            if renewed is None:
                assert roll < 0.25 or time.time() > lease.expires_at, "lost a lease that had not expired"
            lease = renewed
        if lease is not None:
            held.append((time.time(), lease.expires_at, lease.token))
            time.sleep(rng.uniform(0, ttl * 0.6))
        else:
            time.sleep(rng.uniform(0, ttl * 0.3))
    storage.dispose()
    out.put((name, held))


def _start(procs) -> None:
    for p in procs:
        p.start()


def _join(procs, timeout: float = 120) -> None:
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0, f"{p.name} exited {p.exitcode}"


# ---- tests ------------------------------------------------------------------------------------------------
@pytest.fixture
def storage(pg_url):
    s = open_storage(pg_url)
    truncate_all(s)
    yield s
    s.dispose()


@pytest.mark.parametrize("n_runs", [1, 8], ids=["one-run", "eight-runs"])
def test_eight_writer_processes_lose_and_reorder_nothing(storage, pg_url, n_runs):
    runs = [make_run() for _ in range(n_runs)]
    for r in runs:
        storage.add_run(r)
    run_ids = [r.run_id for r in runs]
    go, stop, done, tailed = CTX.Event(), CTX.Event(), CTX.Queue(), CTX.Queue()
    writers = [CTX.Process(target=_writer, args=(pg_url, run_ids, w, 60, go, done), name=f"writer-{w}")
               for w in range(8)]
    reader = CTX.Process(target=_tail, args=(pg_url, run_ids[0], stop, tailed), name="reader")
    _start([reader, *writers])
    time.sleep(1.0)  # let every process import and connect, then start them together
    go.set()
    written = dict(done.get(timeout=180) for _ in writers)
    _join(writers)
    stop.set()
    seen = tailed.get(timeout=60)
    _join([reader])

    for rid in run_ids:
        events = storage.get_events(rid)
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for w in range(8):
            seqs = [e.data["seq"] for e in events if e.data["w"] == w]
            assert seqs == list(range(written[w].get(rid, 0))), f"writer {w} on run {rid}"
    total = sum(sum(seq.values()) for seq in written.values())
    assert sum(len(storage.get_events(rid)) for rid in run_ids) == total
    # the live reader missed nothing that committed "behind" its cursor
    assert seen == [e.id for e in storage.get_events(run_ids[0])]


def test_four_claimer_processes_claim_each_of_200_runs_exactly_once(storage, pg_url):
    rng = random.Random(4)
    runs = []
    for i in range(200):
        r = make_run(status=S.QUEUED, tags={"runyard/priority": str(rng.choice([0, 0, 1, 5]))})
        r.created_at = 1000.0 + i
        storage.add_run(r)
        runs.append(r)
    go, out = CTX.Event(), CTX.Queue()
    claimers = [CTX.Process(target=_claimer, args=(pg_url, f"claimer-{i}", go, out), name=f"claimer-{i}")
                for i in range(4)]
    _start(claimers)
    time.sleep(1.0)
    go.set()
    results = dict(out.get(timeout=120) for _ in claimers)
    _join(claimers)

    claimed = [(name, rid) for name, batches in results.items() for batch in batches for rid in batch]
    assert sorted(rid for _, rid in claimed) == sorted(r.run_id for r in runs)  # each exactly once
    assert sum(1 for batches in results.values() if batches) >= 2, "no competition happened"
    for name, rid in claimed:
        (event,) = storage.get_events(rid)
        assert event.event_type == EventType.RUN_STARTING and event.data == {"claimed_by": name}
        assert storage.get_run(rid).status == S.STARTING
    priority = {r.run_id: (-int(r.tags["runyard/priority"]), r.created_at) for r in runs}
    for batches in results.values():  # every claim took its runs in queue order
        for batch in batches:
            assert [priority[rid] for rid in batch] == sorted(priority[rid] for rid in batch)


@pytest.mark.parametrize("holders", [2, 4])
def test_lease_holders_never_both_hold(storage, pg_url, holders):
    go, out = CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_holder, args=(pg_url, f"holder-{i}", 5.0, 0.25, go, out), name=f"holder-{i}")
             for i in range(holders)]
    _start(procs)
    time.sleep(1.0)
    go.set()
    results = dict(out.get(timeout=120) for _ in procs)
    _join(procs)

    spans = []
    for name, held in results.items():
        for start, until, token in held:
            if spans and spans[-1][3] == name and spans[-1][0] == start:  # a release ended this span early
                spans[-1] = (start, until, token, name)
            else:
                spans.append((start, until, token, name))
    spans.sort()
    assert sum(1 for held in results.values() if held) >= 2, "the lease never changed hands"
    changes = 0
    for (_, u1, t1, n1), (s2, _, t2, n2) in zip(spans, spans[1:], strict=False):
        if n1 != n2:
            assert s2 >= u1, f"{n2} held from {s2} while {n1} held until {u1}"
            assert t2 > t1, f"holder changed {n1}->{n2} without a new fencing token ({t1} -> {t2})"
            changes += 1
        else:
            assert t2 >= t1
    assert changes >= 2
