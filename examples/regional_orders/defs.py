"""Regional orders: a daily-partitioned pipeline that fans out over the regions that traded.

    list_regions ==map==> region_orders[r]: extract_orders -> price_orders ==collect==> check_orders
                                                                                 valid   |  rejected (optional)
                                                                              load_day <-+-> quarantine

One run is one day (a partition of ``DailyPartitionsDefinition`` from 2024-01-01). ``list_regions``
yields one dynamic output per region open that day (east is closed on Sundays); the graph
``region_orders`` runs once per region (steps ``region_orders.extract_orders[north]``, ...);
``check_orders`` collects the priced rows and splits them into ``valid`` and, only when there are
bad rows, ``rejected``: ``quarantine`` runs only then. ``load_day`` upserts the day into a SQLite
warehouse in the instance home. A failure hook on every op writes an alert file; a success hook
on ``load_day`` logs what was loaded. A schedule runs yesterday's partition every night.

Everything is generated locally from the partition key (no network, same data every time).

    runyard job execute -f examples/regional_orders/defs.py -j regional_orders --partition 2024-01-07
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sqlite3
import zlib

from pydantic import Field

from runyard import (
    Config,
    Definitions,
    DynamicOut,
    DynamicOutput,
    HookContext,
    Out,
    Output,
    build_schedule_from_partitioned_job,
    config_mapping,
    daily_partitioned_config,
    failure_hook,
    graph,
    job,
    op,
    resource,
    success_hook,
)
from runyard.tags import PARENT_RUN_ID_TAG

# SKU -> unit price in EUR. "SKU-999" (a typo in a shop's till) is not in it.
PRICES: dict[str, float] = {"SKU-100": 24.90, "SKU-101": 11.50, "SKU-200": 7.20, "SKU-201": 9.80,
                            "SKU-300": 12.00, "SKU-301": 54.00, "SKU-302": 129.00}
REGIONS = ("north", "south", "east", "west")
CLOSED_ON_SUNDAYS = frozenset({"east"})


def _in_home(path: str, home: str) -> str:
    """A relative path is relative to the instance home (the run's, else $RUNYARD_HOME, else ./.runyard)."""
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    return os.path.abspath(os.path.join(home or os.environ.get("RUNYARD_HOME") or ".runyard", path))


# ---- resources ------------------------------------------------------------------------------------

class WarehouseConfig(Config):
    path: str = Field("regional_orders.db", description="SQLite file, relative to the instance home.")


@resource(config=WarehouseConfig)
def warehouse(context):
    """A connection to the SQLite warehouse; the table is created on first use."""
    path = _in_home(context.config.path, context.home)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.execute("""CREATE TABLE IF NOT EXISTS region_sales (
                        day TEXT NOT NULL, region TEXT NOT NULL, orders INTEGER NOT NULL,
                        revenue REAL NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (day, region))""")
    try:
        yield conn
    finally:
        conn.close()


class AlertFiles:
    """Alerts as files: one ``<run id>-<step key>.txt`` per alert (a stand-in for a pager)."""

    def __init__(self, directory: str):
        self.directory = directory

    def send(self, run_id: str, step_key: str, text: str) -> str:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"{run_id}-{step_key}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        return path


class AlertsConfig(Config):
    directory: str = Field("alerts", description="Where alert files go, relative to the instance home.")


@resource(config=AlertsConfig)
def alerts(context) -> AlertFiles:
    return AlertFiles(_in_home(context.config.directory, context.home))


# ---- hooks ----------------------------------------------------------------------------------------

@failure_hook(required_resource_keys={"alerts"})
def alert_on_failure(context: HookContext):
    """Write an alert file naming the failed step and its error."""
    path = context.resources.alerts.send(
        context.run_id, context.step_key,
        f"{context.job_name}: step {context.step_key} failed: {context.op_exception!r}")
    context.log.warning(f"alert written to {path}")


@success_hook
def log_loaded(context: HookContext):
    """Log what load_day stored."""
    loaded = context.op_output_values["result"]
    context.log.info(f"loaded {loaded['rows']} region row(s) for {loaded['day']}: "
                     f"revenue {loaded['revenue']:,.2f} EUR")


# ---- fan-out: one dynamic output per region that traded ------------------------------------------

class RegionsConfig(Config):
    day: dt.date = Field(description="The day to load (set from the partition key).")
    regions: list[str] = Field(list(REGIONS), description="Regions to consider.")


@op(out=DynamicOut(str))
def list_regions(context, config: RegionsConfig):
    """One DynamicOutput per region open on the day (the east shops close on Sundays)."""
    for region in config.regions:
        if region in CLOSED_ON_SUNDAYS and config.day.weekday() == 6:
            context.log.info(f"{region} is closed on Sundays: no orders for {config.day}")
            continue
        yield DynamicOutput(region, mapping_key=region)


# ---- the per-region graph, with a config mapping --------------------------------------------------

class ExtractConfig(Config):
    orders: int = Field(40, ge=1, le=10_000, description="Orders generated per region and day.")
    bad_row_rate: float = Field(0.05, ge=0, le=1, description="Share of rows generated broken.")
    fail_region: str | None = Field(None, description="Demo only: the extract of this region fails "
                                                      "in a first run (re-executions succeed).")


@op
def extract_orders(context, config: ExtractConfig, region: str) -> list[dict]:
    """Generate the region's orders for the partition's day, from a seed (a stand-in for a pull)."""
    day = context.partition_key
    if config.fail_region == region and PARENT_RUN_ID_TAG not in context.run_tags:
        raise ConnectionError(f"the {region} order feed is unreachable (simulated)")
    rng = random.Random(zlib.crc32(f"{day}/{region}".encode()))
    skus = sorted(PRICES)
    orders = []
    for n in range(config.orders):
        order = {"order_id": f"{region}-{day}-{n:04d}", "day": day, "region": region,
                 "sku": rng.choice(skus), "quantity": rng.randint(1, 4)}
        if rng.random() < config.bad_row_rate:  # the mess real sources have
            if rng.random() < 0.5:
                order["sku"] = "SKU-999"
            else:
                order["quantity"] = -order["quantity"]
        orders.append(order)
    context.log.info(f"extracted {len(orders)} orders for {region} on {day}")
    return orders


@op
def price_orders(orders: list[dict]) -> list[dict]:
    """Add the line revenue; an unknown SKU gets ``revenue: None`` (check_orders rejects it)."""
    return [{**o, "revenue": round(PRICES[o["sku"]] * o["quantity"], 2) if o["sku"] in PRICES else None}
            for o in orders]


class RegionOrdersConfig(Config):
    orders_per_region: int = Field(40, ge=1, le=10_000)
    bad_row_rate: float = Field(0.05, ge=0, le=1)
    fail_region: str | None = None


@config_mapping
def region_orders_config(cfg: RegionOrdersConfig) -> dict:
    """The graph's one config, spread over its ops."""
    return {"extract_orders": {"config": {"orders": cfg.orders_per_region,
                                          "bad_row_rate": cfg.bad_row_rate,
                                          "fail_region": cfg.fail_region}}}


@graph(config=region_orders_config)
def region_orders(region: str):
    """Extract and price one region's orders."""
    return price_orders(extract_orders(region))


# ---- fan-in and the optional branch ---------------------------------------------------------------

@op(outs={"valid": Out(list), "rejected": Out(list, is_required=False)})
def check_orders(context, priced: list[list[dict]]):
    """Split all regions' rows into valid ones and, only if there are any, rejected ones."""
    rows = [row for region_rows in priced for row in region_rows]
    valid = [r for r in rows if r["revenue"] is not None and r["quantity"] > 0]
    rejected = [r for r in rows if r["revenue"] is None or r["quantity"] <= 0]
    yield Output(valid, "valid")
    if rejected:
        context.log.warning(f"{len(rejected)} of {len(rows)} rows rejected")
        yield Output(rejected, "rejected")


@op
def quarantine(context, rows: list[dict]) -> str:
    """Keep the rejected rows for a human: ``<home>/quarantine/<day>.jsonl``."""
    directory = os.path.join(context.home, "quarantine")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{context.partition_key}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    context.log.warning(f"quarantined {len(rows)} row(s) in {path}")
    return path


@op(required_resource_keys={"warehouse"})
def load_day(context, rows: list[dict]) -> dict:
    """Upsert orders and revenue per region for the day (re-running a day replaces it)."""
    day = context.partition_key
    totals: dict[str, list] = {}
    for r in rows:
        total = totals.setdefault(r["region"], [0, 0.0])
        total[0] += 1
        total[1] += r["revenue"]
    conn: sqlite3.Connection = context.resources.warehouse
    with conn:  # one transaction
        conn.execute("DELETE FROM region_sales WHERE day = ?", (day,))
        conn.executemany("INSERT INTO region_sales (day, region, orders, revenue, run_id) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [(day, region, n, round(revenue, 2), context.run_id)
                          for region, (n, revenue) in sorted(totals.items())])
    return {"day": day, "rows": len(totals), "orders": len(rows),
            "revenue": round(sum(revenue for _, revenue in totals.values()), 2)}


# ---- the partitioned job, its schedule, and the Definitions ---------------------------------------

@daily_partitioned_config(start_date="2024-01-01")
def daily_config(start: dt.datetime, _end: dt.datetime) -> dict:
    """The run config of one day's partition."""
    return {"ops": {"list_regions": {"config": {"day": start.strftime("%Y-%m-%d")}}}}


@job(config=daily_config, resources={"warehouse": warehouse, "alerts": alerts},
     hooks={alert_on_failure}, tags={"team": "sales"})
def regional_orders():
    """One day of orders: fan out over the regions, check, load, quarantine bad rows."""
    priced = list_regions().map(region_orders)
    valid, rejected = check_orders(priced.collect())
    load_day.with_hooks({log_loaded})(valid)
    quarantine(rejected)


# Every night at 01:00 UTC, yesterday's partition (the daemon evaluates it; it starts stopped).
regional_orders_schedule = build_schedule_from_partitioned_job(regional_orders, hour_of_day=1)

defs = Definitions(jobs=[regional_orders], schedules=[regional_orders_schedule])
