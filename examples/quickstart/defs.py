"""The quickstart: a small daily sales ETL.

    extract_orders -> validate_orders -+-> price_orders ------+-> aggregate_daily_revenue
                                       +-> categorise_orders -+        |
                                                                 load_warehouse -> report

Orders are generated from a seed (no network, same data every time), cleaned, enriched from a
product catalogue by two independent ops (fan-out), joined into revenue per day and region (fan-in),
upserted into a SQLite "warehouse" (the ``warehouse`` resource) and summarised in the run's log.

Run it:

    runyard job execute -f examples/quickstart/defs.py -j daily_sales_etl \
        -c examples/quickstart/run_config.yaml
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
from collections import Counter, defaultdict

from pydantic import Field

from runyard import Backoff, Config, Definitions, RetryPolicy, ScheduleDefinition, job, op, resource

# A product catalogue: SKU -> (name, category, unit price in EUR).
CATALOGUE: dict[str, tuple[str, str, float]] = {
    "SKU-100": ("espresso beans 1kg", "coffee", 24.90),
    "SKU-101": ("filter coffee 500g", "coffee", 11.50),
    "SKU-200": ("green tea 100g", "tea", 7.20),
    "SKU-201": ("earl grey 250g", "tea", 9.80),
    "SKU-300": ("ceramic mug", "equipment", 12.00),
    "SKU-301": ("pour-over kettle", "equipment", 54.00),
    "SKU-302": ("burr grinder", "equipment", 129.00),
}
REGIONS = ("north", "south", "east", "west")


# ---- the warehouse resource ---------------------------------------------------------------------

class WarehouseConfig(Config):
    path: str = Field("warehouse.db", description="SQLite file. A relative path is relative to the "
                                                  "instance home ($RUNYARD_HOME, else ./.runyard).")
    timeout_seconds: float = Field(10.0, gt=0, description="How long to wait for a locked database.")


def _resolve_path(path: str) -> str:
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    # Same rule as the instance home, so `job execute` and a launched run worker agree.
    return os.path.abspath(os.path.join(os.environ.get("RUNYARD_HOME") or ".runyard", path))


@resource(config=WarehouseConfig)
def warehouse(context):
    """A connection to the SQLite warehouse; the table is created on first use."""
    path = _resolve_path(context.config.path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path, timeout=context.config.timeout_seconds)
    conn.execute(
        """CREATE TABLE IF NOT EXISTS daily_region_revenue (
               day TEXT NOT NULL, region TEXT NOT NULL, orders INTEGER NOT NULL,
               units INTEGER NOT NULL, revenue REAL NOT NULL, top_category TEXT,
               run_id TEXT NOT NULL, PRIMARY KEY (day, region))""")
    context.log.info(f"warehouse opened at {path}")
    try:
        yield conn
    finally:  # teardown: runs after the last step, also when the run fails
        conn.close()


# ---- ops -----------------------------------------------------------------------------------------

class ExtractConfig(Config):
    start_date: dt.date = Field(dt.date(2024, 1, 1), description="First day of generated orders.")
    days: int = Field(7, ge=1, le=366)
    orders_per_day: int = Field(40, ge=1, le=10_000)
    seed: int = 42
    bad_row_rate: float = Field(0.05, ge=0, le=1, description="Share of rows generated broken.")


@op
def extract_orders(context, config: ExtractConfig) -> list[dict]:
    """Generate synthetic orders, deterministically from the seed (a stand-in for an API pull)."""
    rng = random.Random(config.seed)
    skus = sorted(CATALOGUE)
    orders: list[dict] = []
    for day_index in range(config.days):
        day = (config.start_date + dt.timedelta(days=day_index)).isoformat()
        for n in range(config.orders_per_day):
            order = {
                "order_id": f"{day.replace('-', '')}-{n:05d}",
                "day": day,
                "region": rng.choice(REGIONS),
                "sku": rng.choice(skus),
                "quantity": rng.randint(1, 4),
                "discount": rng.choice((0.0, 0.0, 0.0, 0.1, 0.2)),
            }
            if rng.random() < config.bad_row_rate:  # the mess real sources have
                broken = rng.choice(("quantity", "sku", "region", "duplicate"))
                if broken == "quantity":
                    order["quantity"] = -order["quantity"]
                elif broken == "sku":
                    order["sku"] = "SKU-999"
                elif broken == "region":
                    order["region"] = None
                elif orders:
                    order["order_id"] = orders[-1]["order_id"]
            orders.append(order)
    context.log.info(f"extracted {len(orders)} orders for {config.days} day(s) from seed {config.seed}")
    return orders


class ValidateConfig(Config):
    max_quantity: int = Field(100, ge=1, description="Rows ordering more than this are rejected.")


@op
def validate_orders(context, config: ValidateConfig, orders: list[dict]) -> list[dict]:
    """Drop duplicate order ids, unknown SKUs, missing regions and impossible quantities."""
    seen: set[str] = set()
    valid: list[dict] = []
    rejected: Counter[str] = Counter()
    for order in orders:
        if order["order_id"] in seen:
            rejected["duplicate order id"] += 1
        elif order["sku"] not in CATALOGUE:
            rejected["unknown sku"] += 1
        elif order["region"] not in REGIONS:
            rejected["missing region"] += 1
        elif not 1 <= order["quantity"] <= config.max_quantity:
            rejected["bad quantity"] += 1
        else:
            seen.add(order["order_id"])
            valid.append(order)
    if rejected:
        context.log.warning(f"rejected {sum(rejected.values())} of {len(orders)} orders: "
                            + ", ".join(f"{n} {why}" for why, n in sorted(rejected.items())),
                            rejected=dict(rejected))
    return valid


@op
def price_orders(orders: list[dict]) -> list[dict]:
    """Catalogue prices: revenue per order line, after discount."""
    return [{"order_id": o["order_id"], "day": o["day"], "region": o["region"],
             "quantity": o["quantity"],
             "revenue": round(CATALOGUE[o["sku"]][2] * o["quantity"] * (1 - o["discount"]), 2)}
            for o in orders]


@op
def categorise_orders(orders: list[dict]) -> dict[str, str]:
    """Catalogue categories: order id -> product category."""
    return {o["order_id"]: CATALOGUE[o["sku"]][1] for o in orders}


@op
def aggregate_daily_revenue(priced: list[dict], categories: dict[str, str]) -> list[dict]:
    """Join both enrichments: orders, units, revenue and best-selling category per day and region."""
    totals: dict[tuple[str, str], dict] = {}
    by_category: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for line in priced:
        key = (line["day"], line["region"])
        row = totals.setdefault(key, {"day": key[0], "region": key[1], "orders": 0, "units": 0,
                                      "revenue": 0.0})
        row["orders"] += 1
        row["units"] += line["quantity"]
        row["revenue"] += line["revenue"]
        by_category[key][categories[line["order_id"]]] += line["revenue"]
    rows = []
    for key in sorted(totals):
        row = totals[key]
        row["revenue"] = round(row["revenue"], 2)
        row["top_category"] = by_category[key].most_common(1)[0][0]
        rows.append(row)
    return rows


class LoadConfig(Config):
    fail_attempts: int = Field(0, ge=0, description="Demo only: fail this many first attempts with a "
                                                    "transient error, to watch the retry policy work.")


@op(required_resource_keys={"warehouse"},
    retry_policy=RetryPolicy(max_retries=3, delay=0.1, backoff=Backoff.EXPONENTIAL))
def load_warehouse(context, config: LoadConfig, rows: list[dict]) -> dict:
    """Upsert the daily rows into the warehouse (re-running a day replaces it)."""
    if context.retry_number < config.fail_attempts:
        raise sqlite3.OperationalError("database is locked (simulated)")
    conn: sqlite3.Connection = context.resources.warehouse
    with conn:  # one transaction
        conn.executemany(
            "INSERT OR REPLACE INTO daily_region_revenue "
            "(day, region, orders, units, revenue, top_category, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r["day"], r["region"], r["orders"], r["units"], r["revenue"], r["top_category"],
              context.run_id) for r in rows])
    days = sorted({r["day"] for r in rows})
    context.log.info(f"loaded {len(rows)} rows into daily_region_revenue")
    return {"rows": len(rows), "first_day": days[0] if days else None,
            "last_day": days[-1] if days else None}


@op(required_resource_keys={"warehouse"})
def report(context, loaded: dict) -> None:
    """Read the loaded days back from the warehouse and log a summary."""
    conn: sqlite3.Connection = context.resources.warehouse
    where = "WHERE day BETWEEN ? AND ?"
    span = (loaded["first_day"], loaded["last_day"])
    orders, revenue = conn.execute(
        f"SELECT COALESCE(SUM(orders), 0), COALESCE(SUM(revenue), 0) FROM daily_region_revenue {where}",
        span).fetchone()
    by_region = conn.execute(
        f"SELECT region, ROUND(SUM(revenue), 2) FROM daily_region_revenue {where} "
        "GROUP BY region ORDER BY 2 DESC", span).fetchall()
    context.log.info(
        f"{loaded['first_day']}..{loaded['last_day']}: {orders} orders, revenue {revenue:,.2f} EUR; "
        + ", ".join(f"{region} {amount:,.2f}" for region, amount in by_region),
        orders=orders, revenue=round(revenue, 2), by_region=dict(by_region))


# ---- the job, its schedule, and the Definitions ---------------------------------------------------

@job(resources={"warehouse": warehouse}, tags={"team": "analytics"})
def daily_sales_etl():
    """Daily sales: extract, validate, enrich, aggregate per region, load and report."""
    orders = validate_orders(extract_orders())
    daily = aggregate_daily_revenue(price_orders(orders), categorise_orders(orders))
    report(load_warehouse(daily))


def yesterdays_orders(context) -> dict:
    """Run config for a scheduled run: the day before the tick."""
    day = context.scheduled_time.date() - dt.timedelta(days=1)
    return {"ops": {"extract_orders": {"config": {"start_date": day.isoformat(), "days": 1}}}}


# A declaration: the daemon (`runyard daemon`, or `runyard dev`) evaluates it; `runyard job execute` ignores it.
daily_sales_schedule = ScheduleDefinition(
    name="daily_sales_etl_schedule",
    cron_schedule="0 6 * * *",  # every day at 06:00
    execution_timezone="Europe/Berlin",
    job=daily_sales_etl,
    evaluation_fn=yesterdays_orders,
)

defs = Definitions(jobs=[daily_sales_etl], schedules=[daily_sales_schedule])
