"""Following a run's events on Postgres: the follow loop is woken by LISTEN/NOTIFY, not by polling.

Needs: PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import threading
import time

from runyard import Instance
from runyard.operations.follow import follow_events
from runyard.storage.records import RunStatus


def test_follow_wakes_by_notification_on_postgres(pg_url, tmp_path):
    instance = Instance.from_yaml(str(tmp_path), f"storage:\n  postgres:\n    url: '{pg_url}'\n")
    try:
        storage = instance.storage
        assert storage.supports_notifications
        storage.poll_interval = 60.0  # a poll would take a minute: only a notification is quick
        run = instance.create_run(job_name="j")
        pages = follow_events(instance, run.run_id, wait_step=30.0)
        for message in ("one", "two"):
            timer = threading.Timer(0.5, instance.report_engine_event, (run.run_id, message))
            timer.start()
            start = time.monotonic()
            page = next(pages)
            timer.join()
            assert [e.message for e in page.events] == [message]
            assert time.monotonic() - start < 5
        threading.Timer(0.5, instance.transition, (run, [RunStatus.NOT_STARTED], RunStatus.CANCELED, "stop")).start()
        start = time.monotonic()
        last = next(pages)
        assert last.done and [str(e.event_type) for e in last.events] == ["RUN_CANCELED"]
        assert time.monotonic() - start < 5
    finally:
        instance.dispose()
