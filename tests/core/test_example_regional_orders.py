"""The regional orders example (examples/regional_orders) tested as its README says a user would:
ops called directly with ``build_op_context``, one partition with ``execute_in_process`` (the
fan-out, the collect step, the optional quarantine branch taken and not taken, the failure hook),
then for real: ``runyard job execute --partition`` with the multiprocess executor, a re-execution
from failure that re-runs only the failed mapped step, and a week's backfill through a real daemon.

Needs: the repository's examples/regional_orders, real subprocesses (CLI, daemon, run workers), SQLite.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from runyard import build_op_context
from runyard.testing import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "regional_orders"
DEFS = EXAMPLE / "defs.py"
JOB = "regional_orders"


def _load_example():
    spec = importlib.util.spec_from_file_location("regional_orders_example", DEFS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the Config classes' annotations through it
    spec.loader.exec_module(module)
    return module


ex = _load_example()


class RecordingAlerts:
    """A fake for the ``alerts`` resource: remembers what it was asked to send."""

    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []

    def send(self, run_id: str, step_key: str, text: str) -> str:
        self.sent.append((run_id, step_key, text))
        return "<memory>"


def partition_config(key: str, **region_orders: object) -> dict:
    """The partition's own run config, with the per-region graph's config set as given."""
    run_config, _tags = ex.regional_orders.run_request_for_partition(key)
    if region_orders:
        run_config["ops"]["region_orders"] = {"config": region_orders}
    return run_config


# ---- ops called directly ----------------------------------------------------------------------------

def test_list_regions_skips_east_on_sundays():
    assert ex.list_regions(build_op_context(), config={"day": "2024-01-08"}) == {
        "north": "north", "south": "south", "east": "east", "west": "west"}
    assert list(ex.list_regions(build_op_context(), config={"day": "2024-01-07"})) == ["north", "south", "west"]


def test_extract_is_deterministic_per_partition_and_region():
    ctx = build_op_context(partition_key="2024-01-02", op_config={"orders": 5, "bad_row_rate": 0})
    rows = ex.extract_orders(ctx, region="north")
    assert rows == ex.extract_orders(ctx, region="north") and len(rows) == 5
    assert {r["day"] for r in rows} == {"2024-01-02"} and {r["region"] for r in rows} == {"north"}
    assert rows != ex.extract_orders(build_op_context(partition_key="2024-01-03"), region="north", config={"orders": 5})


def test_extract_fails_for_the_demo_region_only_in_a_first_run():
    with pytest.raises(ConnectionError, match="north order feed is unreachable"):
        ex.extract_orders(build_op_context(partition_key="2024-01-02"), region="north", config={"fail_region": "north"})
    reexecution = build_op_context(partition_key="2024-01-02", run_tags={"runyard/parent_run_id": "x" * 32})
    assert ex.extract_orders(reexecution, region="north", config={"fail_region": "north"})


def test_check_orders_produces_rejected_only_when_there_are_bad_rows():
    good = {"order_id": "a", "region": "north", "quantity": 1, "revenue": 10.0}
    bad = {"order_id": "b", "region": "north", "quantity": 2, "revenue": None}
    assert ex.check_orders(build_op_context(), [[good]]) == ([good], None)
    assert ex.check_orders(build_op_context(), [[good], [bad]]) == ([good], [bad])


def test_load_day_upserts_the_day(tmp_path):
    rows = [{"region": "north", "revenue": 2.5}, {"region": "north", "revenue": 1.0},
            {"region": "west", "revenue": 4.0}]
    db = tmp_path / "warehouse.db"
    with build_op_context(resources={"warehouse": ex.warehouse}, resources_config={"warehouse": {"path": str(db)}},
                          partition_key="2024-01-05") as ctx:
        assert ex.load_day(ctx, rows) == {"day": "2024-01-05", "rows": 2, "orders": 3, "revenue": 7.5}
        assert ex.load_day(ctx, rows[:1])["rows"] == 1  # the day is replaced, not added to
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT day, region, orders, revenue FROM region_sales").fetchall() == [
            ("2024-01-05", "north", 1, 2.5)]


# ---- one partition in process -------------------------------------------------------------------------

def test_one_partition_in_process():
    alerts = RecordingAlerts()
    result = ex.regional_orders.execute_in_process(partition_key="2024-01-08", resources={"alerts": alerts})
    assert result.success and result.tags["runyard/partition"] == "2024-01-08"
    priced = result.output_for_node("region_orders.price_orders")  # a mapped node: by mapping key
    assert list(priced) == ["north", "south", "east", "west"]
    valid = result.output_for_node("check_orders", "valid")  # the step that collects the fan-out
    rejected = result.output_for_node("check_orders", "rejected")
    assert len(valid) + len(rejected) == 4 * 40 and rejected  # 5% bad rows by default
    assert {r["region"] for r in valid} == set(priced)
    loaded = result.output_for_node("load_day")
    assert loaded["day"] == "2024-01-08" and loaded["orders"] == len(valid)
    quarantined = Path(result.output_for_node("quarantine"))  # in the run's (ephemeral) instance home
    assert quarantined.name == "2024-01-08.jsonl" and len(quarantined.read_text().splitlines()) == len(rejected)
    assert alerts.sent == []
    hooks = [(e.step_key, e.data["hook"]) for e in result.all_events if e.event_type == "HOOK_COMPLETED"]
    assert ("load_day", "log_loaded") in hooks


def test_the_quarantine_branch_is_skipped_without_bad_rows():
    result = ex.regional_orders.execute_in_process(partition_key="2024-01-07",
                                                   run_config=partition_config("2024-01-07", bad_row_rate=0),
                                                   resources={"alerts": RecordingAlerts()})
    assert result.success
    assert list(result.output_for_node("region_orders.extract_orders")) == ["north", "south", "west"]  # Sunday
    assert [e.step_key for e in result.get_step_skipped_events()] == ["quarantine"]
    assert result.output_for_node("load_day")["orders"] == 3 * 40


def test_the_failure_hook_alerts_for_the_failed_mapped_step():
    alerts = RecordingAlerts()
    result = ex.regional_orders.execute_in_process(
        partition_key="2024-01-08", run_config=partition_config("2024-01-08", fail_region="south"),
        resources={"alerts": alerts}, raise_on_error=False)
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["region_orders.extract_orders[south]"]
    [(run_id, step_key, text)] = alerts.sent
    assert run_id == result.run_id and step_key == "region_orders.extract_orders[south]"
    assert "ConnectionError" in text and "south order feed" in text
    with pytest.raises(ConnectionError, match="south order feed"):  # raise_on_error: the op's own error
        ex.regional_orders.execute_in_process(
            partition_key="2024-01-08", run_config=partition_config("2024-01-08", fail_region="south"),
            resources={"alerts": alerts})


# ---- for real: the CLI, re-execution, a backfill through the daemon -----------------------------------

def test_cli_partition_multiprocess_then_reexecute_the_failed_mapped_step(cli, home):
    proc = cli("job", "execute", "-f", DEFS, "-j", JOB, "--partition", "2024-01-08",
               "-c", EXAMPLE / "multiprocess.yaml", "-c", EXAMPLE / "fail_north.yaml", timeout=120)
    assert proc.returncode == 1, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "with the multiprocess executor" in proc.stdout
    parent = re.search(r"Run ([0-9a-f]{32}) FAILURE", proc.stdout).group(1)
    alert = home / "alerts" / f"{parent}-region_orders.extract_orders[north].txt"
    assert "north order feed is unreachable" in alert.read_text()  # written by the hook, in the step process

    proc = cli.ok("run", "reexecute", parent, "--from-failure", "--wait", timeout=120)
    child = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    run = cli.json("run", "show", child, "--json")
    assert run["status"] == "SUCCESS" and run["tags"]["runyard/partition"] == "2024-01-08"
    assert sorted(s["step_key"] for s in run["steps"]) == [
        "check_orders", "load_day", "quarantine",
        "region_orders.extract_orders[north]", "region_orders.price_orders[north]"]
    with sqlite3.connect(home / "regional_orders.db") as conn:
        assert conn.execute("SELECT region, run_id FROM region_sales WHERE day = '2024-01-08' "
                            "ORDER BY region").fetchall() == [
            (region, child) for region in ("east", "north", "south", "west")]


def test_a_week_backfill_through_the_daemon(cli, home, procs):
    (home / "runyard.yaml").write_text("daemon: {backfill_interval_seconds: 0.2}\n")
    bf = cli.json("backfill", "launch", JOB, "--from", "2024-01-01", "--to", "2024-01-07", "-f", DEFS, "--json")
    assert bf["partition_keys"] == [f"2024-01-0{d}" for d in range(1, 8)]
    daemon = procs.add(cli.popen("daemon", "-f", DEFS, start_new_session=True))
    try:
        shown = wait_until(lambda: (s := cli.json("backfill", "show", bf["backfill_id"], "--json"))
                           ["progress"]["finished"] == 7 and s, 60, interval=0.3, what="the week's runs to finish")
    finally:
        procs.stop(daemon)
    assert shown["status"] == "COMPLETED" and shown["progress"]["runs"] == {"SUCCESS": 7}
    statuses = {p["partition_key"]: p["status"] for p in
                cli.json("job", "partitions", "-f", DEFS, "-j", JOB, "--status", "SUCCESS", "--json")}
    assert statuses == {f"2024-01-0{d}": "SUCCESS" for d in range(1, 8)}
    with sqlite3.connect(home / "regional_orders.db") as conn:
        per_day = dict(conn.execute("SELECT day, COUNT(*) FROM region_sales GROUP BY day").fetchall())
    assert per_day == {**{f"2024-01-0{d}": 4 for d in range(1, 7)}, "2024-01-07": 3}  # east: closed Sunday
