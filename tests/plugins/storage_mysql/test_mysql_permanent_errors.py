"""A run worker whose MySQL database is dropped under it: not an outage (waiting cannot bring the
database back), so the worker ends with the server's clear message at its next status change instead
of retrying for ``run_worker.outage_tolerance_seconds``; and the storage tells an unknown database or
wrong password (permanent) from a server that is away (an outage a run worker waits out).

Needs: the MariaDB/MySQL server of conftest.py; a real ``runyard job execute`` subprocess.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import pytest
from sqlalchemy.engine import make_url

from runyard.errors import StorageError, StorageUnavailableError
from runyard.testing import wait_until
from runyard_storage_mysql.testing import connect, database_url, drop_database, open_storage

DEFS = '''
import time

from runyard import job, op


@op
def work(context) -> None:
    for i in range(200):
        context.log.info(f"tick {i}")
        time.sleep(0.05)


@job
def long_job():
    work()
'''


def test_worker_fails_fast_when_its_database_is_dropped(cli, home, write_defs, fresh_my_db, my_admin_url):
    defs = write_defs(DEFS)
    (home / "runyard.yaml").write_text(
        "storage:\n  mysql:\n    url: {env: RY_MY_URL}\n    pool_size: 2\n"
        "run_worker:\n  outage_tolerance_seconds: 300\n")
    proc = cli.popen("job", "execute", "-f", defs, "-j", "long_job", env={"RY_MY_URL": fresh_my_db})
    watcher = None
    try:
        first = proc.stdout.readline()
        match = re.search(r"as run ([0-9a-f]{32})", first)
        assert match, first + (proc.stderr.read() if proc.poll() is not None else "")
        watcher = open_storage(fresh_my_db)
        wait_until(lambda: len(watcher.get_events(match.group(1))) >= 8, 60, what="the worker to write events")
        watcher.dispose()
        drop_database(fresh_my_db, my_admin_url)
        dropped_at = time.monotonic()
        try:  # the op logs for 10 s more; the worker ends once its next status change fails
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the worker was still waiting 90 s after its database was dropped:\n{err}")
        took = time.monotonic() - dropped_at
        assert proc.returncode not in (0, None), out + err
        assert "doesn't exist" in err or "Unknown database" in err, err
        assert "Traceback" not in err, err
        assert "storage unavailable" not in err, err  # never taken for an outage
        assert took < 60, f"the worker waited {took:.0f}s for a database that does not exist"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        if watcher is not None:
            watcher.dispose()


def test_unknown_database_and_wrong_password_are_permanent_a_closed_port_an_outage(my_url):
    from runyard_storage_mysql.config import MysqlStorageConfig
    from runyard_storage_mysql.storage import MysqlRunStorage

    def failure(url: str) -> StorageError:
        storage = MysqlRunStorage(MysqlStorageConfig(url=url, connect_timeout=2))
        try:
            with pytest.raises(StorageError) as caught:
                storage.get_runs()
            return caught.value
        finally:
            storage.dispose()

    unknown = failure(database_url(my_url, "runyard_no_such_db"))
    assert not isinstance(unknown, StorageUnavailableError), unknown
    assert "Unknown database" in str(unknown)

    conn = connect(my_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT USER()")
            user = cur.fetchone()[0].split("@")[0]
    finally:
        conn.close()
    wrong = failure(make_url(my_url).set(username=user, password="definitely-wrong").render_as_string(
        hide_password=False))
    assert not isinstance(wrong, StorageUnavailableError), wrong
    assert "Access denied" in str(wrong)

    with socket.socket() as sock:  # a port nothing listens on: the server is away, not misnamed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    away = failure(f"mysql://root@127.0.0.1:{port}/runyard")
    assert isinstance(away, StorageUnavailableError), away
