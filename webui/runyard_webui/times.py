"""How the web UI shows a time: in one zone the user picks (the browser's by default), with that
zone's UTC offset written beside it, the same on the server's first render and in what the page's
script draws later.

The zone travels in the ``runyard_tz`` cookie, set by ``static/app.js``: ``auto:<zone>`` while the
user follows the browser's zone (the script updates it when the browser's zone changes), ``<zone>``
once they picked one in the selector. Without the cookie (a browser's first visit) pages render in
UTC, labelled ``+00:00``; the script then stores the browser's zone and redraws every ``<time>``
element once. The formats here and ``runyard.when`` / ``runyard.clock`` in app.js produce identical
strings (tests/webui/test_times_browser.py compares them for several zones):

* ``when``: ``2026-11-30 08:33:01 +01:00`` — date, time to the second, the zone's offset then;
* ``clock``: ``08:33:01.123`` — an event log's time of day, its date and zone in the header.

Both truncate to the millisecond first (as a JavaScript ``Date`` does), so a time never rounds to a
different second on one side than on the other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup

#: the cookie holding the zone pages render in
ZONE_COOKIE = "runyard_tz"
#: the prefix of a cookie value that follows the browser's zone (set by the script, not the user)
AUTO_PREFIX = "auto:"
#: the zone of a page rendered before the browser said which zone it is in
DEFAULT_ZONE = "UTC"
#: the formats ``timetag`` and app.js know
FORMATS = ("when", "clock")


@dataclass(frozen=True, kw_only=True)
class DisplayZone:
    """The zone a page renders its times in. ``source``: ``chosen`` (the user picked it), ``auto``
    (the browser's, as the script last saw it) or ``default`` (no usable cookie: UTC until the script
    sets one)."""

    name: str
    source: str

    @property
    def info(self) -> ZoneInfo:
        return _zone(self.name)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def valid_zone(name: str) -> bool:
    """An IANA zone name this machine's time zone database knows (never a path)."""
    if not name or len(name) > 64 or name.startswith(("/", ".")):
        return False
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def zone_from_cookie(value: str | None) -> DisplayZone:
    """The zone a ``runyard_tz`` cookie value asks for; UTC (``default``) for none or an unknown zone."""
    value = (value or "").strip()
    auto = value.startswith(AUTO_PREFIX)
    name = value.removeprefix(AUTO_PREFIX)
    if not valid_zone(name):
        return DisplayZone(name=DEFAULT_ZONE, source="default")
    return DisplayZone(name=name, source="auto" if auto else "chosen")


def _moment(ts: float, zone: ZoneInfo) -> tuple[datetime, int]:
    """``ts`` truncated to the millisecond, as a datetime in ``zone`` and its milliseconds."""
    ms = int(ts * 1000)  # int() truncates, like a JavaScript Date
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, zone), millis


def offset_text(moment: datetime) -> str:
    """``+01:00``, ``-03:30``, ``+00:00`` (seconds only for the odd historical offset)."""
    delta = moment.utcoffset()
    total = int(delta.total_seconds()) if delta is not None else 0
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def format_when(ts: float | None, zone: ZoneInfo) -> str:
    if ts is None:
        return ""
    moment, _ = _moment(ts, zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + offset_text(moment)


def format_clock(ts: float | None, zone: ZoneInfo) -> str:
    if ts is None:
        return ""
    moment, millis = _moment(ts, zone)
    return moment.strftime("%H:%M:%S") + f".{millis:03d}"


def iso_utc(ts: float) -> str:
    """The ``datetime`` attribute of a ``<time>`` element: UTC, to the millisecond."""
    moment, millis = _moment(ts, _zone("UTC"))
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def time_tag(ts: float | None, zone: DisplayZone, fmt: str = "when", fixed_zone: str | None = None) -> Markup:
    """``<time datetime="…Z" data-ts="…" data-format="when">2026-11-30 08:33:01 +01:00</time>``: the
    script redraws it in place when the page's zone changes; its title is the full time in the
    page's zone. With ``fixed_zone`` (a schedule's own timezone) it is drawn in that zone, named
    after it, and never redrawn (``data-zone``)."""
    if ts is None:
        return Markup("")
    if fmt not in FORMATS:
        raise ValueError(f"unknown time format {fmt!r}; formats: {', '.join(FORMATS)}")
    if fixed_zone is not None and not valid_zone(fixed_zone):
        fixed_zone = None  # a zone this machine does not know: the page's zone, labelled by its offset
    info = _zone(fixed_zone) if fixed_zone else zone.info
    text = format_clock(ts, info) if fmt == "clock" else format_when(ts, info)
    title = f"{format_when(ts, zone.info)} ({zone.name})"
    if fixed_zone:
        return Markup('<time datetime="{}" data-ts="{}" data-format="{}" data-zone="{}" title="{}">{} {}</time>'
                      ).format(iso_utc(ts), repr(float(ts)), fmt, fixed_zone, title, text, fixed_zone)
    return Markup('<time datetime="{}" data-ts="{}" data-format="{}" title="{}">{}</time>').format(
        iso_utc(ts), repr(float(ts)), fmt, title, text)
