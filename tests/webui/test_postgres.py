"""The web UI on PostgreSQL: launches and long polls work across processes (LISTEN/NOTIFY), and under
more concurrent requests than its pool holds it never opens more sessions than configured.

Needs the PostgreSQL server the storage_postgres tests need ($RUNYARD_TEST_PG_URL, default
postgresql://postgres@127.0.0.1:5432/postgres); fails, never skips, without it."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from runyard_storage_postgres.testing import PostgresUnavailable, create_database, drop_database, require_server


@pytest.fixture
def pg_db():
    try:
        admin = require_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    url = create_database(admin, prefix="runyard_webui")
    yield url
    drop_database(url, admin)


def test_webui_on_postgres_stays_within_its_pool(start_webui, instance_file, pg_db):
    instance_file(f"storage:\n  postgres:\n    url: '{pg_db}'\n    pool_size: 1\n    max_overflow: 1\n"
                  "    application_name: {env: APP_NAME, default: ry-other}\n"
                  # run workers (launched by the web UI here) inherit its environment: name them apart
                  "run_launcher:\n  process:\n    env: {APP_NAME: ry-worker}\n")
    ui = start_webui("--threads", "8", env={"APP_NAME": "ry-webui-test"})
    assert ui.gql("{ instance { storage } }")["instance"]["storage"].startswith("postgresql")
    dbname = pg_db.rsplit("/", 1)[1]
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        conn = psycopg2.connect(pg_db)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                            (dbname, "ry-webui-test"))
                peak = max(peak, cur.fetchone()[0])
        conn.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    errors: list[str] = []
    try:
        run_ids = [ui.launch("hello", {"ops": {"greet": {"config": {"name": str(i)}}}})["run"]["runId"]
                   for i in range(3)]

        def hammer():
            try:
                for _ in range(15):
                    ui.gql("{ runs(limit: 20) { count runs { runId status steps { status } events { id } } } }")
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

        threads = [threading.Thread(target=hammer) for _ in range(12)]
        for t in threads:
            t.start()
        statuses = [ui.wait_finished(rid)[0] for rid in run_ids]  # long polls, concurrently with the load
        for t in threads:
            t.join(120)
    finally:
        stop.set()
        sampler.join(10)
    assert errors == []
    assert statuses == ["SUCCESS"] * 3
    assert 1 <= peak <= 3, f"the web UI held {peak} sessions; configured pool_size 1 + max_overflow 1 + 1 listener"
