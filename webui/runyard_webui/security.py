"""The web UI's security defaults (docs/webui.md, "Security defaults"): no public bind without
authentication, ``Host`` checked against the allowed hosts (DNS rebinding), cross-site requests
that change state refused, anti-framing and content-security headers on every answer, and every
mutation refused in read-only mode by one check."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, request

if TYPE_CHECKING:  # pragma: no cover
    from .settings import WebuiSettings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: GraphiQL, served at GET /graphql, loads its scripts and styles from this CDN
#: where graphql-server's GraphiQL page loads its assets from; the web UI serves them itself instead
GRAPHIQL_CDN = "https://unpkg.com"

_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
             "frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything, so it counts as public


def check_public_bind(settings: WebuiSettings, insecure_no_auth: bool) -> None:
    """Refuse to listen beyond loopback with nobody asked to log in, unless told to."""
    from runyard.errors import ConfigError

    if is_loopback(settings.host) or settings.auth is not None or insecure_no_auth:
        return
    where = "every interface" if settings.host in WILDCARD_HOSTS else settings.host
    raise ConfigError(
        f"refusing to serve the web UI on {settings.host or '0.0.0.0'} ({where}) without authentication: "
        "anyone who can reach it could launch runs and reload code. Set webui.auth (username and "
        "password) in the instance file, bind to 127.0.0.1, or pass --insecure-no-auth if something in "
        "front of it (a proxy, a firewall) already restricts access.")


def public_bind_notice(settings: WebuiSettings) -> str | None:
    """What the banner says about a bind beyond loopback (None on loopback)."""
    if is_loopback(settings.host):
        return None
    where = "every interface" if settings.host in WILDCARD_HOSTS else f"{settings.host}, beyond loopback"
    return f"listening on {where}, " + ("with authentication (webui.auth)" if settings.auth is not None
                                        else "with NO AUTHENTICATION (--insecure-no-auth)")


def plain_http_warning(settings: WebuiSettings) -> str | None:
    """What the banner warns about a bind beyond loopback with authentication: passwords and
    tokens travel in clear over plain HTTP."""
    if is_loopback(settings.host) or settings.auth is None:
        return None
    return ("passwords and API tokens sent to this web UI travel in clear over plain HTTP: put a TLS "
            "proxy in front of it (docs/auth.md)")


def split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` (``[v6]:port`` too) as (lower-case host without a trailing dot, port or None)."""
    host, port = value.strip(), None
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:]
        host = host[1:end] if end > 0 else host
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif host.count(":") == 1:
        host, _, tail = host.partition(":")
        port = int(tail) if tail.isdigit() else None
    return host.lower().rstrip("."), port


def allowed_hosts(settings: WebuiSettings) -> tuple[str, ...]:
    """The loopback names, the bound host (with a wildcard bind: this machine's names and
    addresses), and ``webui.allowed_hosts``."""
    names = {*LOOPBACK_NAMES, *(h.lower().rstrip(".") for h in settings.allowed_hosts or ())}
    if settings.host not in WILDCARD_HOSTS:
        names.add(split_host(settings.host)[0])
    else:
        hostname = socket.gethostname()
        names.update({hostname.lower(), socket.getfqdn().lower()})
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(hostname, None))
        except OSError:
            pass  # a machine whose own name does not resolve: its names above still count
    return tuple(sorted(names))


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    for pattern in allowed:
        if pattern == "*" or host == pattern or (pattern.startswith(".") and
                                                 (host == pattern[1:] or host.endswith(pattern))):
            return True
    return False


def _same_origin(origin: str, host_header: str) -> bool:
    parts = urllib.parse.urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        origin_port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    except ValueError:
        return False
    host, port = split_host(host_header)
    # a Host without a port came through the scheme's default port (a TLS proxy in front: 443)
    return parts.hostname.rstrip(".") == host and (port is None or port == origin_port)


def _refuse(status: int, message: str) -> Response:
    """JSON in GraphQL's error format for the API, plain text for pages."""
    if request.path.startswith("/graphql"):
        response = jsonify(errors=[{"message": message}])
    else:
        response = Response(message + "\n", content_type="text/plain; charset=utf-8")
    response.status_code = status
    return response


def install(app: Flask, settings: WebuiSettings) -> None:
    """Add the Host and Origin checks (first among the request hooks, before auth) and the headers."""
    allowed = allowed_hosts(settings)

    def check_request() -> Response | None:
        if request.path == "/healthz":
            return None  # load balancers and kubelets probe by address
        host = split_host(request.host)[0]
        if not host_allowed(host, allowed):
            return _refuse(421, f"host '{host}' is not served here: add it to webui.allowed_hosts in the "
                                "instance file (a guard against DNS rebinding)")
        if request.method in SAFE_METHODS:
            return None
        fetch_site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if fetch_site in ("cross-site", "same-site") or (origin is not None and not _same_origin(origin, request.host)):
            return _refuse(403, f"refused a cross-site {request.method} (Origin: {origin or '-'}, Sec-Fetch-Site: "
                                f"{fetch_site or '-'}): changes come only from the web UI's own pages or from "
                                "clients that send no Origin")
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, check_request)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        nonce = g.get("csp_nonce")
        if nonce is not None:
            response.headers["Content-Security-Policy"] = graphiql_csp(nonce)
        else:  # a plugin route that needs more may set its own
            response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
        return response


def csp_nonce() -> str:
    """A nonce for this response's inline script (GraphiQL's), put in its CSP header."""
    g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def graphiql_csp(nonce: str) -> str:
    """GraphiQL's page: its assets from this server only (static/vendor), its inline script by nonce."""
    return (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class ReadOnlyMiddleware:
    """GraphQL middleware installed when ``webui.read_only`` is set: every root field of the
    Mutation type answers its payload with ``ok: false, code: READ_ONLY`` and is never resolved, so a
    mutation added later is refused without a check of its own."""

    MESSAGE = "this web UI is read-only (webui.read_only): mutations are refused"

    def resolve(self, next_, root: Any, info: Any, **kwargs: Any) -> Any:
        if info.parent_type is info.schema.mutation_type and not info.field_name.startswith("__"):
            from .context import READ_ONLY

            return refused_payload(READ_ONLY, self.MESSAGE)
        return next_(root, info, **kwargs)


def refused_payload(code: str, message: str) -> dict[str, Any]:
    """What a mutation refused as a whole by a middleware answers (read-only mode, a role that does
    not allow it): every payload type resolves its fields from a dict too, and each of Dagster's
    payload interfaces resolves the dict to the error type its client reads (schema/dagster_types.py).
    "errors" is LaunchRunPayload's required list, "results" the bulk actions', "run_requests" the
    dry run's."""
    return {"ok": False, "code": code, "message": message, "errors": [], "results": [], "run_requests": []}
