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


# ---- the run page (tests/webui/test_run_page*.py): a slow step, a step retried once, pending steps --
class PaceConfig(ry.Config):
    seconds: float = 3


@ry.op
def warm_up(context) -> int:
    context.log.info("warming up")
    return 1


@ry.op
def slow_step(context, config: PaceConfig, n: int) -> int:
    context.log.info("going slowly")
    deadline = time.monotonic() + config.seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    context.log.warning("slow step done")
    return n + 1


@ry.op(retry_policy=ry.RetryPolicy(max_retries=1))
def flaky(context, n: int) -> int:
    if context.retry_number == 0:
        raise RuntimeError("flaky fails its first attempt")
    context.log.info("flaky passed on its retry")
    return n + 1


@ry.op
def wrap_up(context, n: int) -> int:
    print(f"wrapped up {n}", flush=True)
    return n


@ry.job(description="A slow step, then a step that fails once and is retried: for the run page's timeline.")
def paced():
    wrap_up(flaky(slow_step(warm_up())))


defs = ry.Definitions(jobs=[*defs.jobs.values(), paced], schedules=list(defs.schedules.values()),
                      sensors=list(defs.sensors.values()))


# ---- the job page (tests/webui/test_job_graph*.py): the op graph with every kind of edge ----------
class WindowConfig(ry.Config):
    days: int = 3
    until: str | None = None


class IngestConfig(ry.Config):
    source: str
    limit: int = 100
    window: WindowConfig = WindowConfig()


@ry.resource
def warehouse(context):
    """Where the rows are stored."""
    return "warehouse"


@ry.op(retry_policy=ry.RetryPolicy(max_retries=2, delay=0.5, backoff=ry.Backoff.EXPONENTIAL), tags={"kind": "io"})
def ingest(context, config: IngestConfig) -> list[int]:
    """Reads rows from the configured source."""
    return list(range(min(config.limit, 10)))


@ry.op(outs={"evens": ry.Out(list, description="rows with an even value"), "odds": ry.Out(list)})
def split_rows(context, rows: list[int]):
    return [r for r in rows if r % 2 == 0], [r for r in rows if r % 2]


@ry.op
def prepare_tables(context) -> None:
    context.log.info("tables ready")


@ry.op(required_resource_keys={"warehouse"})
def store_rows(context, evens: list, odds: list, ready: None) -> int:
    return len(evens) + len(odds)


@ry.success_hook
def note_stored(context):
    """Logs how many rows were stored."""
    context.log.info(f"stored {context.op_output_values['result']} rows")


@ry.failure_hook(required_resource_keys={"warehouse"})
def warn_warehouse(context):
    context.log.warning(f"{context.resources.warehouse}: {context.op_exception}")


@ry.op
def audit_rows(context, parts: list) -> str:
    return f"{len(parts)} parts"


@ry.op
def count_rows(context, n: int) -> int:
    return n


@ry.job(resources={"warehouse": warehouse},
        description="Ingest, split, store after the tables are ready, audit the parts together.")
def op_graph():
    evens, odds = split_rows(ingest())
    stored = store_rows.with_hooks({note_stored, warn_warehouse})(evens, odds, prepare_tables())
    audit_rows([evens, odds])
    count_rows(stored)
    count_rows.alias("recount_rows")(stored)


def _wide_graph(size: int = 200, seed: int = 14) -> ry.JobDefinition:
    """A generated job of ``size`` ops in ~16 layers: each op reads one to three earlier ops (mostly
    the layer before, sometimes further back), a few through one fan-in input."""
    import random

    def source(context) -> int:
        return 1

    def one(context, a: int) -> int:
        return a

    def two(context, a: int, b: int) -> int:
        return a + b

    def many(context, parts: list) -> int:
        return sum(parts)

    rng = random.Random(seed)
    layers: list[list[str]] = []
    ops, deps = [], {}
    for i in range(size):
        name = f"wide_{i:03d}"
        layer = 0 if i < 14 else min(len(layers), 1 + (i - 14) * 15 // (size - 14))
        if layer == len(layers):
            layers.append([])
        layers[layer].append(name)
        if layer == 0:
            ops.append(ry.op(name=name)(source))
            continue
        near = layers[layer - 1]
        earlier = [n for ls in layers[:layer] for n in ls]
        kind = rng.choice(["one", "one", "two", "two", "many"])
        if kind == "one":
            ops.append(ry.op(name=name)(one))
            deps[name] = {"a": ry.DependencyOn(rng.choice(near))}
        elif kind == "two":
            ops.append(ry.op(name=name)(two))
            deps[name] = {"a": ry.DependencyOn(rng.choice(near)), "b": ry.DependencyOn(rng.choice(earlier))}
        else:
            ops.append(ry.op(name=name)(many))
            picks = [rng.choice(near)] + rng.sample(earlier, 2)
            deps[name] = {"parts": [ry.DependencyOn(p) for p in dict.fromkeys(picks)]}
    return ry.JobDefinition("wide_graph", ops=ops, dependencies=deps,
                         description=f"{size} generated ops: the job page must lay them out without overlap.")

defs = ry.Definitions(jobs=[*defs.jobs.values(), op_graph, _wide_graph()], schedules=list(defs.schedules.values()),
                      sensors=list(defs.sensors.values()))


# ---- the launchpad (tests/webui/test_launchpad*.py): required fields, a nested model, a resource ----
class CsvOptions(ry.Config):
    delimiter: str = ","
    header: bool = True


class ReadCsvConfig(ry.Config):
    path: str
    rows: int = 5
    options: CsvOptions = CsvOptions()


class CatalogConfig(ry.Config):
    url: str


@ry.resource(config=CatalogConfig)
def catalog(context):
    return context.config.url


@ry.op(required_resource_keys={"catalog"})
def read_csv(context, config: ReadCsvConfig) -> int:
    context.log.info(f"read {config.rows} rows of {config.path} from {context.resources.catalog}")
    return config.rows


class TotalConfig(ry.Config):
    label: str = "total"


@ry.op
def total_rows(context, config: TotalConfig, n: int) -> int:
    context.log.info(f"{config.label}: {n}")
    return n


@ry.job(resources={"catalog": catalog}, description="Reads a CSV file through the catalog, then totals it.")
def ingest_csv():
    total_rows(read_csv())


defs = ry.Definitions(jobs=[*defs.jobs.values(), ingest_csv], schedules=list(defs.schedules.values()),
                      sensors=list(defs.sensors.values()))


# ---- live updates (tests/webui/test_live*.py): a step that waits for a gate file, then one that prints --
class GateConfig(ry.Config):
    gate: str = ""


@ry.op
def wait_for_gate(context, config: GateConfig) -> int:
    context.log.info("waiting for the gate")
    while config.gate and os.path.exists(config.gate):
        time.sleep(0.05)
    return 5


@ry.op
def printer(context, n: int) -> int:
    for i in range(1, n + 1):
        print(f"line {i}", flush=True)
        time.sleep(0.3)
    return n


@ry.job(description="Waits while a gate file exists, then prints a line at a time: for live step logs.")
def gated():
    printer(wait_for_gate())


defs = ry.Definitions(jobs=[*defs.jobs.values(), gated], schedules=list(defs.schedules.values()),
                      sensors=list(defs.sensors.values()))
