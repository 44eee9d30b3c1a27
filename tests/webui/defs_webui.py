"""Definitions the web UI tests launch: a configurable job, a slow one, a failing one, a schedule and
a sensor. Loaded only by code servers and run workers, never by the web UI process."""

import os
import time

import runyard as ry


class GreetConfig(ry.Config):
    name: str = "world"
    times: int = 1


@ry.op
def greet(context, config: GreetConfig) -> str:
    context.log.info(f"hello {config.name}")
    return ", ".join([f"hello {config.name}"] * config.times)


@ry.op
def shout(context, text: str) -> str:
    print("SHOUTING", text.upper())
    return text.upper()


@ry.job(description="Greets, then shouts the greeting.")
def hello():
    shout(greet())


class NapConfig(ry.Config):
    seconds: float = 60


@ry.op
def nap(context, config: NapConfig) -> None:
    context.log.info("napping")
    deadline = time.monotonic() + config.seconds
    tick = 0
    while time.monotonic() < deadline:
        tick += 1
        print(f"tick {tick}", flush=True)
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


@ry.job
def sleepy():
    nap()


@ry.op
def explode(context) -> int:
    raise ValueError("the op exploded on purpose")


@ry.op
def after(context, x: int) -> int:
    return x


@ry.job
def broken():
    after(explode())


class CheckConfig(ry.Config):
    fail_marker: str = ""


@ry.op
def make(context) -> int:
    return 41


@ry.op
def check(context, config: CheckConfig, n: int) -> int:
    if config.fail_marker and os.path.exists(config.fail_marker):
        raise RuntimeError(f"marker {config.fail_marker} is present")
    context.log.info(f"checked {n + 1}")
    return n + 1


@ry.job(description="Fails while a marker file exists: for re-execution from failure.")
def pipeline():
    check(make())


nightly = ry.ScheduleDefinition(name="nightly_hello", job=hello, cron_schedule="0 3 * * *")


@ry.sensor(job=hello, minimum_interval_seconds=30)
def file_sensor(context):
    return ry.SkipReason("nothing new")


defs = ry.Definitions(jobs=[hello, sleepy, broken, pipeline], schedules=[nightly], sensors=[file_sensor])
