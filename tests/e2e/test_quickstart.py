"""The quickstart example end to end, as the README runs it: ``runyard job launch --wait`` with its run
config, through the default coordinator, the process launcher and a real run worker, into a fresh
instance home; then the run and the warehouse it filled are inspected.

Needs: the repository's examples/quickstart (defs.py, run_config.yaml), real subprocesses, SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
DEFS = QUICKSTART / "defs.py"
RUN_CONFIG = QUICKSTART / "run_config.yaml"
JOB = "daily_sales_etl"


@pytest.fixture(scope="module", autouse=True)
def quickstart_exists():
    assert DEFS.is_file(), f"{DEFS} is missing"
    assert RUN_CONFIG.is_file(), f"{RUN_CONFIG} is missing"


def launch(cli, *extra: str) -> tuple[str, str]:
    proc = cli("job", "launch", "-f", DEFS, "-j", JOB, "-c", RUN_CONFIG, *extra, "--wait", timeout=120)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    run_id = re.search(r"Launched run ([0-9a-f]{32})", proc.stdout).group(1)
    return run_id, proc.stdout


def warehouse_rows(home: Path) -> list[tuple]:
    path = home / "warehouse.db"
    assert path.is_file(), f"the warehouse resource did not create {path}"
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT day, region, orders, units, revenue, top_category, run_id "
                            "FROM daily_region_revenue ORDER BY day, region").fetchall()


def test_job_list_shows_the_quickstart_job(cli):
    jobs = {j["name"]: j for j in cli.json("job", "list", "-f", DEFS, "--json")}
    assert JOB in jobs
    assert "warehouse" in jobs[JOB]["resources"]
    assert len(jobs[JOB]["ops"]) >= 3


def test_quickstart_launch_wait_fills_the_warehouse(cli, home):
    run_id, out = launch(cli)
    assert re.search(rf"Run {run_id} SUCCESS", out)
    assert "RUN_STARTING" in out and "RUN_SUCCESS" in out

    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "SUCCESS"
    assert run["job_name"] == JOB
    assert run["launcher_info"]["pid"] > 0
    assert run["steps"], "no steps recorded"
    assert all(s["status"] == "SUCCESS" for s in run["steps"]), run["steps"]
    ops = cli.json("job", "list", "-f", DEFS, "--json")
    expected_ops = next(j["ops"] for j in ops if j["name"] == JOB)
    assert sorted(s["step_key"] for s in run["steps"]) == sorted(expected_ops)
    assert run["run_config"] and run["run_config"].get("ops")  # the file's config was stored with the run

    rows = warehouse_rows(home)
    assert rows, "the warehouse table is empty"
    assert all(row[-1] == run_id for row in rows)
    assert all(row[2] > 0 and row[4] > 0 for row in rows)  # orders and revenue per day and region

    listed = cli.json("run", "list", "--json")
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "SUCCESS")]
    logs = cli.ok("run", "logs", run_id).stdout
    assert "RUN_SUCCESS" in logs


def test_quickstart_rerun_replaces_the_same_days(cli, home):
    first, _ = launch(cli)
    rows_first = warehouse_rows(home)
    second, _ = launch(cli)
    rows_second = warehouse_rows(home)
    assert len(rows_second) == len(rows_first)  # an upsert per day and region, not duplicates
    assert {row[-1] for row in rows_second} == {second}
    assert [row[:6] for row in rows_second] == [row[:6] for row in rows_first]  # deterministic data


def test_quickstart_retries_a_transient_failure(cli, home, tmp_path):
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text("ops:\n  load_warehouse:\n    config:\n      fail_attempts: 1\n")
    run_id, out = launch(cli, "-c", flaky)
    assert re.search(r"STEP_UP_FOR_RETRY\s+load_warehouse", out)
    assert re.search(r"STEP_RESTARTED\s+load_warehouse", out)
    steps = {s["step_key"]: s for s in cli.json("run", "show", run_id, "--json")["steps"]}
    assert steps["load_warehouse"]["status"] == "SUCCESS"
    assert steps["load_warehouse"]["attempts"] == 2
    assert warehouse_rows(home)
