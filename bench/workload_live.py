"""The code location of ``webui_live.py`` (the twin of Dagster's ``workload_ticker.py``):
``ticker_job`` logs ``tick i`` with ``context.log.info`` every 100 ms for 10 s, in the run worker's
process (the in-process executor, runyard's default and what Dagster's side asks for).
``$BENCH_TICKS`` changes the number of ticks. ``quiet_job`` sleeps ``$BENCH_QUIET_SECONDS`` (600)
without logging: the run the load test's open pages follow."""

from __future__ import annotations

import os
import time

from runyard import Definitions, job, op

TICKS = int(os.environ.get("BENCH_TICKS", "100"))


@op
def tick_10s(context) -> None:
    start = time.time()
    for i in range(TICKS):
        delay = start + i * 0.1 - time.time()
        if delay > 0:
            time.sleep(delay)
        context.log.info(f"tick {i}")


@job
def ticker_job():
    tick_10s()


@op
def stay_quiet(context) -> None:
    time.sleep(float(os.environ.get("BENCH_QUIET_SECONDS", "600")))


@job
def quiet_job():
    """A run that logs nothing for a long while: what the open pages of the load test follow."""
    stay_quiet()


defs = Definitions(jobs=[ticker_job, quiet_job])
