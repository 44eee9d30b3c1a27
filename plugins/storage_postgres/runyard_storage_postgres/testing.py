"""Helpers for testing against a real PostgreSQL (used by this plugin's tests and the end-to-end
tests; handy for anyone testing a deployment on Postgres).

* The **shared server** is named by ``RUNYARD_TEST_PG_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/postgres``): a role that may ``CREATE DATABASE``. Tests make
  their own databases on it (:func:`create_database`) and drop them afterwards.
* A **private server** (:class:`PrivateServer`) is a throwaway cluster made with ``initdb`` and run
  with ``pg_ctl`` on a free port in a temporary directory, with password (scram-sha-256) auth:
  for tests that stop and restart the server, or need real password checks. As root, the server
  runs as the ``postgres`` system user (``initdb`` refuses root).

Nothing here skips: when something is missing the error says what, and tests fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import quote

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_ENV = "RUNYARD_TEST_PG_URL"


class PostgresUnavailable(RuntimeError):
    """What a test needs from PostgreSQL is missing; the message says what and how to fix it."""


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


def _connect(url: str, **kwargs: Any):
    import psycopg2

    from .config import check_url

    check_url(url)
    dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
    return psycopg2.connect(dsn, **kwargs)


def require_server(url: str | None = None) -> str:
    """Return the admin URL once a connection works; raise :class:`PostgresUnavailable` otherwise."""
    url = url or admin_url()
    try:
        conn = _connect(url, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - reported with what to do
        raise PostgresUnavailable(
            f"PostgreSQL is not reachable at {_hide(url)} ({str(exc).strip().splitlines()[0]}). These tests "
            f"need a running server: start the local cluster (`pg_ctlcluster --skip-systemctl-redirect "
            f"$(ls /etc/postgresql) main start`), install one (`apt-get install -y postgresql`), or point "
            f"{ADMIN_URL_ENV} at a role allowed to CREATE DATABASE. `scripts/test` does the first two."
        ) from None
    conn.close()
    return url


def _hide(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def database_url(base_url: str, database: str) -> str:
    """``base_url`` pointing at another database (same server, role and password)."""
    from sqlalchemy.engine import make_url

    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


def create_database(base_url: str | None = None, prefix: str = "runyard_test") -> str:
    """Create a fresh, uniquely named database; return its URL."""
    base_url = base_url or admin_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = _connect(base_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return database_url(base_url, name)


def drop_database(url: str, base_url: str | None = None) -> None:
    """Drop the database ``url`` names, disconnecting whoever is still connected."""
    from sqlalchemy.engine import make_url

    base_url = base_url or admin_url()
    name = make_url(url).database
    conn = _connect(base_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def connections_to(url: str, database: str | None = None) -> int:
    """Sessions connected to ``database`` (default: the one ``url`` names), from pg_stat_activity."""
    from sqlalchemy.engine import make_url

    name = database or make_url(url).database
    conn = _connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bindir() -> str:
    """Where ``initdb`` and ``pg_ctl`` live (``$RUNYARD_TEST_PG_BINDIR``, pg_config, Debian's layout)."""
    candidates = [os.environ.get("RUNYARD_TEST_PG_BINDIR")]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates.append(os.path.dirname(shutil.which("initdb") or ""))
    for path in filter(None, candidates):
        if os.path.isfile(os.path.join(path, "initdb")) and os.path.isfile(os.path.join(path, "pg_ctl")):
            return path
    raise PostgresUnavailable("initdb and pg_ctl were not found (looked in $RUNYARD_TEST_PG_BINDIR, "
                              "`pg_config --bindir`, /usr/lib/postgresql/*/bin, PATH): install the "
                              "PostgreSQL server (`apt-get install -y postgresql`).")


class PrivateServer:
    """A throwaway PostgreSQL cluster with password auth, on a free 127.0.0.1 port.

    ``with PrivateServer() as server: server.url(database="postgres")``. :meth:`stop` and
    :meth:`start` may be called any number of times (fault tests); the port stays the same.
    """

    def __init__(self, password: str = "runyard-secret", user: str = "postgres"):
        self.password = password
        self.user = user
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="runyard-pg-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self._run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root, and there is no 'postgres' system user to run "
                                          "a private server as (initdb refuses root)") from None
            runuser = shutil.which("runuser")
            if not runuser:
                raise PostgresUnavailable("running as root without `runuser` to start a private server as "
                                          "the postgres user")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._run_as = [runuser, "-u", "postgres", "--"]
            self._owner = (entry.pw_uid, entry.pw_gid)
        else:
            self._owner = None
        self.running = False

    def _cmd(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self._run_as, *args], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            log = ""
            if os.path.exists(self.logfile):
                with open(self.logfile) as f:
                    log = f.read()[-2000:]
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}"
                                      f"\n{log}")
        return proc

    def init(self) -> PrivateServer:
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self._owner:
            os.chown(pwfile, *self._owner)
        self._cmd(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.user,
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions")
        os.unlink(pwfile)
        return self

    def start(self) -> PrivateServer:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=100")
        self._cmd(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", "-t", "60",
                  "-o", options, "start")
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._cmd(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop",
                      check=False)
            self.running = False

    def url(self, database: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        user = user or self.user
        password = self.password if password is None else password
        return f"postgresql://{quote(user)}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        conn = _connect(self.url())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _connect(self.url(), connect_timeout=2).close()
                return
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateServer:
        return self.init().start()

    def __exit__(self, *exc: Any) -> None:
        self.destroy()
