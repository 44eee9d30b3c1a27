"""HTTP for the code server: the routes under ``/v1/`` and the WSGI app that answers every request
with JSON, errors included (``{"error": {"message", "traceback", "kind"}}``; 500, still JSON, for a
bug in runyard). :mod:`.auth` checks each request first; :mod:`.httpd` serves the app.

======  ================================  =========================================================
GET     /v1/health                        status (ok | error), location name, snapshot id, load
                                          error with the user's traceback, pid, code pointer
GET     /v1/snapshot                      jobs, resources, schedules, sensors and ``snapshot_id``
POST    /v1/jobs/<job>/validate           ``{run_config, ops?}`` -> ok + plan, or the config errors
POST    /v1/schedules/<name>/evaluate     ``{tick_time}`` -> run requests or a skip reason
POST    /v1/sensors/<name>/evaluate       ``{cursor, last_tick_time}`` -> run requests / skip / cursor
POST    /v1/partition-runs                ``{job, partition_keys}`` -> run config and tags per partition
POST    /v1/reload                        re-import the definitions
GET     /healthz                          liveness only (``{"status": "ok"}``), the one path that
                                          needs no token
======  ================================  =========================================================

A request body is one JSON object of at most 16 MB (``Content-Length`` required on a POST, 411
without it) nested at most :data:`MAX_JSON_DEPTH` deep.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .protocol import API_VERSION, WireModel

if TYPE_CHECKING:  # pragma: no cover
    from .auth import RequestGuard
    from .server import CodeLocationServer

log = logging.getLogger("runyard.codeserver")

# Deeper than any run config; bounds the work of everything that walks a request afterwards.
MAX_JSON_DEPTH = 100

ENDPOINTS = [
    "GET /v1/health",
    "GET /v1/snapshot",
    "POST /v1/jobs/<job>/validate",
    "POST /v1/schedules/<name>/evaluate",
    "POST /v1/sensors/<name>/evaluate",
    "POST /v1/partition-runs",
    "POST /v1/reload",
    "GET /healthz",
]


class HttpError(Exception):
    """Answer ``status`` with ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, kind: str, *, traceback: str | None = None,
                 headers: Iterable[tuple[str, str]] = (), **extra: Any):
        self.status = status
        self.headers = list(headers)
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
    if rest == ["partition-runs"]:
        _check_method(method, "POST", path)
        return 200, app.partition_runs(body())
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


def _depth(value: Any) -> int:
    """How deep ``value`` nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _read_body(environ: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object. waitress has checked ``Content-Length`` (digits, under the body
    limit) and read the body before the app runs."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except RecursionError:
        raise HttpError(400, f"request body nests too deep (over {MAX_JSON_DEPTH} levels)", "bad_request") from None
    except ValueError as exc:
        raise HttpError(400, f"request body is not JSON: {exc}", "bad_request") from None
    if not isinstance(data, dict):
        raise HttpError(400, "request body must be a JSON object", "bad_request")
    if _depth(data) > MAX_JSON_DEPTH:
        raise HttpError(400, f"request body nests too deep (over {MAX_JSON_DEPTH} levels)", "bad_request")
    return data


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def make_wsgi_app(app: CodeLocationServer, guard: RequestGuard) -> Callable[..., Iterable[bytes]]:
    """The code server as a WSGI application."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        # the raw path: a job name may hold an escaped "/" (PATH_INFO has it decoded)
        path = environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
        headers: list[tuple[str, str]] = []
        try:
            guard.check(method, environ.get("PATH_INFO") or "/", _headers(environ))
            if method == "POST" and not environ.get("CONTENT_LENGTH"):
                raise HttpError(411, f"{method} {path} needs a Content-Length header (the length of its "
                                     "JSON body)", "bad_request")
            if method == "GET" and environ.get("PATH_INFO") == "/healthz":
                status, payload = 200, {"status": "ok"}
            else:
                status, model = route(app, method, path, lambda: _read_body(environ))
                payload = model.to_json()
        except HttpError as exc:
            status, payload, headers = exc.status, exc.body, exc.headers
        except Exception as exc:  # a bug in runyard: still a JSON answer, never a bare 500
            log.exception("error handling %s %s", method, path)
            status, payload = 500, {"error": {"message": f"internal error in the code server: "
                                                         f"{type(exc).__name__}: {exc}",
                                              "kind": "internal_error", "traceback": traceback.format_exc()}}
        data = json.dumps(payload, default=str).encode("utf-8")
        start_response(_STATUS_LINES.get(status, f"{status} Error"),
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers])
        return [data]

    return wsgi


_STATUS_LINES = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
                 404: "404 Not Found", 405: "405 Method Not Allowed", 411: "411 Length Required",
                 413: "413 Content Too Large", 415: "415 Unsupported Media Type",
                 500: "500 Internal Server Error", 503: "503 Service Unavailable"}
