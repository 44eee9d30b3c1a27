"""Prometheus metrics read from storage: what every process that serves ``/metrics`` says about the
instance as a whole (docs/metrics.md). The web UI serves them at ``/metrics``; the daemon on its own
port (``daemon.metrics_port``) together with what only it sees (:mod:`runyard.daemon.metrics`).

Each process builds its own registry (:func:`new_registry`), never ``prometheus_client``'s global
one: two services in one process (``runyard dev``) or in one test never see each other's series,
and nothing a library registers globally leaks into the answer.

:class:`StorageCollector` reads storage when scraped, with reads that stay cheap whatever the
number of runs: one grouped count of runs by status; the oldest queued run's ``created_at`` (the
``status, created_at`` index); the highest event id (the primary key); and, on the web UI, the
daemons' heartbeat rows (one per daemon and loop). One scrape reads them once; scrapes that come
within :data:`MIN_READ_INTERVAL` of each other share one read, so any number of scrapers cost
storage at most one read per interval. When storage does not answer, ``runyard_storage_up`` is 0
and the storage-derived series are left out (a scrape never fails for it).

Events are written by run workers and step processes, which no scraper reaches, so "events
written" is storage's highest event id, a gauge: ids are handed out in order, so its increase over
a window is the number of events written then, whichever process wrote them.

``prometheus_client`` is imported here and by the modules that use this one, never by ``import
runyard``: a process that serves no metrics does not pay for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .storage.records import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client.registry import CollectorRegistry

    from .storage.base import RunStorage

log = logging.getLogger("runyard.metrics")

#: scrapes within this many seconds of the last storage read are answered from it
MIN_READ_INTERVAL = 1.0
#: what the daemons' heartbeats say, by state (runyard.daemon.status.STATES)
DAEMON_STATES = ("leader", "standby", "stale", "dead", "stopped")
#: daemons in these states get per-daemon series; the others only count in ``runyard_daemons``, so
#: the heartbeat rows of every daemon that ever ran (storage keeps them) never become series
LIVE_DAEMON_STATES = ("leader", "standby", "stale")


def new_registry() -> CollectorRegistry:
    """A registry of this process's own, with the process collector (CPU, memory, open files)."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The registry in the text format a scraper asked for (``Accept``): (body, content type)."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


@dataclass(frozen=True, kw_only=True)
class StorageFacts:
    """One read of storage for the metrics. ``daemons``: ``daemon.status.daemon_status``'s list (None
    when not asked for)."""

    runs_by_status: dict[RunStatus, int]
    #: whether storage answered the two reads below (:meth:`RunStorage.get_queue_and_event_marks`)
    indexed: bool
    oldest_queued_at: float | None
    last_event_id: int | None
    daemons: list[dict[str, Any]] | None
    read_at: float = field(default_factory=time.time)


def last_event_id(storage: RunStorage) -> int | None:
    """The highest event id (0 without events); None for a storage that cannot answer it cheaply."""
    marks = storage.get_queue_and_event_marks()
    return None if marks is None else (marks[1] or 0)


def read_storage_facts(storage: RunStorage, *, daemons: bool) -> StorageFacts:
    now = time.time()
    by_status = storage.count_runs_by_status()
    indexed = storage.get_queue_and_event_marks()
    oldest, last_event = indexed or (None, None)
    found = None
    if daemons:
        from .daemon.status import daemon_status

        found = daemon_status(storage, now)["daemons"]
    return StorageFacts(runs_by_status=by_status, indexed=indexed is not None, oldest_queued_at=oldest,
                        last_event_id=last_event, daemons=found, read_at=now)


class StorageCollector:
    """The instance-wide series, read from ``storage()`` when scraped (see the module docstring).
    ``daemons``: also the daemons' heartbeat ages and leadership, as their heartbeats in storage say
    (the web UI; a daemon reports its own from memory instead)."""

    def __init__(self, storage: Callable[[], RunStorage], *, daemons: bool):
        self.storage = storage  # looked up at each read: the web UI opens its storage on first use
        self.daemons = daemons
        self._lock = threading.Lock()
        self._facts: StorageFacts | None = None
        self._read_monotonic = 0.0
        self._failing: str | None = None

    def describe(self) -> list[Any]:
        return []  # registering must not read storage; names are not checked against other collectors

    def facts(self) -> StorageFacts | None:
        """The latest read, made now unless one was made within :data:`MIN_READ_INTERVAL`; None when
        storage does not answer."""
        with self._lock:  # concurrent scrapes wait for one read rather than each making their own
            if self._facts is not None and time.monotonic() - self._read_monotonic < MIN_READ_INTERVAL:
                return self._facts
            try:
                facts = read_storage_facts(self.storage(), daemons=self.daemons)
            except Exception as exc:  # noqa: BLE001 - storage down: runyard_storage_up says so
                message = f"{type(exc).__name__}: {exc}"
                if message != self._failing:  # said once, not on every scrape
                    log.warning("metrics: reading storage failed: %s", message)
                    self._failing = message
                self._facts = None
                return None
            self._failing = None
            self._facts, self._read_monotonic = facts, time.monotonic()
            return facts

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        facts = self.facts()
        up = GaugeMetricFamily("runyard_storage_up", "1 when this scrape could read storage, else 0 (and the "
                               "series read from storage are left out)")
        up.add_metric([], 1 if facts is not None else 0)
        yield up
        if facts is None:
            return
        runs = GaugeMetricFamily("runyard_runs", "Runs in storage, by status", labels=["status"])
        for status in RunStatus:  # every status, zeros included: a series never vanishes when it empties
            runs.add_metric([status.value], facts.runs_by_status.get(status, 0))
        yield runs
        depth = GaugeMetricFamily("runyard_queue_depth", "Runs waiting in the run queue (status QUEUED)")
        depth.add_metric([], facts.runs_by_status.get(RunStatus.QUEUED, 0))
        yield depth
        if facts.indexed:
            age = GaugeMetricFamily("runyard_queue_oldest_age_seconds", "Seconds since the oldest queued run "
                                    "was created; 0 when the queue is empty")
            age.add_metric([], 0.0 if facts.oldest_queued_at is None
                           else max(0.0, facts.read_at - facts.oldest_queued_at))
            yield age
            events = GaugeMetricFamily("runyard_events_written", "Events written to storage by every process "
                                       "(run workers included): the highest event id, so its increase over a "
                                       "window is the events written then")
            events.add_metric([], facts.last_event_id or 0)
            yield events
        if facts.daemons is not None:
            yield from daemon_families(facts.daemons)


def daemon_families(daemons: list[dict[str, Any]]) -> Any:
    """``runyard_daemons`` by state, and heartbeat ages and leadership of the live daemons, from
    ``daemon_status``'s list."""
    from prometheus_client.core import GaugeMetricFamily

    states = GaugeMetricFamily("runyard_daemons", "Daemons by state, as their heartbeats in storage say "
                               "(leader, standby, stale, dead, stopped)", labels=["state"])
    for state in DAEMON_STATES:
        states.add_metric([state], sum(1 for d in daemons if d["state"] == state))
    yield states
    ages = GaugeMetricFamily("runyard_daemon_heartbeat_age_seconds", "Seconds since a daemon loop last "
                             "wrote its heartbeat", labels=["daemon_id", "loop"])
    leader = GaugeMetricFamily("runyard_daemon_is_leader", "1 while the daemon holds the leader lease, else 0",
                               labels=["daemon_id"])
    for d in daemons:
        if d["state"] not in LIVE_DAEMON_STATES:
            continue
        for loop, info in sorted(d["loops"].items()):
            ages.add_metric([d["daemon_id"], loop], info["age_seconds"])
        leader.add_metric([d["daemon_id"]], 1 if d["leader"] else 0)
    yield ages
    yield leader
