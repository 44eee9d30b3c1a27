"""Serve until signalled: what ``runyard dev``, ``runyard daemon`` and ``runyard webui`` share.

A long-running command starts a few services (code servers, the daemon, a web server...), waits
for SIGINT or SIGTERM, then stops them in reverse order and exits 0. The signal handlers only set a
:class:`~runyard.stopping.StopRequest`, which takes no lock: a signal can land while a lock is held
(waitress's dispatcher held one, and stopping it from inside the handler deadlocked; the main thread
holds a ``threading.Event``'s own lock on every poll), so all stopping happens in the main thread,
after the wait returns.
"""

from __future__ import annotations

import gc
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import RunyardError
from ..stopping import StopRequest

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..workspace.workspace import Workspace

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Service(ABC):
    """Something a long-running command keeps running until it is signalled.

    ``name`` is what messages call it ("web UI"); :attr:`address` is printed after the service
    started (a URL, a port, a short state) or None. :meth:`start` must return once the service is
    ready and must not block for its lifetime (serve on a thread of your own); :meth:`stop` must
    release everything it started (threads, sockets, child processes) within about ``timeout``
    seconds and may be called once only, after a successful :meth:`start`.
    """

    name: str = "service"

    @abstractmethod
    def start(self) -> None:
        """Start serving in the background; raise a :class:`runyard.errors.RunyardError` with a
        message for the user when it cannot (port in use, ...)."""

    @abstractmethod
    def stop(self, timeout: float) -> None:
        """Stop serving and release every resource, waiting at most about ``timeout`` seconds."""

    @property
    def address(self) -> str | None:
        """Where to reach the service, printed once it started; None prints nothing."""
        return None

    @property
    def running(self) -> bool:
        """False once the service stopped on its own, which stops the whole command with an error.
        The default trusts the service to keep running."""
        return True


@dataclass(frozen=True, kw_only=True)
class DevContext:
    """What ``runyard_dev_services`` gets: the instance ``runyard dev`` opened, its workspace
    (code servers already started; None when there is none) and every option of the command by
    parameter name (``python_files``, ``workspace_file`` and each plugin's own)."""

    instance: Instance
    workspace: Workspace | None
    options: Mapping[str, Any] = field(default_factory=dict)


class CallbackService(Service):
    """A service from two callables, for things that are not classes of their own (a workspace's
    code servers, a daemon)."""

    def __init__(self, name: str, start: Callable[[], Any], stop: Callable[[float], Any], *,
                 address: Callable[[], str | None] | None = None,
                 running: Callable[[], bool] | None = None):
        self.name = name
        self._start, self._stop = start, stop
        self._address, self._running = address, running

    def start(self) -> None:
        self._start()

    def stop(self, timeout: float) -> None:
        self._stop(timeout)

    @property
    def address(self) -> str | None:
        return self._address() if self._address is not None else None

    @property
    def running(self) -> bool:
        return self._running() if self._running is not None else True


class ServiceRunner:
    """Starts services, waits for SIGINT/SIGTERM, stops them in reverse order.

    Use as a context manager around the whole command, so a signal that arrives while services are
    still starting (code servers take seconds) is remembered rather than raising
    ``KeyboardInterrupt`` in the middle of a start::

        with ServiceRunner() as runner:
            runner.start(CallbackService("code servers", workspace.start, lambda t: workspace.shutdown()))
            runner.start(web_server)
            runner.wait()

    Leaving the block stops every started service (newest first), runs the :meth:`callback`
    functions in the same reverse order, and restores the previous signal handlers, whether the
    block ended normally or with an error. Must be entered in the main thread (signal handlers can
    only be set there).

    From entering the block until :meth:`wait` (or the block's end), Python's cyclic garbage
    collector is paused: starting a service imports its libraries and builds its schemas, hundreds
    of thousands of objects of which almost none become garbage, and the collector's passes over
    them were ~8 % of the web UI's start-up. Objects freed by reference counting are freed as ever.
    """

    def __init__(self, *, stop_timeout: float = 5.0, poll_interval: float = 0.5):
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self._stop = StopRequest()
        self._cleanups: list[tuple[str, Callable[[], Any]]] = []
        self._old_handlers: dict[int, Any] = {}
        self._gc_paused = False
        self.services: list[Service] = []

    # ---- the block -------------------------------------------------------------------------------
    def __enter__(self) -> ServiceRunner:
        for sig in STOP_SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        self._gc_paused = gc.isenabled()
        gc.disable()  # until the services are started: see the class docstring
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._resume_gc()
        try:
            self.stop_all()
        finally:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
            self._old_handlers.clear()
            self._stop.close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop.set()  # nothing else, and no lock: see the module docstring

    # ---- starting and stopping -------------------------------------------------------------------
    def start(self, service: Service) -> Service:
        """Start ``service``; it is stopped when the block ends (also when a later start fails)."""
        service.start()
        self._cleanups.append((service.name, lambda: service.stop(self.stop_timeout)))
        self.services.append(service)
        return service

    def callback(self, fn: Callable[[], Any], name: str = "cleanup") -> None:
        """Run ``fn`` when the block ends, in reverse order with the services' stops (e.g. dispose
        the instance after the services that used it stopped)."""
        self._cleanups.append((name, fn))

    def request_stop(self) -> None:
        """What a signal does: make :meth:`wait` return (also usable from another thread)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _resume_gc(self) -> None:
        if self._gc_paused:
            self._gc_paused = False
            gc.enable()

    def wait(self) -> int:
        """Block until SIGINT/SIGTERM (or :meth:`request_stop`); return the exit code, 0. A
        service that stopped on its own is an error naming it (the block then stops the others)."""
        self._resume_gc()  # started: from here on the services make and drop objects as they run
        while not self._stop.wait(self.poll_interval):
            for service in self.services:
                if not service.running:
                    raise RunyardError(f"the {service.name} stopped unexpectedly")
        return 0

    def stop_all(self) -> None:
        """Stop every started service and run every callback, newest first. One that fails does not
        keep the others from stopping; the first failure is raised after all ran."""
        first: BaseException | None = None
        while self._cleanups:
            _name, fn = self._cleanups.pop()
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - keep stopping the rest, raise afterwards
                first = first or exc
        self.services.clear()
        if first is not None:
            raise first


def release_instance(instance: Instance) -> None:
    """What a long-running command does last, after its services stopped: stop the run launcher's
    helpers (the ``process`` launcher's zygote; runs in progress keep their workers) and close the
    storage pool."""
    instance.run_launcher.dispose()
    instance.dispose()
