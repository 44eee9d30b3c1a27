"""``runyard code-server`` as a process: bind, load, announce readiness, serve until SIGTERM or
SIGINT (or until the parent exits, with ``--exit-with-parent``), stop cleanly.

Readiness is announced twice: a banner line on stdout for people, and — when the starter asks with
``--ready-fd`` or ``--ready-file`` — one JSON line (:class:`~runyard.codeserver.protocol.ServerReady`)
for programs, so nobody parses the banner. The workspace passes a pipe's write end as ``--ready-fd``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..stopping import StopRequest
from ..storage.records import CodePointer
from .auth import TOKEN_ENV, is_loopback
from .httpd import HttpLimits
from .protocol import ServerReady
from .server import CodeLocationServer

log = logging.getLogger("runyard.codeserver")

LISTENING_MESSAGE = "code server for location {name} listening on http://{host}:{port}"


def announce_ready(ready: ServerReady, *, fd: int | None = None, path: str | None = None) -> None:
    """Write the handshake to the inherited file descriptor ``fd`` (then closed: the reader sees
    EOF after the line) and/or to the file ``path`` (written whole, then renamed into place, so a
    reader polling for it never sees half a line)."""
    line = ready.to_line()
    if path is not None:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(line)
        os.replace(tmp, path)
    if fd is not None:
        try:
            os.write(fd, line)
        except OSError as exc:  # the starter went away; serving is still right
            log.warning("cannot write the ready line to file descriptor %s: %s", fd, exc)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass


def _watch_parent(stop: StopRequest) -> None:
    """Stop when the process that started us is gone (we were re-parented): a workspace's children
    must not outlive it, even if it was killed with SIGKILL."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("parent process %s exited; stopping", parent)
            stop.set()


def run_code_server(pointer: CodePointer, *, location_name: str | None, host: str, port: int,
                    evaluation_timeout: float, exit_with_parent: bool = False,
                    ready_fd: int | None = None, ready_file: str | None = None,
                    echo: Callable[[str], None] = print, token: str | None = None,
                    limits: HttpLimits | None = None, image: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or, with ``exit_with_parent``, until the parent exits). Without a
    ``token`` anyone who reaches ``host:port`` may use it: the caller decides whether that is allowed
    (``runyard code-server`` allows it on loopback only, or with ``--insecure-no-auth``)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if token is None:
        if is_loopback(host):
            log.warning("serving without a token: any program on this machine can make this server run the "
                        "definitions' code (web pages cannot). Set %s or --token-env NAME to require one.",
                        TOKEN_ENV)
        else:
            log.warning("serving %s without a token (--insecure-no-auth): anyone who reaches it can make it run "
                        "the definitions' code", host)
    stop = StopRequest()  # set by the signal handlers: a threading.Event could hang them (runyard.stopping)

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = CodeLocationServer(pointer, location_name=location_name, host=host, port=port,
                                    evaluation_timeout=evaluation_timeout, token=token, limits=limits,
                                    image=image)
        thread = threading.Thread(target=server.serve_forever, name="code-server", daemon=True)
        thread.start()
        if server.state.error:
            error = server.state.error
            log.error("definitions of location %s failed to load (the server stays up, reports it on /v1/health "
                      "and loads again on /v1/reload): %s%s", server.location_name, error.message,
                      "\n" + error.traceback.rstrip() if error.traceback else "")
        # the handshake first: whoever sees the banner can count on the ready file being there
        if ready_fd is not None or ready_file is not None:
            announce_ready(ServerReady(host=host, port=server.port, pid=os.getpid(), location=server.location_name),
                           fd=ready_fd, path=ready_file)
        echo(LISTENING_MESSAGE.format(name=server.location_name, host=host, port=server.port))
        sys.stdout.flush()
        if exit_with_parent:
            threading.Thread(target=_watch_parent, args=(stop,), name="watch-parent", daemon=True).start()
        while not stop.wait(0.5):
            pass
        server.shutdown()
        thread.join(5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.close()
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        os._exit(0)  # a thread the user's code started would keep us alive: we were told to stop
    return 0
