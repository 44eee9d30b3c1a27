"""The quickstart end to end with its instance on PostgreSQL: the same ``runyard job launch --wait``
as test_quickstart.py, with one block of the instance file changed to ``storage: {postgres: ...}``
(the URL as an ``{env: ...}`` reference, resolved by the CLI and again by the run worker).

Needs: the repository's examples/quickstart, real subprocesses, the runyard-storage-postgres plugin,
and PostgreSQL at $RUNYARD_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres, a role
that may CREATE DATABASE); the test creates and drops its own database and FAILS if the server is
unreachable.
"""

from __future__ import annotations

import re

import psycopg2
import pytest
from test_quickstart import JOB, RUN_CONFIG, launch, warehouse_rows

from runyard_storage_postgres.testing import PostgresUnavailable, create_database, drop_database, require_server


@pytest.fixture
def pg_home(home, monkeypatch):
    try:
        admin = require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    url = create_database(admin, prefix="runyard_e2e")
    monkeypatch.setenv("QUICKSTART_PG_URL", url)  # inherited by the CLI and its run workers
    (home / "runyard.yaml").write_text("storage:\n  postgres:\n    url: {env: QUICKSTART_PG_URL}\n")
    yield url
    drop_database(url, admin)


def test_quickstart_on_postgres(cli, home, pg_home):
    assert cli.json("instance", "info", "--json")["storage"]["storage"] == "postgres"
    run_id, out = launch(cli)
    assert re.search(rf"Run {run_id} SUCCESS", out)
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "SUCCESS" and run["job_name"] == JOB
    assert run["steps"] and all(s["status"] == "SUCCESS" for s in run["steps"])
    assert warehouse_rows(home) and all(row[-1] == run_id for row in warehouse_rows(home))
    assert not (home / "runyard.db").exists()  # nothing went to SQLite
    conn = psycopg2.connect(pg_home)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("SELECT count(*) FROM events WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] > 10
    conn.close()


def test_quickstart_retry_on_postgres(cli, home, pg_home, tmp_path):
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text("ops:\n  load_warehouse:\n    config:\n      fail_attempts: 1\n")
    run_id, out = launch(cli, "-c", flaky)
    assert re.search(r"STEP_RESTARTED\s+load_warehouse", out)
    steps = {s["step_key"]: s for s in cli.json("run", "show", run_id, "--json")["steps"]}
    assert steps["load_warehouse"]["status"] == "SUCCESS" and steps["load_warehouse"]["attempts"] == 2
    assert RUN_CONFIG.is_file()
