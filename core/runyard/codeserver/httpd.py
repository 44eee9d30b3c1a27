"""Serving the code server's WSGI app with waitress, with bounds a code server needs.

waitress reads requests on one asynchronous loop and hands only complete requests to a fixed pool of
threads, so a slow or silent client costs a connection, never a thread. On top of its limits
(``connection_limit``: further connections wait in the listen backlog; ``max_request_body_size``:
checked against ``Content-Length`` before the body is read; ``channel_timeout``: idle connections
are closed) this module adds:

* a deadline for receiving a whole request (``request_timeout``): a client that keeps a connection
  "active" by sending a header line now and then is cut off, which waitress's idle timeout alone
  would never do;
* JSON answers for the errors waitress raises itself while parsing (malformed, negative or
  too-large ``Content-Length``, a bad request line), like every other answer of a code server.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("runyard.codeserver")

MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class HttpLimits:
    """Bounds of one code server's HTTP (``runyard code-server`` options of the same names)."""

    threads: int = 16                    # requests handled at once (evaluations included)
    max_connections: int = 100           # open connections; more wait in the listen backlog
    request_timeout: float = 30.0        # seconds to receive a whole request; also the idle timeout
    max_body_bytes: int = MAX_BODY_BYTES


def _json_error_message(error: Any, headers: dict[str, str], limits: HttpLimits) -> str:
    """What waitress's parser refused, in the words of a code server error."""
    from waitress.utilities import RequestEntityTooLarge

    length = headers.get("CONTENT_LENGTH")
    if isinstance(error, RequestEntityTooLarge):
        if length is None:  # a chunked body that grew past the limit
            return f"request body over the limit of {limits.max_body_bytes} bytes"
        return f"request body over the limit of {limits.max_body_bytes} bytes (Content-Length header: {length})"
    if str(error.body) == "Content-Length is invalid":
        return f"invalid Content-Length header {length!r}: it must be a non-negative integer"
    return f"bad HTTP request: {error.body}"


def _server_class(limits: HttpLimits) -> type:
    """A waitress TCP server whose channels answer parse errors in JSON and enforce the deadline."""
    from waitress.channel import HTTPChannel
    from waitress.server import TcpWSGIServer
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self) -> None:
            error = self.request.error
            message = _json_error_message(error, self.request.headers, limits)
            body = json.dumps({"error": {"message": message, "kind": "bad_request", "traceback": None}}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class Channel(HTTPChannel):
        error_task_class = JsonErrorTask
        _request_started: float | None = None

        def received(self, data: bytes) -> bool:
            now = time.monotonic()
            if self.request is None:  # the first bytes of a request (or of the next one)
                self._request_started = now
            elif self._request_started is not None and now - self._request_started > limits.request_timeout:
                log.warning("closing the connection from %s: its request took over %gs to arrive",
                            self.addr[0] if self.addr else "?", limits.request_timeout)
                self.will_close = True
                return False
            result = super().received(data)
            if self.request is None:
                self._request_started = None
            return result

    class Server(TcpWSGIServer):
        channel_class = Channel

    return Server


class HttpServer:
    """``app`` bound to ``host:port`` (not serving until :meth:`serve_forever`); raises ``OSError``
    when the address cannot be bound. ``port`` 0 picks a free port: :attr:`port` tells which."""

    def __init__(self, host: str, port: int, app: Any, limits: HttpLimits):
        from waitress.adjustments import Adjustments

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # one address, like a plain socket bind: waitress would listen on every address a name
        # resolves to, each with its own free port
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_STREAM)
        adj = Adjustments(threads=limits.threads, connection_limit=limits.max_connections + 2,  # + listener, trigger
                          channel_timeout=max(1, math.ceil(limits.request_timeout)),
                          cleanup_interval=max(1, math.ceil(limits.request_timeout / 2)),
                          max_request_body_size=limits.max_body_bytes, backlog=1024, ident="runyard-code-server",
                          expose_tracebacks=False, log_socket_errors=False)
        family, socktype, proto, _, sockaddr = infos[0]
        self._server = _server_class(limits)(app, map={}, adj=adj, sockinfo=(family, socktype, proto, sockaddr))
        self.port = int(self._server.effective_port)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError) as exc:  # the socket map was closed under the loop by shutdown()
            if not self._stopped.is_set() and getattr(exc, "errno", None) != errno.EBADF:
                raise

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish (up to ``timeout``), close every socket."""
        from waitress import wasyncore

        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.task_dispatcher.shutdown(timeout=timeout)
        wasyncore.close_all(self._server._map)
