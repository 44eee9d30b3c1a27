"""Follow a run's events as they are stored: what ``runyard run logs -f``, ``job launch --wait`` and
the web UI's long poll (GraphQL ``runEvents(waitSeconds:)``, for API clients) do. One follower per
call; the web UI's pages are fed by its live hub instead, which reads every followed run at once
(``runyard_webui.live``, :meth:`RunStorage.get_events_for_runs
<runyard.storage.base.RunStorage.get_events_for_runs>`).

One loop, :func:`follow_events`. Between reads it blocks in
:meth:`RunStorage.wait_for_events <runyard.storage.base.RunStorage.wait_for_events>`, which a
storage with notifications (``supports_notifications``: Postgres ``LISTEN/NOTIFY``) wakes as soon
as an event is written, and which polls every ``poll_interval`` otherwise. The loop itself only
bounds each wait (``wait_step``), so a finished run, a deadline and the worker health check are
noticed even when no event comes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import Event, RunRecord


@dataclass(frozen=True, kw_only=True)
class EventPage:
    """Events read in one go, oldest first. ``cursor``: the id of the last event seen (pass it back
    as ``after_id``); ``run`` as read with or after these events; ``done``: the run has finished and
    every event it had then was delivered, or the deadline passed."""

    events: list[Event]
    cursor: int | None
    run: RunRecord
    done: bool = False


def follow_events(instance: Instance, run_id: str, *, after_id: int | None = None, limit: int = 1000,
                  timeout: float | None = None, wait_step: float = 0.5,
                  health_every: float | None = None) -> Iterator[EventPage]:
    """Yield a page for every batch of new events of ``run_id`` after ``after_id`` until the run has
    finished and all its events were yielded (that last page has ``done``; it may be empty), or
    until ``timeout`` seconds passed (an empty ``done`` page). With ``health_every``, the run
    launcher's health check runs that often while waiting, so a dead worker ends the run instead
    of the wait. Raises :class:`~runyard.errors.RunNotFoundError` for an unknown run."""
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    cursor = after_id
    last_health = time.monotonic()
    while True:
        # The status first: a run seen finished here has all its events stored already (the
        # finishing event is written with the status), so the read below drains them.
        run = instance.get_run(run_id)
        events = instance.storage.get_events(run_id, after_id=cursor, limit=limit)
        if events:
            cursor = events[-1].id
        finished = run.status.is_finished and len(events) < limit
        if finished:
            yield EventPage(events=events, cursor=cursor, run=run, done=True)
            return
        if events:  # the run as it is now, not as it was before these events
            yield EventPage(events=events, cursor=cursor, run=instance.get_run(run_id))
            continue
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            yield EventPage(events=[], cursor=cursor, run=run, done=True)
            return
        if health_every is not None and time.monotonic() - last_health >= health_every:
            last_health = time.monotonic()
            instance.check_run_health(run_id)
        instance.storage.wait_for_events(run_id, cursor, timeout=wait_step if left is None else min(wait_step, left))


def next_events(instance: Instance, run_id: str, *, after_id: int | None = None, limit: int = 1000,
                wait_seconds: float = 0.0) -> EventPage:
    """The events after ``after_id``; when there are none and the run has not finished, wait up to
    ``wait_seconds`` for some (a long poll). Always returns a page, empty on timeout."""
    return next(follow_events(instance, run_id, after_id=after_id, limit=limit, timeout=wait_seconds,
                              wait_step=1.0))
