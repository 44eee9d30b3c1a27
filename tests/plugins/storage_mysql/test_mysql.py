"""What the MySQL/MariaDB storage must get right beyond the conformance suite: config forms and
clear errors for bad input (wrong password, unreachable host, missing database — one line from the
CLI, never a traceback, never the password), the column types and collations the shared schema gets
on this dialect, megabyte messages, microsecond times, run keys that differ only in case, a database
created with another default character set, and processes creating the schema at once.

Needs: MariaDB 10.6+ or MySQL 8.0.17+ at $RUNYARD_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/,
see conftest.py); every test works in databases it creates and drops.
"""

from __future__ import annotations

import functools
import socket
import time

import pytest
from sqlalchemy import text

from runyard.errors import ConfigError, SchemaRevisionError, StorageError
from runyard.instance.instance import Instance
from runyard.storage.records import RunStatus
from runyard.storage.sql.schema import HEAD_REVISION
from runyard.testing.storage import ev, make_run, prepare_in_processes
from runyard_storage_mysql.config import MysqlStorageConfig, build_url
from runyard_storage_mysql.storage import MysqlRunStorage
from runyard_storage_mysql.testing import connect, create_database, database_url, drop_database, open_storage

S = RunStatus


def storage_from_yaml(tmp_path, yaml_text: str):
    return Instance.from_yaml(str(tmp_path), yaml_text).storage_unchecked()


def column_facts(url: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(table, column) -> (column type, collation), from information_schema."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, column_name, column_type, collation_name FROM "
                        "information_schema.columns WHERE table_schema = DATABASE()")
            return {(t, c): (ty, coll) for t, c, ty, coll in cur.fetchall()}
    finally:
        conn.close()


# ---- config ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"])
def test_url_schemes_all_mean_pymysql(tmp_path, my_url, scheme):
    url = scheme + "://" + my_url.split("://", 1)[1]
    storage = storage_from_yaml(tmp_path, f"storage:\n  mysql:\n    url: '{url}'\n")
    assert isinstance(storage, MysqlRunStorage)
    assert storage.engine.url.drivername == "mysql+pymysql"
    storage.check_ready()
    assert storage.get_run("nope") is None
    storage.dispose()


def test_host_form_with_env_references(tmp_path, my_url, monkeypatch):
    from sqlalchemy.engine import make_url

    u = make_url(my_url)
    monkeypatch.setenv("RY_TEST_MY_PORT", str(u.port or 3306))
    monkeypatch.setenv("RY_TEST_MY_PASSWORD", "")
    storage = storage_from_yaml(tmp_path, f"""
storage:
  mysql:
    host: {u.host}
    port: {{env: RY_TEST_MY_PORT}}
    user: {u.username}
    password: {{env: RY_TEST_MY_PASSWORD}}
    database: {u.database}
    pool_size: 2
    max_overflow: 0
""")
    storage.check_ready()
    info = storage.describe()
    assert info["storage"] == "mysql" and info["schema_revision"] is not None
    assert info["url"].startswith(f"mysql://{u.username}")
    assert info["pool"].startswith("2 + 0 overflow")
    storage.dispose()


def test_password_is_never_shown(tmp_path):
    block = "storage:\n  mysql:\n    host: db.example\n    user: ry\n    password: {}\n    database: runyard\n"
    with pytest.raises(ConfigError) as info:  # a number is not a password: rejected, not echoed
        storage_from_yaml(tmp_path, block.format("31415926535"))
    assert "storage.mysql.password" in str(info.value) and "31415926535" not in str(info.value)
    storage = storage_from_yaml(tmp_path, block.format("'31415926535'"))
    assert build_url(storage.config).password == "31415926535"
    assert "31415926535" not in repr(storage.config) + str(storage.config.model_dump())
    assert storage.display_url == "mysql://ry:***@db.example:3306/runyard"


@pytest.mark.parametrize("config, fragments", [
    ("url: 'mysq://u:hunter2@h/db'", ["storage.mysql", "unsupported URL scheme 'mysq'", "did you mean 'mysql'"]),
    ("url: 'mysql+mysqldb://u:hunter2@h/db'", ["driver 'mysqldb' is not supported", "PyMySQL"]),
    ("url: 'postgresql://u:hunter2@h/db'", ["unsupported URL scheme 'postgresql'"]),
    ("url: 'u:hunter2@h/db'", ["must look like mysql://"]),
    ("url: 'mysql://u:hunter2@h:port/db'", ["cannot be parsed"]),
    ("url: 'mysql://u:hunter2@h/'", ["names no database"]),
    ("url: 'mysql://u:hunter2@h/db'\n    host: h", ["either url or host", "not both"]),
    ("host: h\n    password: hunter2", ["database is required"]),
    ("pool_size: 0\n    url: 'mysql://h/db'", ["storage.mysql.pool_size"]),
    ("{}", ["set url"]),
    ("url: 'mysql://h/db'\n    colour: blue", ["storage.mysql.colour"]),
])
def test_bad_config_is_one_clear_error_without_the_password(tmp_path, config, fragments):
    with pytest.raises(ConfigError) as info:
        storage_from_yaml(tmp_path, f"storage:\n  mysql:\n    {config}\n")
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "hunter2" not in message


# ---- bad input: each a clear StorageError, fast -------------------------------------------------------
def test_wrong_password(my_url):
    from sqlalchemy.engine import make_url

    url = make_url(my_url).set(password="wrong-pw").render_as_string(hide_password=False)
    storage = MysqlRunStorage(MysqlStorageConfig(url=url))
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.check_ready()
    message = str(info.value)
    assert "Access denied" in message and "Check user and password" in message
    assert "wrong-pw" not in message and "***" in message
    assert time.monotonic() - start < 5


def test_unreachable_port_is_refused_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = MysqlRunStorage(MysqlStorageConfig(url=f"mysql://root@127.0.0.1:{port}/x"))
    start = time.monotonic()
    with pytest.raises(StorageError, match=r"Connection refused.*Is the server running"):
        storage.check_ready()
    assert time.monotonic() - start < 5


def test_unknown_host_name():
    storage = MysqlRunStorage(MysqlStorageConfig(url="mysql://root@no-such-host.invalid/x"))
    with pytest.raises(StorageError, match="Check the host name"):
        storage.check_ready()


def test_database_that_does_not_exist(my_url):
    storage = MysqlRunStorage(MysqlStorageConfig(url=database_url(my_url, "runyard_no_such_db")))
    with pytest.raises(StorageError) as info:
        storage.check_ready()
    message = str(info.value)
    assert "Unknown database 'runyard_no_such_db'" in message and "CREATE DATABASE" in message


def test_cli_reports_bad_storage_as_one_line(cli, home, my_url):
    from sqlalchemy.engine import make_url

    (home / "runyard.yaml").write_text(
        f"storage:\n  mysql:\n    url: '{database_url(my_url, 'runyard_no_such_db')}'\n")
    proc = cli("run", "list")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: Storage mysql at mysql://") and "Unknown database" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    wrong = make_url(my_url).set(password="hunter2-wrong").render_as_string(hide_password=False)
    (home / "runyard.yaml").write_text(f"storage:\n  mysql:\n    url: '{wrong}'\n")
    proc = cli("instance", "info")
    assert proc.returncode == 1 and "Access denied" in proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2-wrong" not in proc.stderr + proc.stdout
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (home / "runyard.yaml").write_text(f"storage:\n  mysql:\n    url: 'mysql://root:hunter2@127.0.0.1:{port}/db'\n")
    proc = cli("run", "list")
    assert proc.returncode == 1 and "Connection refused" in proc.stderr and "Is the server running" in proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    (home / "runyard.yaml").write_text("storage:\n  mysql:\n    url: 'mysq://h/db'\n")
    proc = cli("run", "list")
    assert proc.returncode == 2 and "unsupported URL scheme 'mysq'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_newer_schema_revision_is_refused(fresh_my_db):
    open_storage(fresh_my_db).dispose()
    conn = connect(fresh_my_db)
    with conn.cursor() as cur:
        cur.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    storage = MysqlRunStorage(MysqlStorageConfig(url=fresh_my_db))
    with pytest.raises(SchemaRevisionError, match=r"9999.*newer runyard.*refusing"):
        storage.check_ready()
    storage.dispose()


# ---- the shared schema on this dialect -----------------------------------------------------------------
def test_columns_are_double_longtext_and_binary_no_pad(fresh_my_db):
    storage = open_storage(fresh_my_db)
    facts = column_facts(fresh_my_db)
    is_mariadb = storage.engine.dialect.is_mariadb
    storage.dispose()
    binary = "utf8mb4_nopad_bin" if is_mariadb else "utf8mb4_0900_bin"
    for column in ("created_at", "updated_at", "start_time", "end_time"):
        assert facts[("runs", column)][0] == "double"
    assert facts[("events", "timestamp")][0] == "double"
    assert facts[("events", "message")] == ("longtext", binary)
    assert facts[("run_tags", "value")] == ("longtext", binary)
    for key in [("run_keys", "run_key"), ("run_keys", "instigator"), ("run_tags", "key"), ("kv", "key"),
                ("runs", "run_id")]:
        assert facts[key][1] == binary, key


def test_a_database_with_another_default_character_set_works(my_admin_url):
    """The schema sets utf8mb4 and its collation per column: a latin1, case-insensitive database
    default does not leak into runyard's tables."""
    url = create_database(my_admin_url, prefix="runyard_latin1")
    try:
        conn = connect(my_admin_url)
        with conn.cursor() as cur:
            from sqlalchemy.engine import make_url

            cur.execute(f"ALTER DATABASE `{make_url(url).database}` CHARACTER SET latin1 COLLATE latin1_swedish_ci")
        conn.close()
        storage = open_storage(url)
        run = make_run(tags={"naïve": "☃ snow"})
        storage.add_run(run, [ev(run.run_id, "ünïcödé ✓ 日本")])
        assert storage.get_run(run.run_id).tags == {"naïve": "☃ snow"}
        assert storage.get_events(run.run_id)[0].message == "ünïcödé ✓ 日本"
        assert storage.claim_run_key("s", "Ä", "r1") and storage.claim_run_key("s", "ä", "r2")
        storage.dispose()
    finally:
        drop_database(url, my_admin_url)


def test_event_message_over_a_mebibyte_round_trips(my_url):
    storage = open_storage(my_url)
    run = make_run()
    storage.add_run(run)
    message = ("runyard ✓ " * 150_000)[:1_500_000]  # 1.5 M characters, more bytes in utf8mb4
    storage.store_event(ev(run.run_id, message))
    storage.store_events([ev(run.run_id, message[::-1]), ev(run.run_id, "small")])
    got = storage.get_events(run.run_id)
    assert [e.message for e in got] == [message, message[::-1], "small"]
    storage.dispose()


def test_created_at_keeps_microseconds(my_url):
    storage = open_storage(my_url)
    run = make_run()
    run.created_at = 1_764_451_234.567891
    storage.add_run(run)
    assert storage.get_run(run.run_id).created_at == 1_764_451_234.567891
    now = time.time()
    later = make_run()
    storage.add_run(later)
    assert abs(storage.get_run(later.run_id).created_at - now) < 5  # not 48 minutes off
    storage.dispose()


def test_run_keys_differing_only_in_case_are_both_accepted(my_url):
    storage = open_storage(my_url)
    instigator = f"sensor-{time.monotonic_ns()}"
    assert storage.claim_run_key(instigator, "File_A.csv", "r1")
    assert storage.claim_run_key(instigator, "file_a.csv", "r2")
    assert not storage.claim_run_key(instigator, "file_a.csv", "r3")
    storage.dispose()


def test_processes_creating_the_schema_at_once(fresh_my_db):
    """Four processes open the empty database at once: DDL commits on its own on MySQL, so without
    the schema lock two of them would both run CREATE TABLE."""
    opener = functools.partial(MysqlRunStorage, MysqlStorageConfig(url=fresh_my_db))
    assert prepare_in_processes(opener, processes=4) == []
    storage = open_storage(fresh_my_db)
    assert storage.count_runs() == 4
    with storage.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
    storage.dispose()


def test_racing_transitions_and_claims_never_deadlock_out(my_url):
    """Event writers, transitions and queue claims on the same runs from several storages: row locks
    are taken in one order and deadlock victims are retried, so every call succeeds."""
    import threading

    storage = open_storage(my_url)
    runs = [make_run(status=S.QUEUED) for _ in range(30)]
    for r in runs:
        storage.add_run(r)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        s = open_storage(my_url)
        try:
            for i in range(10):
                s.store_events([ev(r.run_id, f"w{n}-{i}") for r in runs[n::3]])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            s.dispose()

    def claimer() -> None:
        s = open_storage(my_url)
        try:
            while s.claim_queued_runs("c", limit=4):
                pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            s.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=claimer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    storage.claim_queued_runs("last", limit=len(runs))  # SKIP LOCKED: racing claimers may leave some
    for r in runs:
        assert storage.get_run(r.run_id).status == S.STARTING
        starting = [e for e in storage.get_events(r.run_id) if str(e.event_type) == "RUN_STARTING"]
        assert len(starting) == 1  # claimed exactly once
        assert len(storage.get_events(r.run_id)) == 11
    storage.dispose()


def test_a_database_at_an_older_revision_is_upgraded_by_the_cli(cli, home, fresh_my_db):
    """Revision 0001 made on MariaDB, with a queued run whose priority lives only in its tag:
    ``runyard instance migrate`` brings it to head and the queue claims it by that priority."""
    import json

    from runyard.storage.sql.migrations import upgrade
    from runyard.storage.sql.schema import HEAD_REVISION

    storage = MysqlRunStorage(MysqlStorageConfig(url=fresh_my_db))
    with storage.engine.begin() as conn:
        upgrade(conn, "0001")
    with storage.engine.begin() as conn:
        for run_id, created, tag in (("plain", 1.0, None), ("urgent", 2.0, "7")):
            conn.execute(text(
                "INSERT INTO runs (run_id, job_name, status, run_config, code_pointer, launcher_info, "
                "created_at, updated_at) VALUES (:r, 'etl', 'QUEUED', '{}', :cp, '{}', :c, :c)"),
                {"r": run_id, "c": created, "cp": json.dumps({"python_file": "/x/defs.py"})})
            if tag:
                conn.execute(text("INSERT INTO run_tags (run_id, `key`, value) VALUES (:r, 'runyard/priority', :v)"),
                             {"r": run_id, "v": tag})
    assert storage.schema_revision() == "0001"
    storage.dispose()
    (home / "runyard.yaml").write_text(f"storage:\n  mysql:\n    url: '{fresh_my_db}'\n")
    proc = cli("run", "list")
    assert proc.returncode == 1 and "runyard instance migrate" in proc.stderr
    out = cli.ok("instance", "migrate").stdout
    assert "0001" in out and HEAD_REVISION in out
    storage = open_storage(fresh_my_db)
    assert [r.run_id for r in storage.claim_queued_runs("d", limit=2)] == ["urgent", "plain"]
    storage.dispose()


def test_an_exhausted_pool_is_one_clear_error(my_url):
    storage = open_storage(my_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    with storage.engine.connect():  # holds the only connection
        start = time.monotonic()
        with pytest.raises(StorageError, match=r"every connection of this process's pool stayed busy for 0.3 s"):
            storage.get_run("x")
        assert time.monotonic() - start < 3
    assert storage.get_run("x") is None
    storage.dispose()
