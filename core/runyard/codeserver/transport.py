"""HTTP for the code server: the routes under ``/v1/`` and a threaded stdlib HTTP server that
answers every request with JSON, errors included (``{"error": {"message", "traceback", "kind"}}``;
500, still JSON, for a bug in runyard).

======  ================================  =========================================================
GET     /v1/health                        status (ok | error), location name, snapshot id, load
                                          error with the user's traceback, pid, code pointer
GET     /v1/snapshot                      jobs, resources, schedules, sensors and ``snapshot_id``
POST    /v1/jobs/<job>/validate           ``{run_config, ops?}`` -> ok + plan, or the config errors
POST    /v1/schedules/<name>/evaluate     ``{tick_time}`` -> run requests or a skip reason
POST    /v1/sensors/<name>/evaluate       ``{cursor, last_tick_time}`` -> run requests / skip / cursor
POST    /v1/reload                        re-import the definitions
======  ================================  =========================================================
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .protocol import API_VERSION, WireModel

if TYPE_CHECKING:  # pragma: no cover
    from .server import CodeLocationServer

log = logging.getLogger("runyard.codeserver")

MAX_BODY_BYTES = 16 * 1024 * 1024

ENDPOINTS = [
    "GET /v1/health",
    "GET /v1/snapshot",
    "POST /v1/jobs/<job>/validate",
    "POST /v1/schedules/<name>/evaluate",
    "POST /v1/sensors/<name>/evaluate",
    "POST /v1/reload",
]


class HttpError(Exception):
    """Answer ``status`` with ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, kind: str, *, traceback: str | None = None,
                 **extra: Any):
        self.status = status
        self.body = {"error": {"message": message, "kind": kind, "traceback": traceback, **extra}}
        super().__init__(message)


def route(app: CodeLocationServer, method: str, path: str,
          body: Callable[[], dict[str, Any]]) -> tuple[int, WireModel]:
    """The endpoint ``method path`` names, called; ``body`` reads the request's JSON object."""
    parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/")]
    if not parts or parts[0] != API_VERSION:
        raise _unknown_path(path)
    rest = parts[1:]
    simple: dict[str, tuple[str, Callable[[], WireModel]]] = {
        "health": ("GET", app.health),
        "snapshot": ("GET", app.snapshot),
        "reload": ("POST", app.reload),
    }
    if len(rest) == 1 and rest[0] in simple:
        expected, handler = simple[rest[0]]
        _check_method(method, expected, path)
        return 200, handler()
    named: dict[tuple[str, str], Callable[[str, dict[str, Any]], WireModel]] = {
        ("jobs", "validate"): app.validate,
        ("schedules", "evaluate"): app.evaluate_schedule,
        ("sensors", "evaluate"): app.evaluate_sensor,
    }
    if len(rest) == 3 and (rest[0], rest[2]) in named:
        _check_method(method, "POST", path)
        return 200, named[(rest[0], rest[2])](rest[1], body())
    raise _unknown_path(path)


def _check_method(method: str, expected: str, path: str) -> None:
    if method != expected:
        raise HttpError(405, f"{path} takes {expected}, not {method}", "method_not_allowed")


def _unknown_path(path: str) -> HttpError:
    return HttpError(404, f"no endpoint {path}. Endpoints: {'; '.join(ENDPOINTS)}", "not_found",
                     endpoints=ENDPOINTS)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def make_http_server(host: str, port: int, app: CodeLocationServer) -> ThreadingHTTPServer:
    """Bound (not yet serving) to ``host:port``; raises ``OSError`` when the port is taken."""
    server_cls = _HTTPServer6 if ":" in host else _HTTPServer
    httpd = server_cls((host, port), _Handler)
    httpd.app = app  # type: ignore[attr-defined]
    return httpd


class _Handler(BaseHTTPRequestHandler):
    server_version = "runyard-code-server"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "bad Content-Length", "bad_request") from None
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes", "bad_request")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise HttpError(400, f"request body is not JSON: {exc}", "bad_request") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object", "bad_request")
        return data

    def _handle(self, method: str) -> None:
        app: CodeLocationServer = self.server.app  # type: ignore[attr-defined]
        try:
            status, model = route(app, method, self.path, self._body)
            payload: Any = model.to_json()
        except HttpError as exc:
            status, payload = exc.status, exc.body
        except Exception as exc:  # a bug in runyard: still a JSON answer, never a bare 500
            log.exception("error handling %s %s", method, self.path)
            status, payload = 500, {"error": {"message": f"internal error in the code server: "
                                                         f"{type(exc).__name__}: {exc}",
                                              "kind": "internal_error", "traceback": traceback.format_exc()}}
        data = json.dumps(payload, default=str).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")
