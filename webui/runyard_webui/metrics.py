"""``GET /metrics``: Prometheus metrics in the text exposition format (docs/metrics.md), on unless
``webui.metrics_enabled`` is false.

What the web UI says is read from storage when scraped (:class:`runyard.metrics.StorageCollector`,
cheap reads shared by scrapes within a second): runs by status, queue depth and oldest queued age,
events written, and the daemons' heartbeat ages and leadership as their heartbeats in storage say,
so one scrape target shows whether a daemon leads even when no daemon serves metrics. Launch
latency, step durations and reconciler removals are the daemon's (its ``daemon.metrics_port``).

The route goes through the same checks as every page: the ``Host`` check (a scraper that addresses
the web UI by a name it does not know is told to add it to ``webui.allowed_hosts``; a wildcard bind
already accepts the machine's own names and addresses, which covers scraping a pod by its IP) and,
when ``webui.auth`` is set, authentication. Unlike ``/healthz``, which only says up or down, the
metrics describe the instance's workload: who may not read the runs list may not read them either,
and since they span every code location, a principal limited to some gets 403 (:mod:`.auth`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flask import Flask, Response, request

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client.registry import CollectorRegistry

    from .context import WebContext


def register(app: Flask, web: WebContext) -> None:
    """Add ``GET /metrics`` with a registry of this app's own, made at the first scrape (so a web UI
    that is never scraped never imports ``prometheus_client``)."""
    made: list[CollectorRegistry] = []
    lock = threading.Lock()

    def registry() -> CollectorRegistry:
        with lock:
            if not made:
                from runyard.metrics import StorageCollector, new_registry

                made.append(new_registry())
                # storage looked up at each read: the web UI serves while storage is down
                made[0].register(StorageCollector(lambda: web.storage, daemons=True))
            return made[0]

    @app.get("/metrics")
    def metrics():
        from runyard.metrics import exposition

        body, content_type = exposition(registry(), request.headers.get("Accept"))
        return Response(body, content_type=content_type)
