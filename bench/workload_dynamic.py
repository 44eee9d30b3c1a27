"""The jobs of bench/dynamic_fanout.py: the same op body run N times, once through a dynamic
fan-out (``mapped_job``: one DynamicOut with N mapping keys, ``.map(body)``, ``.collect()``) and once
as N static ops (``static_job``: N aliases of ``body`` fed by one op, fanned into one list). Both have
N + 2 steps. N is ``$BENCH_DYNAMIC_N`` (default 1000), read at import."""

from __future__ import annotations

import os

from runyard import Definitions, DynamicOut, DynamicOutput, job, op

N = int(os.environ.get("BENCH_DYNAMIC_N", "1000"))


@op(out=DynamicOut(int))
def emit():
    for i in range(N):
        yield DynamicOutput(i, mapping_key=f"k{i}")


@op
def seed() -> int:
    return 1


@op
def body(x: int) -> int:
    return x + 1


@op
def total(values: list) -> int:
    return len(values)


@job
def mapped_job():
    total(emit().map(body).collect())


@job
def static_job():
    s = seed()
    total([body.alias(f"body_{i}")(s) for i in range(N)])


defs = Definitions(jobs=[mapped_job, static_job])
