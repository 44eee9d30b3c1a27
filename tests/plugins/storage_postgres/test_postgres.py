"""What the Postgres storage adds: config forms, clear errors for bad input, bounded pools, timeouts,
LISTEN/NOTIFY wake-ups, and writes interrupted during COMMIT applied exactly once.

Needs: PostgreSQL at $RUNYARD_TEST_PG_URL (trust auth is fine) and a private server with password
auth started by the ``private_server`` fixture (initdb/pg_ctl); see conftest.py.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid

import psycopg2
import pytest
from conftest import open_storage, truncate_all
from sqlalchemy import text

from runyard.errors import ConfigError, SchemaRevisionError, StorageError, StorageUnavailableError
from runyard.instance.instance import Instance
from runyard.storage.records import EventType, RunStatus
from runyard.testing.storage import ev, make_run
from runyard_storage_postgres.config import PostgresStorageConfig, build_url
from runyard_storage_postgres.storage import PostgresRunStorage
from runyard_storage_postgres.testing import connections_to, database_url, free_port

S = RunStatus


# ---- config ----------------------------------------------------------------------------------------
def storage_from_yaml(tmp_path, yaml_text: str):
    return Instance.from_yaml(str(tmp_path), yaml_text).storage_unchecked()


def test_url_form_maps_plain_postgresql_to_psycopg2(tmp_path, pg_url):
    for scheme in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = scheme + "://" + pg_url.split("://", 1)[1]
        storage = storage_from_yaml(tmp_path, f"storage:\n  postgres:\n    url: '{url}'\n")
        assert isinstance(storage, PostgresRunStorage)
        assert storage.engine.url.drivername == "postgresql+psycopg2"
        storage.check_ready()  # it really connects
        assert storage.get_run("nope") is None
        storage.dispose()


def test_host_form_with_env_references_and_params(tmp_path, private_server, monkeypatch):
    monkeypatch.setenv("RY_TEST_PG_PORT", str(private_server.port))
    monkeypatch.setenv("RY_TEST_PG_PASSWORD", private_server.password)
    storage = storage_from_yaml(tmp_path, """
storage:
  postgres:
    host: 127.0.0.1
    port: {env: RY_TEST_PG_PORT}
    user: postgres
    password: {env: RY_TEST_PG_PASSWORD}
    database: postgres
    params: {sslmode: disable, application_name: ry-host-form}
    pool_size: 2
    max_overflow: 0
""")
    assert storage.engine.url.query["sslmode"] == "disable"
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW application_name").scalar() == "ry-host-form"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1min"
    info = storage.describe()
    assert private_server.password not in str(info)
    assert info["url"].startswith(f"postgresql://postgres:***@127.0.0.1:{private_server.port}/postgres?")
    storage.dispose()


def test_unix_socket_host_goes_in_the_query():
    url = build_url(PostgresStorageConfig(host="/var/run/postgresql", database="db", user="u"))
    assert url.host is None and url.query["host"] == "/var/run/postgresql"


@pytest.mark.parametrize("config, fragments", [
    ("url: 'postgress://u:hunter2@h/db'", ["storage.postgres", "unsupported URL scheme 'postgress'",
                                           "did you mean 'postgres'"]),
    ("url: 'postgresql+asyncpg://u:hunter2@h/db'", ["driver 'asyncpg' is not supported", "psycopg2"]),
    ("url: 'mysql://u:hunter2@h/db'", ["unsupported URL scheme 'mysql'"]),
    ("url: 'u:hunter2@h/db'", ["must look like postgresql://"]),
    ("url: 'postgresql://u:hunter2@h/db'\n    host: h", ["either url or host", "not both"]),
    ("host: h\n    password: hunter2", ["database is required"]),
    ("pool_size: 0\n    url: 'postgresql://h/db'", ["storage.postgres.pool_size"]),
    ("{}", ["set url"]),
    ("url: 'postgresql://h/db'\n    colour: blue", ["storage.postgres.colour", "unknown key"]),
])
def test_bad_config_is_one_clear_error_without_the_password(tmp_path, config, fragments):
    with pytest.raises(ConfigError) as info:
        storage_from_yaml(tmp_path, f"storage:\n  postgres:\n    {config}\n")
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "hunter2" not in message


# ---- bad input: each a clear StorageError, fast ----------------------------------------------------
def test_wrong_password(private_server):
    storage = PostgresRunStorage(PostgresStorageConfig(url=private_server.url(password="wrong-pw")))
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.check_ready()
    message = str(info.value)
    assert "password authentication failed" in message and "Check user and password" in message
    assert "wrong-pw" not in message and "***" in message
    assert time.monotonic() - start < 5  # not retried: a wrong password does not fix itself
    assert not isinstance(info.value, StorageUnavailableError)  # nor waited out by a run worker


def test_right_password_works(private_server):
    storage = open_storage(private_server.url())
    assert storage.schema_revision() is not None
    storage.dispose()


def test_unreachable_port_is_refused_at_once():
    port = free_port()
    storage = PostgresRunStorage(PostgresStorageConfig(url=f"postgresql://postgres@127.0.0.1:{port}/x"))
    start = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=r"(?s)refused.*Is the server running"):
        storage.check_ready()  # unavailable, not wrong: a run worker waits it out
    assert time.monotonic() - start < 5


def test_host_that_never_answers_times_out_after_connect_timeout():
    # A listening socket that never answers: what a firewalled or hung host looks like to libpq.
    # (Remote addresses are not usable here: this sandbox answers every outbound connection.)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        storage = PostgresRunStorage(PostgresStorageConfig(url=f"postgresql://postgres@127.0.0.1:{port}/x",
                                                           connect_timeout=1))
        start = time.monotonic()
        with pytest.raises(StorageError) as info:
            storage.check_ready()
        assert 0.9 < time.monotonic() - start < 10
    message = str(info.value)
    assert f"port {port} failed: timeout expired" in message and "Is the server running" in message


def test_unknown_host_name():
    storage = PostgresRunStorage(PostgresStorageConfig(url="postgresql://postgres@no-such-host.invalid/x"))
    with pytest.raises(StorageError, match="could not translate host name"):
        storage.check_ready()


def test_database_that_does_not_exist(pg_url):
    url = database_url(pg_url, "runyard_no_such_db")
    storage = PostgresRunStorage(PostgresStorageConfig(url=url))
    with pytest.raises(StorageError) as info:
        storage.check_ready()
    message = str(info.value)
    assert 'database "runyard_no_such_db" does not exist' in message
    assert "Create the database first" in message and "createdb" in message
    assert not isinstance(info.value, StorageUnavailableError)  # waiting cannot create it


def test_newer_schema_revision_is_refused(fresh_db):
    open_storage(fresh_db).dispose()
    conn = psycopg2.connect(fresh_db)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    storage = PostgresRunStorage(PostgresStorageConfig(url=fresh_db))
    with pytest.raises(SchemaRevisionError, match=r"9999.*newer runyard.*refusing"):
        storage.check_ready()
    with pytest.raises(SchemaRevisionError):
        storage.migrate()  # Alembic cannot go anywhere from an unknown revision either
    storage.dispose()


def test_cli_reports_bad_storage_as_one_line(cli, home, pg_url):
    (home / "runyard.yaml").write_text(
        f"storage:\n  postgres:\n    url: '{database_url(pg_url, 'runyard_no_such_db')}'\n")
    proc = cli("run", "list")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: Storage postgres at postgresql://")
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    (home / "runyard.yaml").write_text("storage:\n  postgres:\n    url: 'postgresq://h/db'\n")
    proc = cli("run", "list")
    assert proc.returncode == 2 and "unsupported URL scheme 'postgresq'" in proc.stderr


# ---- pool, timeouts ----------------------------------------------------------------------------------
def test_a_process_never_holds_more_connections_than_its_pool(pg_url):
    app = f"ry-pool-{uuid.uuid4().hex[:6]}"
    storage = open_storage(pg_url, pool_size=2, max_overflow=1, application_name=app, pool_timeout=30)
    truncate_all(storage)
    run = make_run()
    storage.add_run(run)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        conn = psycopg2.connect(pg_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,))
                peak = max(peak, cur.fetchone()[0])
        conn.close()

    def work(n):
        for i in range(40):
            storage.store_events([ev(run.run_id, f"{n}-{i}")])
            storage.get_events(run.run_id, limit=5)
            storage.transition_run(run.run_id, [S.NOT_STARTED], S.QUEUED)
            storage.wait_for_events(run.run_id, None, timeout=0)  # the listener connection too

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    sampler.join()
    assert len(storage.get_events(run.run_id)) == 8 * 40
    assert 2 <= peak <= storage.max_connections == 2 + 1 + 1
    storage.dispose()


def test_exhausted_pool_is_reported(pg_url):
    storage = open_storage(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    with storage.engine.connect():  # hold the only connection
        with pytest.raises(StorageError, match=r"all 1 connections .* pool_timeout=0.2s"):
            storage.get_run("x")
    storage.dispose()


def test_statement_timeout(pg_url):
    storage = open_storage(pg_url, statement_timeout_ms=100)
    start = time.monotonic()
    with pytest.raises(StorageError, match=r"statement timeout.*statement_timeout_ms \(100\)"):
        storage.query(lambda conn: conn.exec_driver_sql("SELECT pg_sleep(5)").all())
    assert time.monotonic() - start < 3
    storage.dispose()


# ---- notifications -----------------------------------------------------------------------------------
def test_notifications_wake_waiters_long_before_the_poll_interval(pg_url):
    watcher = open_storage(pg_url, poll_interval=30)
    writer = open_storage(pg_url, notifications=False)  # does not listen, still notifies
    truncate_all(writer)
    run = make_run()
    writer.add_run(run)
    assert not watcher.wait_for_events(run.run_id, None, timeout=0.1)
    watcher.wait_for_runs(timeout=0)
    woke: list[float] = []

    def wait_events():
        start = time.monotonic()
        assert watcher.wait_for_events(run.run_id, None, timeout=20)
        woke.append(time.monotonic() - start)

    waiter = threading.Thread(target=wait_events)
    waiter.start()
    time.sleep(0.3)
    writer.store_event(ev(run.run_id, "hello"))
    waiter.join()
    assert woke and woke[0] < 3, woke

    def change():
        time.sleep(0.3)
        writer.transition_run(run.run_id, [S.NOT_STARTED], S.QUEUED)

    t = threading.Thread(target=change)
    t.start()
    start = time.monotonic()
    assert watcher.wait_for_runs(timeout=20)
    assert time.monotonic() - start < 3
    t.join()
    watcher.dispose()
    writer.dispose()


def test_notification_payloads_are_small_pointers(pg_url):
    storage = open_storage(pg_url)
    truncate_all(storage)
    run = make_run(status=S.QUEUED)
    listen = psycopg2.connect(pg_url)
    listen.autocommit = True
    from runyard_storage_postgres.storage import RUNS_CHANNEL, events_channel

    with listen.cursor() as cur:
        cur.execute(f'LISTEN "{events_channel(run.run_id)}"; LISTEN {RUNS_CHANNEL}')
    storage.add_run(run)
    storage.store_events([ev(run.run_id, "x" * 10_000) for _ in range(3)])
    storage.claim_queued_runs("d", 1)
    time.sleep(0.3)
    listen.poll()
    notes = [(n.channel, n.payload) for n in listen.notifies]
    last_id = storage.get_events(run.run_id)[-1].id
    assert (RUNS_CHANNEL, f"{run.run_id} QUEUED") in notes
    assert (RUNS_CHANNEL, f"{run.run_id} STARTING") in notes
    assert (events_channel(run.run_id), str(last_id - 1)) in notes  # the batch's last id
    assert all(len(payload) < 80 for _, payload in notes)
    listen.close()
    storage.dispose()


def test_listener_reconnects_after_its_session_is_killed(pg_url):
    app = f"ry-listen-{uuid.uuid4().hex[:8]}"  # only this test's sessions are terminated
    watcher = open_storage(pg_url, poll_interval=30, application_name=app)
    truncate_all(watcher)
    run = make_run()
    watcher.add_run(run)
    assert not watcher.wait_for_events(run.run_id, None, timeout=0.05)  # starts the listener
    bystander = psycopg2.connect(pg_url, application_name="ry-bystander")  # another application's LISTEN
    bystander.autocommit = True
    with bystander.cursor() as cur:
        cur.execute("LISTEN someone_elses_channel")
    admin = psycopg2.connect(pg_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' "
                    "AND application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()",
                    (app,))
        assert cur.rowcount == 1
    time.sleep(0.5)
    timer = threading.Timer(1.0, lambda: open_storage(pg_url).store_event(ev(run.run_id, "after")))
    timer.start()
    start = time.monotonic()
    assert watcher.wait_for_events(run.run_id, None, timeout=20)
    assert time.monotonic() - start < 8
    timer.join()
    assert watcher._listener.connections_opened >= 2
    with bystander.cursor() as cur:  # the test cut only its own sessions
        cur.execute("SELECT 1")
    bystander.close()
    admin.close()
    watcher.dispose()


# ---- interrupted COMMIT: applied exactly once ----------------------------------------------------------
def _kill(pid: int, url: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    conn.close()
    time.sleep(0.1)


def _lose_commit(storage: PostgresRunStorage, url: str, *, commit_first: bool, times: int = 1) -> list[str]:
    """Make the next ``times`` COMMITs look lost to the client: the session is killed (before or after
    the real COMMIT) and the client sees the connection drop."""
    dialect = storage.engine.dialect
    real = dialect.do_commit
    seen: list[str] = []

    def do_commit(dbapi_conn):
        if len(seen) >= times:
            return real(dbapi_conn)
        if commit_first:
            real(dbapi_conn)
        seen.append("committed" if commit_first else "not committed")
        _kill(dbapi_conn.get_backend_pid(), url)
        dbapi_conn.cursor().execute("SELECT 1")  # raises: the server closed the connection
        raise AssertionError("the connection should be gone")

    dialect.do_commit = do_commit
    return seen


@pytest.mark.parametrize("commit_first", [True, False], ids=["commit-landed", "commit-lost"])
def test_transition_interrupted_during_commit_is_applied_once(pg_url, commit_first):
    storage = open_storage(pg_url)
    truncate_all(storage)
    run = make_run()
    storage.add_run(run)
    seen = _lose_commit(storage, pg_url, commit_first=commit_first)
    previous = storage.transition_run(run.run_id, [S.NOT_STARTED], S.STARTING,
                                      [ev(run.run_id, "go", EventType.RUN_STARTING)])
    assert seen == ["committed" if commit_first else "not committed"]
    assert previous == S.NOT_STARTED  # the caller learns it won, either way
    assert storage.get_run(run.run_id).status == S.STARTING
    assert [e.message for e in storage.get_events(run.run_id)] == ["go"]
    storage.dispose()


class _LosingCursor:
    def __init__(self, cur, url, commit_first, seen):
        self._cur, self._url, self._commit_first, self._seen = cur, url, commit_first, seen

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self._cur.close()
        except psycopg2.Error:
            pass

    def mogrify(self, *args):
        return self._cur.mogrify(*args)

    def execute(self, sql):
        conn = self._cur.connection
        if self._commit_first:
            self._cur.execute(sql)
        self._seen.append(1)
        _kill(conn.get_backend_pid(), self._url)
        self._cur.execute("SELECT 1")
        raise AssertionError("the connection should be gone")


@pytest.mark.parametrize("commit_first", [True, False], ids=["commit-landed", "commit-lost"])
def test_event_batch_interrupted_during_commit_is_stored_once(pg_url, commit_first, monkeypatch):
    storage = open_storage(pg_url)
    truncate_all(storage)
    run = make_run()
    storage.add_run(run)
    seen: list[int] = []
    real_raw = storage.engine.raw_connection

    def raw_connection():
        raw = real_raw()
        if not seen:
            dbapi = raw.driver_connection

            class Conn:
                closed = property(lambda self: dbapi.closed)
                autocommit = property(lambda self: dbapi.autocommit,
                                      lambda self, v: setattr(dbapi, "autocommit", v))

                def cursor(self):
                    return _LosingCursor(dbapi.cursor(), pg_url, commit_first, seen)

            class Raw:
                info = raw.info
                driver_connection = Conn()
                dbapi_connection = raw.dbapi_connection
                _connection_record = getattr(raw, "_connection_record", None)
                is_valid = property(lambda self: raw.is_valid)

                def invalidate(self, e=None):
                    raw.invalidate(e)

                def close(self):
                    raw.close()

            return Raw()
        return raw

    monkeypatch.setattr(storage.engine, "raw_connection", raw_connection)
    storage.store_events([ev(run.run_id, f"m{i}") for i in range(5)])
    assert seen == [1]
    assert [e.message for e in storage.get_events(run.run_id)] == [f"m{i}" for i in range(5)]
    storage.dispose()


def test_reads_and_writes_ride_out_a_killed_session(pg_url):
    app = f"ry-killed-{uuid.uuid4().hex[:8]}"  # only this test's sessions are terminated
    storage = open_storage(pg_url, pool_size=2, application_name=app)
    truncate_all(storage)
    run = make_run()
    storage.add_run(run)
    admin = psycopg2.connect(pg_url)
    admin.autocommit = True
    with admin.cursor() as cur:  # kill every pooled session of this storage
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                    "AND datname = current_database() AND pid <> pg_backend_pid()", (app,))
    time.sleep(0.2)
    assert storage.get_run(run.run_id).run_id == run.run_id
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                    "AND datname = current_database() AND pid <> pg_backend_pid()", (app,))
    time.sleep(0.2)
    storage.store_event(ev(run.run_id, "still here"))
    assert storage.transition_run(run.run_id, [S.NOT_STARTED], S.STARTED)
    assert [e.message for e in storage.get_events(run.run_id)] == ["still here"]
    admin.close()
    storage.dispose()


def test_migrations_by_concurrent_first_openers_do_not_race(fresh_db):
    errors: list[BaseException] = []

    def opener():
        try:
            open_storage(fresh_db).dispose()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    storage = open_storage(fresh_db)
    with storage.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    storage.dispose()


def test_connections_are_released_on_dispose(pg_url):
    before = connections_to(pg_url)
    storage = open_storage(pg_url)
    storage.get_run("x")
    storage.wait_for_events("x", None, timeout=0.2)  # opens the LISTEN connection
    assert connections_to(pg_url) >= before + 2
    storage.dispose()
    time.sleep(0.2)
    assert connections_to(pg_url) <= before


def test_the_interface_defaults_behave_like_the_sql_versions(pg_url):
    """RunStorage's generic claim/renew/wait (for storages that are not SQL) on a real backend."""
    from runyard.storage.base import RunStorage
    from runyard.storage.records import Lease

    storage = open_storage(pg_url)
    truncate_all(storage)
    runs = []
    for i, priority in enumerate(["0", "9", "0"]):
        r = make_run(status=S.QUEUED, tags={"runyard/priority": priority})
        r.created_at = 100.0 + i
        storage.add_run(r)
        runs.append(r)
    claimed = RunStorage.claim_queued_runs(storage, "generic", 2)
    assert [r.run_id for r in claimed] == [runs[1].run_id, runs[0].run_id]
    assert storage.get_events(runs[1].run_id)[0].data == {"claimed_by": "generic"}
    lease = storage.acquire_lease("g", "a", ttl_seconds=30)
    assert RunStorage.claim_queued_runs(storage, "generic", 5, fence=Lease("g", "b", lease.token, 0)) == []
    assert RunStorage.renew_lease(storage, lease, 60).token == lease.token
    assert RunStorage.renew_lease(storage, Lease("g", "a", lease.token + 1, 0), 60) is None
    assert RunStorage.wait_for_events(storage, runs[1].run_id, None, timeout=0)
    RunStorage.wait_for_runs(storage, timeout=0)
    storage.transition_run(runs[2].run_id, [S.QUEUED], S.CANCELED)
    assert RunStorage.wait_for_runs(storage, timeout=2)
    storage.dispose()
