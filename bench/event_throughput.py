#!/usr/bin/env python
"""event_throughput: K events written into one run's event log on SQLite storage, per second.

APIs (``--apis``):

  store_event    one ``storage.store_event(Event(...))`` call - one transaction - per event: the
                 same shape as Dagster's per-call ``event_log_storage.store_event(entry)`` figure.
                 Events are built before the clock starts.
  sink           what a run worker does: ``EventSink.emit(...)`` per event (buffered, written in
                 batches of ``--batch`` by the sink and its flusher thread) and ``close()`` at the
                 end; the clock stops after close, when every event is committed.
  store_events   ``storage.store_events(batch)`` with ready-made batches of ``--batch`` events.

One run is created per repeat; the loop stops at K events or ``--max-seconds`` (checked every 50
events), whichever comes first. Each repeat checks that storage holds exactly the events written,
then deletes the run. Figures: ``events_per_s``, ``events_written``, ``wall_s``.

  python bench/event_throughput.py [--apis store_event,sink,store_events] [-k 20000] [--repeats 3]
                                   [--max-seconds 60] [--batch 500]
"""

from __future__ import annotations

import argparse
import shutil
import time

from rybench import emit, log, make_home, stats

APIS = ("store_event", "sink", "store_events")


def make_events(run_id: str, k: int) -> list:
    from runyard.storage.records import Event, EventType

    now = time.time()
    return [Event(run_id=run_id, event_type=EventType.ENGINE_EVENT, message=f"bench event {i}",
                  timestamp=now + i * 1e-6) for i in range(k)]


# ------------------------------------------------------------------------------------------------ #
# The runyard-specific part: write up to k events for one run; return how many were written.
# ------------------------------------------------------------------------------------------------ #
def write_events(api: str, storage, run_id: str, events: list | None, k: int, batch: int,
                 deadline: float) -> int:
    if api == "store_event":
        for i in range(k):
            if i % 50 == 0 and time.perf_counter() > deadline:
                return i
            storage.store_event(events[i])
        return k
    if api == "store_events":
        for start in range(0, k, batch):
            if time.perf_counter() > deadline:
                return start
            storage.store_events(events[start:start + batch])
        return k
    if api == "sink":
        from runyard.execution.events import EventSink
        from runyard.storage.records import EventType

        sink = EventSink(storage, run_id, max_batch=batch).start()
        written = k
        try:
            for i in range(k):
                if i % 50 == 0 and time.perf_counter() > deadline:
                    written = i
                    break
                sink.emit(EventType.ENGINE_EVENT, f"bench event {i}")
        finally:
            sink.close()
        return written
    raise ValueError(api)


def main() -> None:
    ap = argparse.ArgumentParser(description="event log write throughput on SQLite")
    ap.add_argument("--apis", default=",".join(APIS), help=f"comma list of {', '.join(APIS)}")
    ap.add_argument("-k", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=500, help="batch size of sink and store_events")
    args = ap.parse_args()
    apis = [a for a in args.apis.split(",") if a]
    for api in apis:
        if api not in APIS:
            ap.error(f"unknown api {api!r} (choose from {', '.join(APIS)})")

    from runyard.instance.instance import Instance
    from runyard.storage.records import RunStatus

    home = make_home("event_throughput")
    instance = Instance.open(home)
    storage = instance.storage
    log(f"RUNYARD_HOME={home} storage={storage.describe()}")
    try:
        for api in apis:
            rates, walls, counts = [], [], []
            for r in range(args.repeats):
                run = instance.create_run(job_name="bench_job", status=RunStatus.STARTED)
                events = make_events(run.run_id, args.k) if api != "sink" else None
                t0 = time.perf_counter()
                n = write_events(api, storage, run.run_id, events, args.k, args.batch,
                                 t0 + args.max_seconds)
                wall = time.perf_counter() - t0
                stored = len(storage.get_events(run.run_id))
                if stored != n:
                    raise SystemExit(f"{api}: wrote {n} events but storage holds {stored}")
                rates.append(n / wall)
                walls.append(wall)
                counts.append(n)
                log(f"sqlite {api:13s} repeat {r + 1}: {n} events in {wall:.3f}s = {n / wall:,.0f} ev/s")
                storage.delete_run(run.run_id)
            emit("event_throughput", orchestrator="runyard", storage="sqlite", api=api,
                 batch=(args.batch if api != "store_event" else None), k_target=args.k,
                 max_seconds=args.max_seconds, events_written=stats(counts, 0),
                 events_per_s=stats(rates, 1), wall_s=stats(walls, 4))
    finally:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
