"""Helpers of the automation and times tests (test_automation*.py, test_times_browser.py): a web UI
serving defs_automation.py, ticks written to its real storage, and a browser context in a chosen
time zone that fails the test on any JavaScript error or CSP violation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runyard import Instance
from runyard.storage.records import Tick, TickStatus

DEFS_AUTOMATION = Path(__file__).with_name("defs_automation.py")
LOCATION = "defs_automation"


def start_automation_ui(start_webui, *args: str, marker: Path | None = None, env: dict[str, str] | None = None):
    """A web UI serving defs_automation.py; with ``marker``, the file fails to import while it exists."""
    extra = dict(env or {})
    if marker is not None:
        extra["AUTOMATION_BROKEN_MARKER"] = str(marker)
    return start_webui("-f", str(DEFS_AUTOMATION), *args, env=extra, defs=False)


@contextlib.contextmanager
def storage_of(home: Path) -> Iterator[Any]:
    """The instance's real storage, as the daemon would write it."""
    inst = Instance.open(home=str(home))
    try:
        yield inst.storage
    finally:
        inst.dispose()


def add_ticks(home: Path, name: str, times: list[float], **fields: Any) -> list[Tick]:
    """Store one finished tick of ``name`` per time (SKIPPED unless ``status`` says otherwise)."""
    fields.setdefault("status", TickStatus.SKIPPED)
    made = []
    with storage_of(home) as storage:
        for t in times:
            tick = storage.create_tick(Tick(instigator=name, tick_time=t, **fields))
            assert tick is not None, f"a tick of {name} at {t} exists already"
            made.append(tick)
    return made


@contextlib.contextmanager
def browser_page(browser, timezone_id: str | None = None, cookies: list[dict] | None = None, **options):
    """A page in a new context (``timezone_id``: the zone the browser reports; ``options``: more of
    Playwright's context options, e.g. ``http_credentials``); JavaScript errors and CSP violations fail
    the test, like the ``page`` fixture's."""
    context = browser.new_context(**({"timezone_id": timezone_id} if timezone_id else {}), **options)
    if cookies:
        context.add_cookies(cookies)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.extend(
        [msg.text] if msg.type == "error" and "Content Security Policy" in msg.text else []))
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], f"JavaScript errors (or Content-Security-Policy violations) on the page: {errors}"
