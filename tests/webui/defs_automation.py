"""Definitions for the automation tests (tests/webui/test_automation*.py): a schedule in a non-UTC
timezone, a sensor that asks for keyed runs, one that skips, one that raises, and a fast one for the
daemon. Kept apart from defs_webui.py, whose tests count its one schedule and one sensor. Loaded
only by code servers and run workers.

``AUTOMATION_BROKEN_MARKER``: while that file exists, importing this module fails (a location that
does not load, with a traceback, until the marker is removed and the location reloaded)."""

import os

import runyard as ry

_marker = os.environ.get("AUTOMATION_BROKEN_MARKER")
if _marker and os.path.exists(_marker):
    raise RuntimeError(f"broken on purpose while {_marker} exists")


class PingConfig(ry.Config):
    target: str = "nowhere"


@ry.op
def ping(context, config: PingConfig) -> str:
    context.log.info(f"ping {config.target}")
    return config.target


@ry.job
def pinger():
    ping()


kolkata = ry.ScheduleDefinition(name="kolkata_morning", job=pinger, cron_schedule="30 6 * * *",
                                execution_timezone="Asia/Kolkata")


@ry.sensor(job=pinger, minimum_interval_seconds=30)
def new_files(context):
    for name in ("a.csv", "b.csv"):
        yield ry.RunRequest(run_key=f"file-{name}", run_config={"ops": {"ping": {"config": {"target": name}}}},
                            tags={"file": name})


@ry.sensor(job=pinger, minimum_interval_seconds=30)
def idle_sensor(context):
    return ry.SkipReason("no new files in the inbox")


@ry.sensor(job=pinger, minimum_interval_seconds=30)
def angry_sensor(context):
    raise ValueError("the sensor failed on purpose")


@ry.sensor(job=pinger, minimum_interval_seconds=1)
def fast_sensor(context):
    return ry.SkipReason(f"nothing yet (cursor {context.cursor})")


defs = ry.Definitions(jobs=[pinger], schedules=[kolkata], sensors=[new_files, idle_sensor, angry_sensor, fast_sensor])
