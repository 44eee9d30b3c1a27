"""A workspace: the code locations of a workspace file, each reachable through a
:class:`~runyard.codeserver.client.CodeServerClient`. This is all the daemon and the web UI need —
they never import the user's definitions.

For ``python_file`` and ``python_module`` entries the workspace starts a local code server
(``python -m runyard code-server ... --port 0``) in its own process, learns the chosen port from
the server's readiness handshake (one JSON line on a pipe passed as ``--ready-fd``, parsed into a
:class:`~runyard.codeserver.protocol.ServerReady`; the banner on its stdout is only logged), gives
it a token of its own through its environment (see :mod:`runyard.codeserver.auth`), and
supervises it: a server that dies is restarted (a supervisor thread, with a backoff that doubles on
each quick death). ``code_server`` entries are reached as they are.
:meth:`Workspace.shutdown` stops every process the workspace started; a server started by a
workspace also stops by itself if the workspace's process dies (``--exit-with-parent``).

::

    with Workspace.from_file("workspace.yaml") as ws:
        for loc in ws.locations():
            print(loc.name, loc.status, loc.snapshot)
        result = ws.location("etl").client.evaluate_schedule("hourly", time.time())
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..codeserver.auth import TOKEN_ENV, generate_token
from ..codeserver.client import CodeServerClient
from ..codeserver.errors import CodeServerError, CodeServerUnavailableError
from ..codeserver.protocol import HealthInfo, SerializedError, ServerReady
from ..codeserver.snapshot import LocationSnapshot
from ..errors import RunyardError
from .config import DEFAULT_WORKSPACE_FILE, LocationOrigin, load_workspace_file

log = logging.getLogger("runyard.workspace")

# Location statuses
OK = "ok"                    # definitions loaded; snapshot available
ERROR = "error"              # server up, definitions fail to load (see error)
UNAVAILABLE = "unavailable"  # no server answers (not started, died, unreachable)
STARTING = "starting"        # a local server is being (re)started


def _unavailable(message: str) -> SerializedError:
    return SerializedError(message=message, kind="unavailable")


class _LocalServer:
    """One code server subprocess, the thread that logs its output and the thread that reads its
    readiness handshake."""

    def __init__(self, origin: LocationOrigin, python: str, evaluation_timeout: float | None,
                 env: dict[str, str] | None, token: str):
        self.origin = origin
        args = [python, "-m", "runyard", "code-server", "--host", "127.0.0.1", "--port", "0",
                "--location-name", origin.location_name, "--exit-with-parent"]
        if origin.python_file:
            args += ["-f", origin.python_file]
        else:
            args += ["-m", str(origin.module)]
        if origin.attribute:
            args += ["-a", origin.attribute]
        if origin.working_directory:
            args += ["-d", origin.working_directory]
        if evaluation_timeout is not None:
            args += ["--evaluation-timeout", str(evaluation_timeout)]
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONUNBUFFERED"] = "1"
        # the server's token travels in its environment, never in argv (which `ps` shows everyone)
        child_env[TOKEN_ENV] = token
        self.output_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.handshake: ServerReady | None = None
        self.handshake_error: str | None = None
        self.ready = threading.Event()
        self.started_at = time.monotonic()
        # The server writes its handshake line to the write end and closes it; the read end sees
        # that line, or EOF alone when the server dies first (its copy closes with it).
        ready_read, ready_write = os.pipe()
        args += ["--ready-fd", str(ready_write)]
        try:
            # Own session: a Ctrl-C meant for the parent does not reach the child first, so the
            # workspace decides the order of shutdown (and a dying child is not mistaken for a crash).
            self.proc = subprocess.Popen(args, cwd=origin.working_directory or None, env=child_env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True, encoding="utf-8", errors="replace", bufsize=1,
                                         start_new_session=True, pass_fds=(ready_write,))
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, name=f"code-server output {origin.location_name}",
                                       daemon=True)
        self.reader.start()
        self.handshake_reader = threading.Thread(target=self._read_handshake, args=(ready_read,),
                                                 name=f"code-server ready {origin.location_name}", daemon=True)
        self.handshake_reader.start()

    @property
    def port(self) -> int | None:
        return self.handshake.port if self.handshake else None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.output_tail.append(line)
            log.info("[%s] %s", self.origin.location_name, line)

    def _read_handshake(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            line = pipe.readline()
        if line:
            try:
                self.handshake = ServerReady.from_line(line)
            except ValueError as exc:
                self.handshake_error = f"sent a ready line that is not the handshake ({exc}): {line[:200]!r}"
            else:
                log.info("[%s] code server ready on %s:%s (pid %s)", self.origin.location_name,
                         self.handshake.host, self.handshake.port, self.pid)
        self.ready.set()  # the handshake, or EOF: the process is gone; wake up whoever waits

    def wait_ready(self, timeout: float) -> ServerReady:
        """The handshake, once the server listens. Raises CodeServerUnavailableError if it exits or
        is not listening within ``timeout``."""
        self.ready.wait(timeout)
        if self.handshake is not None:
            return self.handshake
        name = self.origin.location_name
        if self.handshake_error:
            raise CodeServerUnavailableError(f"code server for location '{name}' (pid {self.pid}) "
                                             f"{self.handshake_error}")
        if self.ready.is_set():  # the handshake pipe closed empty: the process is exiting, give it a moment
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            why = "closed its handshake pipe without listening" if self.ready.is_set() else \
                f"did not start listening within {timeout:g}s"
            raise CodeServerUnavailableError(f"code server for location '{name}' (pid {self.pid}) {why}")
        self.reader.join(2)
        tail = "\n".join(self.output_tail).strip()
        raise CodeServerUnavailableError(f"code server for location '{name}' exited with code "
                                         f"{self.proc.returncode} before listening"
                                         + (f":\n{tail}" if tail else ""))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc.poll() is not None:
            return
        try:  # the server's session: it and anything the user's code started in it
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


class CodeLocation:
    """A code location of the workspace. ``client`` is current (a restarted local server listens on a
    new port, so ask for ``location.client`` each time rather than keeping it). ``status``,
    ``snapshot`` and ``error`` are as of the last :meth:`refresh`."""

    def __init__(self, origin: LocationOrigin, client_timeout: float, evaluation_timeout: float | None):
        self.origin = origin
        self.name = origin.location_name
        self._client_timeout = client_timeout
        # the client waits for an evaluation a bit longer than the server lets it run
        self._client_eval_timeout = (evaluation_timeout or 60.0) + 30.0
        self._client: CodeServerClient | None = None
        # A local server gets a token of its own (kept across restarts); a remote one's comes from
        # the workspace file's {env: NAME}.
        self._token = generate_token() if origin.is_local else origin.token
        if not origin.is_local:
            self._client = self._make_client(str(origin.host), int(origin.port or 0))
        self.status = STARTING if origin.is_local else UNAVAILABLE
        self.snapshot: LocationSnapshot | None = None
        self.health: HealthInfo | None = None
        self.error: SerializedError | None = None
        self.restarts = 0
        self.lock = threading.RLock()
        self._server: _LocalServer | None = None
        #: ``time.monotonic()`` of the last :meth:`refresh` (None: never asked)
        self.checked_at: float | None = None

    def _make_client(self, host: str, port: int) -> CodeServerClient:
        return CodeServerClient(host, port, self._client_timeout, evaluation_timeout=self._client_eval_timeout,
                                token=self._token)

    @property
    def client(self) -> CodeServerClient:
        with self.lock:
            if self._client is None:
                raise CodeServerUnavailableError(f"code location '{self.name}' has no running code server yet"
                                                 + (f": {self.error.message}" if self.error else ""))
            return self._client

    @property
    def is_local(self) -> bool:
        return self.origin.is_local

    @property
    def pid(self) -> int | None:
        """The pid of the local code server process (None for code_server entries)."""
        server = self._server
        return server.pid if server is not None else None

    @property
    def snapshot_id(self) -> str | None:
        return self.snapshot.snapshot_id if self.snapshot else None

    def refresh(self, *, health_timeout: float | None = None) -> str:
        """Ask the server for its health (waiting at most ``health_timeout``, default the client's
        timeout); fetch the snapshot when its id changed. Returns the status."""
        self.checked_at = time.monotonic()
        with self.lock:
            client = self._client
        if client is None:
            return self.status
        try:
            health = client.health(timeout=health_timeout)
            snapshot = self.snapshot
            if health.ok and (snapshot is None or snapshot.snapshot_id != health.snapshot_id):
                snapshot = client.snapshot()
        except CodeServerError as exc:
            with self.lock:
                self.status, self.health, self.error = UNAVAILABLE, None, _unavailable(str(exc))
            return self.status
        with self.lock:
            self.health = health
            if health.ok:
                self.status, self.snapshot, self.error = OK, snapshot, None
            else:
                self.status, self.snapshot, self.error = ERROR, None, health.error
            return self.status

    def describe(self) -> dict[str, Any]:
        """A row of ``runyard workspace list``."""
        snap = self.snapshot if self.status == OK else None
        return {"location": self.name, "origin": self.origin.describe(), "origin_detail": self.origin.to_json(),
                "status": self.status, "jobs": len(snap.job_names) if snap else None,
                "schedules": len(snap.schedule_names) if snap else None,
                "sensors": len(snap.sensor_names) if snap else None,
                "snapshot_id": snap.snapshot_id if snap else None,
                "error": self.error.message if self.error else None,
                "traceback": self.error.traceback if self.error else None,
                "address": self._client.address if self._client else None, "pid": self.pid,
                "restarts": self.restarts}

    def __repr__(self) -> str:
        return f"<CodeLocation {self.name} {self.status}>"


class Workspace:
    """The code locations of a workspace file. Start with :meth:`start` (or ``with``), stop with
    :meth:`shutdown`."""

    def __init__(self, origins: Iterable[LocationOrigin], *, source: str | None = None,
                 startup_timeout: float = 120.0, client_timeout: float = 30.0,
                 evaluation_timeout: float | None = None, python: str | None = None,
                 env: dict[str, str] | None = None, supervise: bool = True,
                 restart_backoff: tuple[float, float] = (0.5, 30.0)):
        self.source = source
        self.startup_timeout = startup_timeout
        self.evaluation_timeout = evaluation_timeout
        self.python = python or sys.executable
        self.env = env
        self.supervise = supervise
        self.restart_backoff = restart_backoff
        self._locations = {o.location_name: CodeLocation(o, client_timeout, evaluation_timeout) for o in origins}
        self._stopping = threading.Event()
        self._spawn_lock = threading.Lock()  # no new child once shutdown has begun
        self._supervisor: threading.Thread | None = None
        self._started = False
        self._ready = threading.Event()  # set once start() has waited for every code server
        self._next_restart: dict[str, float] = {}
        self._quick_deaths: dict[str, int] = {}

    @classmethod
    def from_file(cls, path: str = DEFAULT_WORKSPACE_FILE, **kwargs: Any) -> Workspace:
        """Parse ``path`` (not started yet). Raises ConfigError naming file, line and key path."""
        return cls(load_workspace_file(path), source=os.path.abspath(path), **kwargs)

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self, *, wait: bool = True) -> Workspace:
        """Start every local code server (in parallel), wait for each to listen, then refresh every
        location. A location that fails to start is reported by its status, not raised.

        With ``wait=False`` the servers are spawned and the waiting happens on a background thread:
        the web UI serves its pages while user code is still being imported, and whatever needs a
        location waits for it with :meth:`wait_started`."""
        if self._started:
            return self
        self._started = True
        atexit.register(self.shutdown)
        local = [loc for loc in self._locations.values() if loc.is_local]
        for loc in local:
            self._spawn(loc)
        if wait:
            self._finish_start(local)
        else:
            threading.Thread(target=self._finish_start, args=(local,), name="workspace start", daemon=True).start()
        return self

    def _finish_start(self, local: list[CodeLocation]) -> None:
        try:
            for loc in local:
                self._await(loc)
            for loc in self._locations.values():
                if not loc.is_local:
                    loc.refresh()
            # under the lock shutdown() sets _stopping with, and published once started: shutdown
            # sees either no supervisor or one it can join, never one made but not yet started
            with self._spawn_lock:
                if self.supervise and local and not self._stopping.is_set():
                    supervisor = threading.Thread(target=self._supervise, name="workspace supervisor", daemon=True)
                    supervisor.start()
                    self._supervisor = supervisor
        finally:
            self._ready.set()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until :meth:`start` has waited for every code server (at once when it already has);
        False when ``timeout`` passed first or the workspace was never started."""
        return self._started and self._ready.wait(timeout)

    def __enter__(self) -> Workspace:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def _spawn(self, loc: CodeLocation) -> None:
        with self._spawn_lock, loc.lock:
            if self._stopping.is_set():
                return
            loc.status, loc._client = STARTING, None
            try:
                loc._server = _LocalServer(loc.origin, self.python, self.evaluation_timeout, self.env, loc._token)
            except OSError as exc:
                loc._server = None
                loc.status = UNAVAILABLE
                loc.error = _unavailable(f"cannot start a code server for location '{loc.name}': {exc}")

    def _await(self, loc: CodeLocation) -> None:
        server = loc._server
        if server is None:
            return
        try:
            ready = server.wait_ready(self.startup_timeout)
        except CodeServerUnavailableError as exc:
            with loc.lock:
                loc.status, loc.error = UNAVAILABLE, _unavailable(str(exc))
            return
        with loc.lock:
            if loc._server is server:
                loc._client = loc._make_client(ready.host, ready.port)
        loc.refresh()

    def _supervise(self) -> None:
        low, high = self.restart_backoff
        while not self._stopping.wait(0.2):
            for loc in list(self._locations.values()):
                if not loc.is_local or self._stopping.is_set():
                    continue
                server = loc._server
                if server is not None and server.alive():
                    if loc._client is None and server.port is not None:  # listening after a slow start
                        self._await(loc)
                    continue
                now = time.monotonic()
                due = self._next_restart.get(loc.name)
                if due is None:
                    # the first restart is quick; a server that keeps dying soon after its start waits
                    # twice as long each time (up to ``high``)
                    quick = server is not None and now - server.started_at < 30.0
                    deaths = self._quick_deaths.get(loc.name, 0) + 1 if quick else 1
                    self._quick_deaths[loc.name] = deaths
                    delay = min(high, low * 2 ** (deaths - 1))
                    self._next_restart[loc.name] = now + delay
                    code = server.proc.returncode if server is not None else None
                    log.warning("code server for location '%s' exited (code %s); restarting in %.1fs",
                                loc.name, code, delay)
                    with loc.lock:
                        loc.status, loc._client = UNAVAILABLE, None
                        loc.error = _unavailable(f"code server for location '{loc.name}' exited with code "
                                                 f"{code}; restarting")
                    continue
                if now < due or self._stopping.is_set():
                    continue
                del self._next_restart[loc.name]
                loc.restarts += 1
                self._spawn(loc)
                if self._stopping.is_set():
                    break
                self._await(loc)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the supervisor and every code server this workspace started; wait until they are gone."""
        with self._spawn_lock:
            self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout)
        servers = [loc._server for loc in self._locations.values() if loc._server is not None]
        for server in servers:
            server.terminate()
        deadline = time.monotonic() + timeout
        for server in servers:
            try:
                server.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("code server pid %s did not stop on SIGTERM; killing it", server.pid)
                server.kill()
                server.proc.wait()
        for server in servers:
            server.reader.join(2)
            server.handshake_reader.join(2)
            if server.proc.stdout is not None:
                server.proc.stdout.close()
        for loc in self._locations.values():
            with loc.lock:
                if loc.is_local:
                    loc._client = None
                    loc.status = UNAVAILABLE
        atexit.unregister(self.shutdown)

    # ---- queries ------------------------------------------------------------------------------------
    def locations(self) -> list[CodeLocation]:
        """Every location, in workspace file order."""
        return list(self._locations.values())

    def location(self, name: str) -> CodeLocation:
        try:
            return self._locations[name]
        except KeyError:
            raise RunyardError(f"no code location named '{name}' in the workspace"
                               + (f" {self.source}" if self.source else "")
                               + f". Locations: {', '.join(self._locations) or '(none)'}") from None

    def refresh(self, name: str | None = None) -> None:
        """Re-read health (and the snapshot when it changed) of one location or all."""
        for loc in self._select(name):
            loc.refresh()

    def _select(self, name: str | None) -> list[CodeLocation]:
        return [self.location(name)] if name is not None else self.locations()

    def reload(self, name: str | None = None) -> list[dict[str, Any]]:
        """Ask one location's (or every location's) code server to re-import its definitions.
        Returns one result per location: ``location, status (ok | error | unavailable), snapshot_id,
        changed, error``. A local location whose server is not running is started first."""
        results = []
        for loc in self._select(name):
            if loc.is_local and (loc._server is None or not loc._server.alive()) and not self._stopping.is_set():
                self._spawn(loc)
                self._await(loc)
            try:
                answer = loc.client.reload()
            except CodeServerError as exc:
                with loc.lock:
                    loc.status, loc.error = UNAVAILABLE, _unavailable(str(exc))
                results.append({"location": loc.name, "status": UNAVAILABLE, "snapshot_id": None,
                                "changed": None, "error": str(exc), "traceback": None})
                continue
            loc.refresh()
            error = answer.error
            results.append({"location": loc.name, "status": answer.status, "snapshot_id": answer.snapshot_id,
                            "changed": answer.changed, "error": error.message if error else None,
                            "traceback": error.traceback if error else None})
        return results
