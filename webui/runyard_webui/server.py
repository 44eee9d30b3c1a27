"""Serving the app with waitress (a production WSGI server in pure Python: a fixed pool of request
threads, so the storage pool can be sized against it).

Live pages (server-sent events, :mod:`.live`) do not keep a request thread: the view answers with
the stream's headers, then :class:`_Task` and :class:`_Channel` hand the open connection to the
live hub, and every later byte is written by waitress's event-loop thread (the one thread that
already reads and writes every socket), through its trigger. The request thread is free at once,
so hundreds of open live pages leave ``/healthz``, the pages and GraphQL their ``threads``."""

from __future__ import annotations

import errno
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from waitress.buffers import OverflowableBuffer
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, WSGITask

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
            # poll(), not select(): hundreds of open live pages pass select()'s 1024 descriptors
            self._server = create_server(app, host=host, port=port, threads=threads, ident="runyard",
                                         clear_untrusted_proxy_headers=True, asyncore_use_poll=True, **limits)
        except OSError as exc:
            reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise RunyardError(f"the web UI cannot listen on {host}:{port}: {reason} "
                               "(choose another with --port or webui.port in the instance file)") from exc
        self._server.channel_class = _Channel
        self._app = app
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
        from .live import EXTENSION

        hub = getattr(self._app, "extensions", {}).get(EXTENSION)
        if hub is not None:
            hub.stop(timeout)
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


class _Task(WSGITask):
    """A request that may turn into a live stream: the environ says the server can take streams
    over (:data:`~.live.DETACH_KEY`); when the app's answer is a live stream, :meth:`finish` writes
    its headers and leaves the connection open for the hub instead of ending the response."""

    def get_environment(self) -> dict[str, Any]:
        from .live import DETACH_KEY

        environ = super().get_environment()
        environ[DETACH_KEY] = True
        return environ

    def finish(self) -> None:
        from .live import STREAM_KEY

        opened = (self.environ or {}).get(STREAM_KEY)
        if opened is None or not self.status.startswith("200") or self.request.command == "HEAD":
            return super().finish()
        self.channel.live = True  # from here on, bytes from the client are not requests
        if not self.wrote_header:
            self.write(b"")  # the headers; the body goes chunked (HTTP/1.1) or until close (1.0)
        self.close_on_finish = False
        self.channel.live_pending = (*opened, self.chunked_response)
        return None


class _Channel(HTTPChannel):
    task_class = _Task
    error_task_class = _JsonErrorTask
    live = False
    live_pending: tuple[Any, Any, bool] | None = None
    live_sink: _ChannelSink | None = None

    def service(self) -> None:
        super().service()
        pending, self.live_pending = self.live_pending, None
        if pending is not None:  # the request is over: the hub writes from now on
            hub, stream, chunked = pending
            self.live_sink = _ChannelSink(self, chunked, hub)
            if not self.connected:
                self.live_sink.gone = True
            hub.attach(stream, self.live_sink)

    def received(self, data: bytes) -> bool:
        if self.live:
            return True  # a live stream's client has nothing to say; it is not read as a request
        return super().received(data)

    def handle_close(self) -> None:
        super().handle_close()
        sink = self.live_sink
        if sink is not None and not sink.gone:
            sink.gone = True
            sink.hub.wake()


class _ChannelSink:
    """A live stream's connection, as the hub sees it (:class:`~.live.Sink`). The hub thread queues
    bytes; a thunk run by waitress's loop thread (``trigger.pull_trigger``) moves them into the
    channel's output buffers and sends what the socket takes, so they are never touched by two
    threads at once (the loop flushes a channel without a running request unlocked)."""

    def __init__(self, channel: _Channel, chunked: bool, hub: Any):
        self.channel, self.chunked, self.hub = channel, chunked, hub
        self.gone = False
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._queued = 0
        self._ending = False
        self._scheduled = False

    def send(self, data: bytes) -> None:
        if self.chunked:
            data = b"%X\r\n%s\r\n" % (len(data), data)
        self._queue(data)

    def end(self) -> None:
        self._queue(b"0\r\n\r\n" if self.chunked else b"", ending=True)

    @property
    def backlog(self) -> int:
        return self._queued + self.channel.total_outbufs_len

    def _queue(self, data: bytes, ending: bool = False) -> None:
        with self._lock:
            if self._ending:
                return
            self._pending.append(data)
            self._queued += len(data)
            self._ending = ending
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            self.channel.server.trigger.pull_trigger(self._write)

    def _write(self) -> None:
        """In waitress's loop thread."""
        with self._lock:
            data, self._pending = b"".join(self._pending), []
            self._queued = 0
            self._scheduled = False
            ending = self._ending
        channel = self.channel
        if not channel.connected:
            self.gone = True
            return
        if data:
            with channel.outbuf_lock:
                if channel.current_outbuf_count >= channel.adj.outbuf_high_watermark:
                    channel.outbufs.append(OverflowableBuffer(channel.adj.outbuf_overflow))
                    channel.current_outbuf_count = 0
                channel.outbufs[-1].append(data)
                channel.current_outbuf_count += len(data)
                channel.total_outbufs_len += len(data)
            channel._flush_exception(channel._flush_some)  # sends now what the socket takes
        if ending:
            channel.close_when_flushed = True
        if channel.will_close or (ending and not channel.total_outbufs_len):
            channel.handle_close()
