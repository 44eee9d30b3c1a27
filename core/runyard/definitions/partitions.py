"""Partitions: the slices a job's runs are cut into (a day of data, a country, a customer).

A :class:`PartitionsDefinition` lists its partition keys (strings). Two kinds:

* :class:`StaticPartitionsDefinition` — a fixed list of keys.
* :class:`TimeWindowPartitionsDefinition` — one key per time window (hour, day, week, month) from a
  start date, in a time zone: :class:`HourlyPartitionsDefinition`, :class:`DailyPartitionsDefinition`,
  :class:`WeeklyPartitionsDefinition`, :class:`MonthlyPartitionsDefinition`. A key is the window's
  start formatted with ``fmt``; the keys that exist at a moment are the windows that have ended by
  then (the last complete window is the last key), plus ``end_offset`` more (negative: fewer).

Windows follow the wall clock of their time zone: a daily window runs from midnight (plus
``hour_offset``/``minute_offset``) to the next midnight, 23 or 25 hours on the days clocks change.
A window start that the clock skips (02:00 on a spring-forward night) begins at the first time that
exists after it; an hourly window is never empty — the skipped hour has no key, and the hour that
repeats in autumn is one key whose window holds both occurrences.

The definitions are plain data: :meth:`PartitionsDefinition.to_snapshot` describes one, and
:func:`partitions_def_from_snapshot` rebuilds it from that, so the daemon, web UI and CLI compute
time-window keys for "now" without importing user code.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import DefinitionError, RunyardError


class PartitionKeyError(RunyardError):
    """A partition key that the job's partitions definition does not have (or a job without
    partitions was asked for one); the message names the job and the key."""

    exit_code = 2

    def __init__(self, message: str, *, job_name: str | None = None, partition_key: str | None = None):
        self.job_name = job_name
        self.partition_key = partition_key
        super().__init__(message)


class PartitionConfigError(RunyardError):
    """A job's partitioned config failed for a partition (its function raised, returned something
    that is not a run config, or set a reserved tag). ``user_traceback``: the user's traceback when
    it raised; ``kind`` as in the code server's answer (``user_code_error``, ``invalid_result``, ...)."""

    def __init__(self, message: str, *, user_traceback: str | None = None, kind: str | None = None):
        self.user_traceback = user_traceback
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class TimeWindow:
    """A partition's time window: ``start`` inclusive, ``end`` exclusive, both aware datetimes in the
    definition's time zone."""

    start: datetime
    end: datetime


class PartitionsDefinition(ABC):
    """The partition keys of a job. Subclasses are immutable value objects."""

    #: ``static`` or ``time_window`` (the snapshot's ``kind``)
    kind: str = ""

    @abstractmethod
    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        """Every key that exists at ``current_time`` (default: now), in order."""

    def has_partition_key(self, key: str, current_time: datetime | None = None) -> bool:
        return key in self.get_partition_keys(current_time)

    def get_last_partition_key(self, current_time: datetime | None = None) -> str | None:
        """The last key at ``current_time`` (for a time window: the last complete window's, with
        ``end_offset`` applied), None when there is none yet."""
        keys = self.get_partition_keys(current_time)
        return keys[-1] if keys else None

    @abstractmethod
    def to_snapshot(self) -> dict[str, Any]:
        """This definition as JSON data (:class:`runyard.codeserver.snapshot.PartitionsSnapshot`)."""

    def time_window_for_partition_key(self, key: str) -> TimeWindow:
        raise DefinitionError(f"{type(self).__name__} has no time windows (partition '{key}')")


class StaticPartitionsDefinition(PartitionsDefinition):
    """A fixed list of partition keys: non-empty strings, unique, without ``,`` or newlines (they are
    written as comma-separated lists on the command line)."""

    kind = "static"

    def __init__(self, partition_keys: Sequence[str]):
        if isinstance(partition_keys, str) or not isinstance(partition_keys, Iterable):
            raise DefinitionError("StaticPartitionsDefinition takes a list of partition keys (strings), "
                                  f"not {type(partition_keys).__name__}")
        keys = list(partition_keys)
        seen: set[str] = set()
        for key in keys:
            if not isinstance(key, str) or not key:
                raise DefinitionError(f"partition key {key!r} must be a non-empty string")
            if any(c in key for c in ",\n\r"):
                raise DefinitionError(f"partition key {key!r} must not contain ',' or a line break")
            if key in seen:
                raise DefinitionError(f"partition key '{key}' appears twice")
            seen.add(key)
        self._keys = keys
        self._key_set = frozenset(keys)

    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        return list(self._keys)

    def has_partition_key(self, key: str, current_time: datetime | None = None) -> bool:
        return key in self._key_set

    def to_snapshot(self) -> dict[str, Any]:
        return {"kind": self.kind, "keys": list(self._keys)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StaticPartitionsDefinition) and other._keys == self._keys

    def __hash__(self) -> int:
        return hash(tuple(self._keys))

    def __repr__(self) -> str:
        return f"StaticPartitionsDefinition({self._keys!r})"


# ---- time windows ------------------------------------------------------------------------------------

CADENCES = ("hourly", "daily", "weekly", "monthly")
DEFAULT_FMT = {"hourly": "%Y-%m-%d-%H:%M", "daily": "%Y-%m-%d", "weekly": "%Y-%m-%d", "monthly": "%Y-%m-%d"}
_START_FORMATS = ("%Y-%m-%d-%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise DefinitionError(f"unknown time zone {name!r} (an IANA name such as 'UTC' or "
                              "'Europe/Paris')") from None


class TimeWindowPartitionsDefinition(PartitionsDefinition):
    """One partition per ``cadence`` window (``hourly``, ``daily``, ``weekly``, ``monthly``) from
    ``start`` (a datetime, a date, or a string in ``fmt`` or ISO form; the first window starts at
    the first window boundary at or after it), in ``timezone``.

    Offsets move the window boundaries: ``minute_offset`` (all cadences), ``hour_offset`` (daily and
    longer), ``day_offset`` (weekly: day of the week, 0 = Sunday; monthly: day of the month, 1-28).
    ``end_offset``: how many windows past the last complete one have keys (1: the window in progress
    too). ``end``: no window starts at or after it. ``fmt``: how a window's start is written as its
    key (strftime; default ``%Y-%m-%d``, hourly ``%Y-%m-%d-%H:%M``).
    """

    kind = "time_window"

    def __init__(self, *, cadence: str, start: datetime | date | str, timezone: str = "UTC",
                 fmt: str | None = None, minute_offset: int = 0, hour_offset: int = 0,
                 day_offset: int | None = None, end_offset: int = 0, end: datetime | date | str | None = None):
        if cadence not in CADENCES:
            raise DefinitionError(f"unknown partition cadence {cadence!r} (one of {', '.join(CADENCES)})")
        self.cadence = cadence
        self.timezone = str(timezone or "UTC")
        self._tz = _zone(self.timezone)
        self._utc = self.timezone in ("UTC", "Etc/UTC")
        self.fmt = fmt or DEFAULT_FMT[cadence]
        if not isinstance(self.fmt, str) or "%" not in self.fmt:
            raise DefinitionError(f"partition fmt {self.fmt!r} must be a strftime format such as '%Y-%m-%d'")
        where = f"{cadence} partitions"
        self.minute_offset = _int_in(minute_offset, 0, 59, "minute_offset", where)
        self.hour_offset = _int_in(hour_offset, 0, 23, "hour_offset", where)
        if cadence == "hourly" and self.hour_offset:
            raise DefinitionError(f"{where}: hour_offset has no meaning for hourly windows (use minute_offset)")
        if cadence == "weekly":
            self.day_offset = _int_in(0 if day_offset is None else day_offset, 0, 6, "day_offset", where)
        elif cadence == "monthly":
            self.day_offset = _int_in(1 if day_offset is None else day_offset, 1, 28, "day_offset", where)
        elif day_offset:
            raise DefinitionError(f"{where}: day_offset is for weekly and monthly windows only")
        else:
            self.day_offset = 0
        if isinstance(end_offset, bool) or not isinstance(end_offset, int):
            raise DefinitionError(f"{where}: end_offset must be an integer, not {end_offset!r}")
        self.end_offset = end_offset
        self.start = self._naive(start, "start", where)
        self.end = None if end is None else self._naive(end, "end", where)
        self._first = self._align(self.start)
        if self.end is not None and self.end <= self._first:
            raise DefinitionError(f"{where}: end {self.end} is not after the first window's start {self._first}")
        # window starts (UTC instants) computed so far and their keys: they never change, so the
        # list grows as time passes and each call only bisects it
        self._lock = threading.Lock()
        self._starts: list[datetime] = []
        self._keys: list[str] = []
        self._next_wall = self._first
        self._exhausted = False

    # ---- parsing and boundaries -----------------------------------------------------------------
    def _naive(self, value: Any, name: str, where: str) -> datetime:
        """``value`` as a naive wall-clock datetime of the definition's time zone."""
        if isinstance(value, datetime):
            return value.astimezone(self._tz).replace(tzinfo=None) if value.tzinfo else value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            for fmt in (self.fmt, *_START_FORMATS):
                try:
                    parsed = datetime.strptime(value, fmt)
                except ValueError:
                    continue
                return parsed.astimezone(self._tz).replace(tzinfo=None) if parsed.tzinfo else parsed
            raise DefinitionError(f"{where}: {name} {value!r} is not a date in the format {self.fmt!r} "
                                  "(or YYYY-MM-DD[ HH:MM])")
        raise DefinitionError(f"{where}: {name} must be a date, a datetime or a string, not {type(value).__name__}")

    def _align(self, wall: datetime) -> datetime:
        """The first window boundary at or after the wall-clock time ``wall``."""
        if self.cadence == "hourly":
            c = wall.replace(minute=self.minute_offset, second=0, microsecond=0)
        else:
            c = wall.replace(hour=self.hour_offset, minute=self.minute_offset, second=0, microsecond=0)
            if self.cadence == "weekly":
                cron_weekday = (c.weekday() + 1) % 7  # 0 = Sunday, as in cron
                c += timedelta(days=(self.day_offset - cron_weekday) % 7)
            elif self.cadence == "monthly":
                c = c.replace(day=self.day_offset)
        return c if c >= wall else self._next(c)

    def _next(self, wall: datetime) -> datetime:
        if self.cadence == "hourly":
            return wall + timedelta(hours=1)
        if self.cadence == "daily":
            return wall + timedelta(days=1)
        if self.cadence == "weekly":
            return wall + timedelta(days=7)
        year, month = (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
        return wall.replace(year=year, month=month)

    def _instant(self, wall: datetime) -> datetime:
        """The moment a wall-clock boundary happens (UTC). A wall time the clock skips maps to the
        first moment after the gap; a repeated one to its first occurrence."""
        if self._utc:
            return wall.replace(tzinfo=UTC)
        return wall.replace(tzinfo=self._tz, fold=0).astimezone(UTC)

    def _key(self, instant: datetime) -> str:
        return (instant if self._utc else instant.astimezone(self._tz)).strftime(self.fmt)

    def _extend(self, until: datetime, more: int) -> None:
        """Grow the cached window starts past ``until`` and ``more`` windows beyond (or to ``end``).
        Consecutive boundaries that happen at one instant (a skipped hour) are one window start."""
        starts = self._starts
        while not self._exhausted and (not starts or starts[-1] <= until
                                       or len(starts) - bisect_right(starts, until) < more):
            wall = self._next_wall
            if self.end is not None and wall >= self.end:
                self._exhausted = True
                break
            instant = self._instant(wall)
            if not starts or instant != starts[-1]:
                starts.append(instant)
            self._next_wall = self._next(wall)

    # ---- keys ----------------------------------------------------------------------------------
    def _count(self, current_time: datetime | None) -> int:
        """How many windows have keys at ``current_time``: those ended by then, + end_offset."""
        now = _as_utc(current_time)
        with self._lock:
            self._extend(now, max(self.end_offset, 0) + 1)
            started = bisect_right(self._starts, now)  # windows whose start is <= now
            complete = max(started - 1, 0)  # each of those but the last has ended
            if self._exhausted and started == len(self._starts) and started and self._instant(self._next_wall) <= now:
                complete = started  # the last window (the last to start before ``end``) has ended too
            return max(0, min(len(self._starts), complete + self.end_offset))

    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        n = self._count(current_time)
        with self._lock:
            keys = self._keys
            if len(keys) < n:
                keys.extend(self._key(s) for s in self._starts[len(keys):n])
            return keys[:n]

    def has_partition_key(self, key: str, current_time: datetime | None = None) -> bool:
        found = self._start_of(key)
        if found is None:
            return False
        n = self._count(current_time)
        with self._lock:
            return n > 0 and found[1] <= self._starts[n - 1]

    def _start_of(self, key: str) -> tuple[datetime, datetime] | None:
        """The window boundary (wall clock, UTC instant) whose key is ``key``, or None."""
        if not isinstance(key, str):
            return None
        try:
            parsed = datetime.strptime(key, self.fmt)
        except ValueError:
            return None
        wall = self._align(parsed.astimezone(self._tz).replace(tzinfo=None) if parsed.tzinfo else parsed)
        if wall < self._first or (self.end is not None and wall >= self.end):
            return None
        instant = self._instant(wall)
        if self._key(instant) != key:
            return None
        return wall, instant

    def time_window_for_partition_key(self, key: str) -> TimeWindow:
        """The window whose key is ``key`` (whether or not it has ended yet); a
        :class:`PartitionKeyError` for a string that is no window's key."""
        found = self._start_of(key)
        if found is None:
            raise PartitionKeyError(f"'{key}' is not a partition key of {self!r} (keys look like "
                                    f"{self._key(self._instant(self._first))!r})", partition_key=key)
        wall, start = self._next(found[0]), found[1]
        end = self._instant(wall)
        while end <= start:  # a window end the clock skipped: next boundary that exists
            wall = self._next(wall)
            end = self._instant(wall)
        return TimeWindow(start.astimezone(self._tz), end.astimezone(self._tz))

    def time_windows(self, current_time: datetime | None = None) -> list[TimeWindow]:
        return [self.time_window_for_partition_key(k) for k in self.get_partition_keys(current_time)]

    # ---- data ----------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:  # the lock does not pickle; the cache is rebuilt
        state = dict(self.__dict__)
        state.update(_lock=None, _starts=[], _keys=[], _next_wall=self._first, _exhausted=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def to_snapshot(self) -> dict[str, Any]:
        return {"kind": self.kind, "cadence": self.cadence, "start": self.start.isoformat(),
                "timezone": self.timezone, "fmt": self.fmt, "minute_offset": self.minute_offset,
                "hour_offset": self.hour_offset, "day_offset": self.day_offset, "end_offset": self.end_offset,
                "end": None if self.end is None else self.end.isoformat()}

    def _params(self) -> tuple:
        return tuple(sorted(self.to_snapshot().items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindowPartitionsDefinition) and other._params() == self._params()

    def __hash__(self) -> int:
        return hash(self._params())

    def __repr__(self) -> str:
        offsets = ", ".join(f"{k}={getattr(self, k)}" for k in ("minute_offset", "hour_offset", "day_offset",
                                                                 "end_offset") if getattr(self, k))
        return (f"{self.cadence.capitalize()}PartitionsDefinition(start={self.start.isoformat()!r}, "
                f"timezone={self.timezone!r}{', ' + offsets if offsets else ''})")


def _as_utc(current_time: datetime | None) -> datetime:
    if current_time is None:
        return datetime.now(UTC)
    if current_time.tzinfo is None:
        return current_time.replace(tzinfo=UTC)
    return current_time.astimezone(UTC)


def _int_in(value: Any, low: int, high: int, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DefinitionError(f"{where}: {name} must be an integer from {low} to {high}, not {value!r}")
    return value


class HourlyPartitionsDefinition(TimeWindowPartitionsDefinition):
    """One partition per hour (key ``%Y-%m-%d-%H:%M``) from ``start_date``."""

    def __init__(self, start_date: datetime | date | str, *, minute_offset: int = 0, timezone: str = "UTC",
                 fmt: str | None = None, end_offset: int = 0, end_date: datetime | date | str | None = None):
        super().__init__(cadence="hourly", start=start_date, timezone=timezone, fmt=fmt,
                         minute_offset=minute_offset, end_offset=end_offset, end=end_date)


class DailyPartitionsDefinition(TimeWindowPartitionsDefinition):
    """One partition per day (key ``%Y-%m-%d``) from ``start_date``."""

    def __init__(self, start_date: datetime | date | str, *, minute_offset: int = 0, hour_offset: int = 0,
                 timezone: str = "UTC", fmt: str | None = None, end_offset: int = 0,
                 end_date: datetime | date | str | None = None):
        super().__init__(cadence="daily", start=start_date, timezone=timezone, fmt=fmt,
                         minute_offset=minute_offset, hour_offset=hour_offset, end_offset=end_offset, end=end_date)


class WeeklyPartitionsDefinition(TimeWindowPartitionsDefinition):
    """One partition per week (key: the week's first day, ``%Y-%m-%d``) from ``start_date``; weeks
    start on ``day_offset`` (0 = Sunday)."""

    def __init__(self, start_date: datetime | date | str, *, minute_offset: int = 0, hour_offset: int = 0,
                 day_offset: int = 0, timezone: str = "UTC", fmt: str | None = None, end_offset: int = 0,
                 end_date: datetime | date | str | None = None):
        super().__init__(cadence="weekly", start=start_date, timezone=timezone, fmt=fmt,
                         minute_offset=minute_offset, hour_offset=hour_offset, day_offset=day_offset,
                         end_offset=end_offset, end=end_date)


class MonthlyPartitionsDefinition(TimeWindowPartitionsDefinition):
    """One partition per month (key: the month's first day, ``%Y-%m-%d``) from ``start_date``; months
    start on day ``day_offset`` (1-28)."""

    def __init__(self, start_date: datetime | date | str, *, minute_offset: int = 0, hour_offset: int = 0,
                 day_offset: int = 1, timezone: str = "UTC", fmt: str | None = None, end_offset: int = 0,
                 end_date: datetime | date | str | None = None):
        super().__init__(cadence="monthly", start=start_date, timezone=timezone, fmt=fmt,
                         minute_offset=minute_offset, hour_offset=hour_offset, day_offset=day_offset,
                         end_offset=end_offset, end=end_date)


_CLASSES = {"hourly": HourlyPartitionsDefinition, "daily": DailyPartitionsDefinition,
            "weekly": WeeklyPartitionsDefinition, "monthly": MonthlyPartitionsDefinition}


def partitions_def_from_snapshot(data: Any) -> PartitionsDefinition:
    """The definition :meth:`PartitionsDefinition.to_snapshot` described (``data``: that dict or a
    :class:`runyard.codeserver.snapshot.PartitionsSnapshot`)."""
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    if data["kind"] == "static":
        return StaticPartitionsDefinition(data["keys"])
    return TimeWindowPartitionsDefinition(
        cadence=data["cadence"], start=datetime.fromisoformat(data["start"]), timezone=data["timezone"],
        fmt=data["fmt"], minute_offset=data["minute_offset"], hour_offset=data["hour_offset"],
        day_offset=data["day_offset"] if data["cadence"] in ("weekly", "monthly") else None,
        end_offset=data["end_offset"], end=None if data.get("end") is None else datetime.fromisoformat(data["end"]))


__all__ = [
    "CADENCES", "DailyPartitionsDefinition", "HourlyPartitionsDefinition", "MonthlyPartitionsDefinition",
    "PartitionConfigError", "PartitionKeyError", "PartitionsDefinition", "StaticPartitionsDefinition", "TimeWindow",
    "TimeWindowPartitionsDefinition", "WeeklyPartitionsDefinition", "partitions_def_from_snapshot",
]
