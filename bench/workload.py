"""The runyard code location every benchmark runs (the *workload*): the same shapes as the Dagster
side measures.

* ``trivial_job`` - one op that does nothing and returns None.
* ``fanout_job``  - N independent no-op ops (N = ``$BENCH_FANOUT_N``, default 200) whose outputs
  are ``None`` (they only order steps, like Dagster's ``Nothing``), plus one ``final`` op that takes
  all of them as one fan-in list input.

Run workers load it as a python file (``code_pointer_for(python_file=...)``); the in-process
benchmarks import it directly.
"""

from __future__ import annotations

import os

from runyard import Definitions, job, op

FANOUT_N = int(os.environ.get("BENCH_FANOUT_N", "200"))


@op
def noop() -> None:
    return None


@job
def trivial_job():
    noop()


@op
def leaf() -> None:
    return None


@op
def final(ups: list) -> None:
    return None


@job
def fanout_job():
    final([leaf.alias(f"leaf_{i}")() for i in range(FANOUT_N)])


defs = Definitions(jobs=[trivial_job, fanout_job])
