"""The daemon's ``/metrics``, on its own port when ``daemon.metrics_port`` is set (off by default;
docs/metrics.md).

What only a daemon sees, kept in this process's own registry:

* launch latency (``runyard_launch_latency_seconds``, by launcher): from a queue claim returning a
  run (QUEUED -> STARTING) to the launcher's ``launch_run`` returning — measured in
  :mod:`.queue`, where the claimed run is launched; failed launches are counted by reason instead;
* step durations (``runyard_step_duration_seconds``, by job and step status), observed by
  :class:`StepDurations` from storage as runs finish (see there for why and how);
* workloads the launcher's reconciler removed (``runyard_reconciler_removed_total``), as the
  launcher reports them through :meth:`ReconcileContext.record_removal`;
* this daemon's heartbeat age per loop and whether it leads, from memory.

Next to them, the instance-wide series read from storage (:class:`runyard.metrics.StorageCollector`):
runs by status, queue depth and age, events written.

The port is served by waitress (bound first, so a port in use fails ``runyard daemon`` at start with
an error naming ``daemon.metrics_port``) on a thread of its own; :meth:`DaemonMetrics.stop` closes
the socket and joins the thread, so nothing listens once the daemon stopped.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")

#: upper bounds (seconds) of the launch latency buckets: a fork takes milliseconds, a container
#: create and start a fraction of a second, a Kubernetes Job a few seconds
LAUNCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: upper bounds (seconds) of the step duration buckets: from sub-second ops to six-hour ones
STEP_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)
#: how far back (in passes of that many seconds) :class:`StepDurations` reads final events again
LOOKBACK_SECONDS = 30.0
#: finished runs read per storage call
PAGE_SIZE = 200
#: what the metrics port serves
PATHS = ("/metrics", "/metrics/")


class StepDurations:
    """Observes the duration of every step of every run that finishes while this daemon leads.

    Steps run in run workers and step processes that no scraper reaches, so the daemon reads what
    they wrote: each pass (every ``daemon.heartbeat_interval_seconds``) finds the runs whose final
    event (``RUN_SUCCESS``, ``RUN_FAILURE``, ``RUN_CANCELED``) was written since the last passes, by
    event id (:meth:`RunStorage.get_finished_runs_between`: a range of the primary key, so a pass costs the
    events written meanwhile, never the events or runs stored), and observes each of their steps'
    durations from :meth:`RunStorage.get_step_stats` (first start to last end, retries included),
    once per run. Each pass looks again at the events of the last :data:`LOOKBACK_SECONDS`' passes
    (runs already observed are skipped), so a final event whose transaction got its id before a
    newer one but committed after it is still seen.

    Only the leader observes, so the daemons' histograms add up to each step once. A standby (and a
    daemon starting) keeps its window at the newest event id, so when it takes over it starts from
    there, not counting again what the old leader counted. A storage that cannot answer the range
    cheaply (``get_finished_runs_between`` returns None) leaves the histogram empty (docs/metrics.md).
    """

    def __init__(self, histogram: Any, interval: float):
        self.histogram = histogram
        #: the newest event id at the end of each of the last passes: a pass reads from the oldest
        self._marks: deque[int] = deque(maxlen=max(2, math.ceil(LOOKBACK_SECONDS / interval) + 1))
        self._seen: dict[str, int] = {}  # run id -> id of its final event, while inside the window

    def follow(self, daemon: Daemon) -> int:
        """One pass; returns how many steps were observed."""
        from ..metrics import last_event_id

        storage = daemon.storage
        newest = last_event_id(storage)
        if newest is None:
            return 0
        if not daemon.working or not self._marks:
            self._marks.clear()
            self._marks.append(newest)
            self._seen.clear()
            return 0
        observed, after = 0, self._marks[0]
        while not daemon.stopping:
            rows = storage.get_finished_runs_between(after, newest, PAGE_SIZE) or []
            for event_id, run_id, job_name in rows:
                if run_id in self._seen:
                    continue
                self._seen[run_id] = event_id
                for step in storage.get_step_stats(run_id):
                    if step.duration is not None:
                        self.histogram.labels(job_name, step.status.value).observe(max(0.0, step.duration))
                        observed += 1
            if len(rows) < PAGE_SIZE:
                break
            after = rows[-1][0]
        self._marks.append(newest)
        floor = self._marks[0]
        self._seen = {run_id: i for run_id, i in self._seen.items() if i > floor}
        return observed


class DaemonCollector:
    """This daemon's own state, read from memory when scraped: leadership and heartbeat ages."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        daemon = self.daemon
        leader = GaugeMetricFamily("runyard_daemon_is_leader", "1 while the daemon holds the leader lease, else 0",
                                   labels=["daemon_id"])
        leader.add_metric([daemon.daemon_id], 1 if daemon.lease.is_leader else 0)
        yield leader
        ages = GaugeMetricFamily("runyard_daemon_heartbeat_age_seconds", "Seconds since a daemon loop last "
                                 "wrote its heartbeat", labels=["daemon_id", "loop"])
        for loop, age in sorted(daemon.heartbeat_ages().items()):
            ages.add_metric([daemon.daemon_id, loop], age)
        yield ages


class DaemonMetrics:
    """The daemon's registry, its instruments and the HTTP server of ``daemon.metrics_port``."""

    def __init__(self, daemon: Daemon):
        from prometheus_client import Counter, Histogram

        from ..metrics import StorageCollector, new_registry

        self.daemon = daemon
        self.host = daemon.settings.metrics_host
        self.port = daemon.settings.metrics_port
        self.registry = new_registry()
        self.registry.register(StorageCollector(lambda: daemon.storage, daemons=False))
        self.registry.register(DaemonCollector(daemon))
        self.launch_latency = Histogram(
            "runyard_launch_latency_seconds", "Seconds from a queue claim returning a run to the run launcher "
            "having launched it", ["launcher"], buckets=LAUNCH_BUCKETS, registry=self.registry)
        self.launch_failures = Counter(
            "runyard_launch_failures", "Claimed runs whose launch failed (the run is then FAILURE), by reason",
            ["launcher", "reason"], registry=self.registry)
        self.step_duration = Histogram(
            "runyard_step_duration_seconds", "Seconds from a step's first start to its end, observed when its "
            "run finishes", ["job_name", "status"], buckets=STEP_BUCKETS, registry=self.registry)
        self.reconciler_removed = Counter(
            "runyard_reconciler_removed", "Workloads (containers, Jobs) the run launcher's reconciler removed",
            ["launcher", "kind"], registry=self.registry)
        self.launch_latency.labels(daemon.instance.run_launcher.name)  # at 0 from the start, not from the first launch
        self.steps = StepDurations(self.step_duration, daemon.settings.heartbeat_interval_seconds)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ---- what the loops report ------------------------------------------------------------------
    def launched(self, launcher: str, seconds: float) -> None:
        self.launch_latency.labels(launcher).observe(max(0.0, seconds))

    def launch_failed(self, launcher: str, reason: str) -> None:
        self.launch_failures.labels(launcher, reason).inc()

    def reconciled(self, launcher: str, removals: dict[str, int]) -> None:
        for kind, count in removals.items():
            if count > 0:
                self.reconciler_removed.labels(launcher, kind).inc(count)

    def follow_steps(self) -> None:
        """The step durations pass (an APScheduler job of the daemon); errors are logged, never fatal."""
        try:
            self.steps.follow(self.daemon)
        except Exception as exc:  # noqa: BLE001 - storage down: the next pass looks again from the cursor
            log.warning("metrics: following finished runs failed: %s: %s", type(exc).__name__, exc)

    # ---- the port -------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Listen on ``daemon.metrics_host:daemon.metrics_port`` and serve on a thread. A port that
        cannot be bound raises :class:`ConfigError` naming the key."""
        from waitress.server import create_server

        sock = self._bind()
        self.port = sock.getsockname()[1]
        self._server = create_server(self._app, map={}, sockets=[sock], threads=2, ident="runyard-daemon",
                                     connection_limit=50, channel_timeout=30, cleanup_interval=10,
                                     expose_tracebacks=False, log_socket_errors=False)
        self._thread = threading.Thread(target=self._serve, name="runyard-daemon-metrics", daemon=True)
        self._thread.start()
        log.info("daemon metrics on %s", self.address)
        self.follow_steps()  # before the lease is taken: the window starts at the newest event now

    def _bind(self) -> socket.socket:
        from ..errors import ConfigError

        host = self.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            doc = self.daemon.instance.doc
            # an address this host does not have (or a name that does not resolve) is the host's fault
            key = ("metrics_host" if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
                   else "metrics_port")
            why = ("the port is in use (another process listens on it): pick a free one"
                   if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
            raise ConfigError(f"cannot serve the daemon's metrics on {host}:{self.port}: {why}",
                              source=doc.source, path=f"daemon.{key}", line=doc.line_of(("daemon", key))) from None
        return sock

    def _serve(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError) as exc:  # the socket map closed under the loop by stop()
            if self._server is not None and getattr(exc, "errno", None) != errno.EBADF:
                log.exception("the daemon's metrics server failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, let a scrape in progress finish, join the thread."""
        from waitress import wasyncore

        server, self._server = self._server, None
        if server is None:
            return
        server.task_dispatcher.shutdown(timeout=timeout)
        # closed by the serving thread itself, woken through the server's trigger: its loop ends at
        # once rather than at its next poll timeout
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        wasyncore.close_all(server._map)  # a no-op unless the thread did not get to it

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        from ..metrics import exposition

        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path not in PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the daemon serves only GET /metrics here\n"]
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"method not allowed: GET /metrics\n"]
        body, content_type = exposition(self.registry, environ.get("HTTP_ACCEPT"))
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]
