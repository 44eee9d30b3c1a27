"""A job whose definition changes under the web UI (tests/webui/test_run_plan.py): the file that
$PLAN_CHANGE_MODE_FILE names says which version this import defines: ``v1`` (extract -> clean,
extract -> count, both -> publish), ``v2`` (one step, ``summarise``) or ``broken`` (the import fails:
the code location is down). Loaded only by code servers and run workers."""

import os
import time
from pathlib import Path

import runyard as ry

MODE = Path(os.environ["PLAN_CHANGE_MODE_FILE"]).read_text().strip()
if MODE == "broken":
    raise RuntimeError("the plan-change location is down on purpose")


@ry.op
def extract(context) -> int:
    hold = Path(os.environ["PLAN_CHANGE_MODE_FILE"]).with_name("hold")
    while hold.exists():  # the test holds the run here while it changes the location
        time.sleep(0.05)
    return 3


@ry.op
def clean(context, n: int) -> int:
    return n


@ry.op
def count(context, n: int) -> int:
    return n + 1


@ry.op
def publish(context, a: int, b: int) -> int:
    return a + b


@ry.op
def summarise(context) -> int:
    return 0


if MODE == "v1":
    @ry.job(description="Version 1: four steps.")
    def evolving():
        n = extract()
        publish(clean(n), count(n))
else:
    @ry.job(description="Version 2: one step.")
    def evolving():
        summarise()

defs = ry.Definitions(jobs=[evolving])
