"""Serving the app with waitress (a production WSGI server in pure Python: a fixed pool of request
threads, so the storage pool can be sized against it)."""

from __future__ import annotations

import errno
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from runyard.errors import RunyardError
from runyard.operations.serve import Service

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

    from .settings import WebuiSettings

log = logging.getLogger("runyard.webui")


class WebServer(Service):
    """One listening socket and ``threads`` request threads. ``port`` 0 picks a free port; ``url``
    tells which. :meth:`serve` blocks; :meth:`start` serves on a background thread. As a
    :class:`runyard.operations.serve.Service` it is what ``runyard webui`` and ``runyard dev`` run
    until they are signalled (the socket is bound here, so a port in use fails before anything starts)."""

    name = "web UI"

    def __init__(self, app: Flask, host: str, port: int, threads: int, **limits: Any):
        """``limits``: waitress's connection options (``max_request_body_size``, ``connection_limit``,
        ``channel_timeout``, ``cleanup_interval``); :func:`build_web_server` takes them from settings."""
        from waitress import create_server

        try:
            self._server = create_server(app, host=host, port=port, threads=threads, ident="runyard",
                                         clear_untrusted_proxy_headers=True, **limits)
        except OSError as exc:
            reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise RunyardError(f"the web UI cannot listen on {host}:{port}: {reason} "
                               "(choose another with --port or webui.port in the instance file)") from exc
        self._server.channel_class = _Channel
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        """The address really bound (``http://0.0.0.0:3000`` for every interface)."""
        host = self.host or "0.0.0.0"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def address(self) -> str:
        return self.url

    def serve(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):  # the map was closed under the loop by stop()
            if not self._stopped.is_set():
                raise

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> WebServer:  # returns self, for start_webui(...) callers
        self._thread = threading.Thread(target=self.serve, name="runyard-webui", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish (up to ``timeout``), close every socket."""
        from waitress import wasyncore

        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.task_dispatcher.shutdown(timeout=timeout)
        wasyncore.close_all(self._server._map)
        if self._thread is not None:
            self._thread.join(timeout)


def build_web_server(instance, workspace, settings: WebuiSettings | None = None, *,
                     insecure_no_auth: bool = False) -> WebServer:
    """The app over ``instance`` and ``workspace`` on a bound socket, not serving yet (what
    ``runyard dev`` gets from this plugin's ``runyard_dev_services``). A bind beyond loopback
    without ``webui.auth`` is refused unless ``insecure_no_auth``."""
    from .app import create_app
    from .security import check_public_bind
    from .settings import load_webui_settings

    settings = settings or load_webui_settings(instance)
    check_public_bind(settings, insecure_no_auth)
    return WebServer(create_app(instance, workspace, settings), settings.host, settings.port, settings.threads,
                     max_request_body_size=settings.max_body_bytes, connection_limit=settings.connection_limit,
                     channel_timeout=settings.channel_timeout_seconds,
                     cleanup_interval=settings.cleanup_interval_seconds)


def start_webui(instance, workspace, settings: WebuiSettings | None = None, *,
                insecure_no_auth: bool = False) -> WebServer:
    """:func:`build_web_server`, served on a background thread; stop it with ``.stop()``."""
    return build_web_server(instance, workspace, settings, insecure_no_auth=insecure_no_auth).start()


class _JsonErrorTask(ErrorTask):
    """waitress's own refusals (a body over ``max_body_bytes``, a malformed request) in GraphQL's
    error format for ``/graphql``, whose clients parse JSON; plain text elsewhere."""

    def execute(self) -> None:
        if not (getattr(self.request, "path", None) or "").startswith("/graphql"):
            return super().execute()
        error = self.request.error
        message = {413: "the request body is larger than webui.max_body_bytes"}.get(error.code, error.body)
        body = json.dumps({"errors": [{"message": f"{error.reason}: {message}"}]}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        return None


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask
