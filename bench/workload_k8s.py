"""The runyard code location of bench/k8s_compare.py's failure-detection figure (``workload.py`` is
unchanged): ``waiting_job``, one op that sleeps ``$BENCH_WAIT_S`` seconds (default 120), so its pod
is still running when the bench evicts it. The run's pod loads this file from the same path (the bench
mounts ``bench/`` there by a hostPath volume)."""

from __future__ import annotations

import os
import time

from runyard import Definitions, job, op

WAIT_S = float(os.environ.get("BENCH_WAIT_S", "120"))


@op
def wait() -> None:
    time.sleep(WAIT_S)


@job
def waiting_job():
    wait()


defs = Definitions(jobs=[waiting_job])
