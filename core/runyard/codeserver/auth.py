"""Who may ask a code server to run user code.

A code server imports and runs the user's code on request (reload, schedule and sensor evaluation),
so every request is checked, in this order, before it is routed:

1. **No browsers.** A request with an ``Origin`` header, or a ``Sec-Fetch-Site`` other than
   ``none`` (a person typing the URL), comes from a web page: 403. Code server clients are programs
   (the daemon, the web UI's server side, the CLI) and never send them, so any web page that tries
   to reach a code server on ``localhost`` or an internal address is refused.
2. **The shared token.** When the server has a token, every endpoint but the liveness probe
   ``GET /healthz`` needs ``Authorization: Bearer <token>`` (compared in constant time): 401 without
   it. A workspace generates one for each local code server it starts and hands it over in the
   child's environment (``RUNYARD_CODE_SERVER_TOKEN``); a remote server is given one with
   ``--token-env NAME`` or ``RUNYARD_CODE_SERVER_TOKEN``. Tokens never travel on a command line.
3. **JSON only.** A POST must say ``Content-Type: application/json`` (415 otherwise): a web page can
   send ``text/plain`` or a form across origins without a CORS preflight, never JSON.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping

from .transport import HttpError

TOKEN_ENV = "RUNYARD_CODE_SERVER_TOKEN"

_TOKEN_HINT = (f"send `Authorization: Bearer <token>` with the server's token (its --token-env variable or "
               f"{TOKEN_ENV}; a workspace code_server entry gives it as `token: {{env: NAME}}`)")


def generate_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only reaches this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def take_token(env_name: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The server's token: from the variable ``env_name`` (``--token-env``; an error if it is unset
    or empty), else from :data:`TOKEN_ENV`, else None. The variable is removed from the environment,
    so the user's code and what it starts never see it."""
    environ = os.environ if environ is None else environ
    if env_name:
        token = environ.pop(env_name, None)
        if not token:
            raise ValueError(f"--token-env names the environment variable {env_name}, which is "
                             f"{'empty' if token == '' else 'not set'}")
        environ.pop(TOKEN_ENV, None)
        return token
    return environ.pop(TOKEN_ENV, None) or None


class RequestGuard:
    """The checks above for one server; ``token`` None means no token is required."""

    def __init__(self, token: str | None):
        self._token = token.encode("utf-8") if token else None

    @property
    def requires_token(self) -> bool:
        return self._token is not None

    def check(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """Raise :class:`HttpError` (403, 401 or 415) unless the request may go on. ``headers`` has
        lower-case names."""
        origin = headers.get("origin")
        if origin is not None:
            raise HttpError(403, f"cross-origin request refused (Origin: {origin[:100]}): a code server "
                                 "answers programs, never web pages", "forbidden")
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.strip().lower() != "none":
            raise HttpError(403, f"browser request refused (Sec-Fetch-Site: {fetch_site[:40]}): a code "
                                 "server answers programs, never web pages", "forbidden")
        if self._token is not None and not (method == "GET" and path == "/healthz"):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
                reason = "no token" if "authorization" not in headers else "a wrong token"
                raise HttpError(401, f"{method} {path}: {reason}; {_TOKEN_HINT}", "unauthorized",
                                headers=[("WWW-Authenticate", "Bearer")])
        if method == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise HttpError(415, f"{method} {path} takes Content-Type: application/json, not "
                                     f"{content_type or 'none'}", "unsupported_media_type")
