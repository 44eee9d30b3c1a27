"""Dagster's code location for bench/docker_compare.py: the shapes of bench/workload.py, with the fan-out job
on Dagster's docker executor (an executor is part of a Dagster job's definition; its settings come
from run config).

* ``trivial_job`` - one no-op op (the run launcher's default executor: in process in the run container).
* ``fanout_job``  - N independent no-op ops (N = ``$BENCH_FANOUT_N``, default 20) plus one op that
  waits on all of them; every step in its own container (``docker_executor``).

Loaded by the code server this bench starts and by ``dagster-daemon``, and again inside each run and
step container from the same path (the bench mounts this folder there read-only).
"""

import os

from dagster import Definitions, In, Nothing, Out, job, op
from dagster_docker import docker_executor

FANOUT_N = int(os.environ.get("BENCH_FANOUT_N", "20"))


@op
def noop():
    return None


@job
def trivial_job():
    noop()


@op(out=Out(Nothing))
def leaf():
    return None


@op(ins={f"up_{i}": In(Nothing) for i in range(FANOUT_N)})
def final():
    return None


@job(executor_def=docker_executor)
def fanout_job():
    final(**{f"up_{i}": leaf.alias(f"leaf_{i}")() for i in range(FANOUT_N)})


defs = Definitions(jobs=[trivial_job, fanout_job])
