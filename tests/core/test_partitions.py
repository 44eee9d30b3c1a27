"""Partitions definitions (runyard.definitions.partitions, partitioned_config): keys at a given time,
offsets, time zones across daylight-saving changes, ``end_offset``, formats, time windows, the
snapshot round trip, partitioned config and ``@job(partitions_def=, config=)``, and the errors bad
input gets.

Needs: nothing beyond Python (zoneinfo's time zone database).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runyard import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    PartitionedConfig,
    PartitionKeyError,
    StaticPartitionsDefinition,
    WeeklyPartitionsDefinition,
    daily_partitioned_config,
    hourly_partitioned_config,
    job,
    monthly_partitioned_config,
    op,
    static_partitioned_config,
    weekly_partitioned_config,
)
from runyard.definitions.partitions import partitions_def_from_snapshot
from runyard.errors import DefinitionError

NY = ZoneInfo("America/New_York")


def at(*args, tz=UTC) -> datetime:
    return datetime(*args, tzinfo=tz)


def hours(window) -> float:
    """A window's real length in hours."""
    return (window.end.astimezone(UTC) - window.start.astimezone(UTC)) / timedelta(hours=1)


# ---- static ------------------------------------------------------------------------------------------

def test_static_keys_in_order():
    p = StaticPartitionsDefinition(["eu", "us", "asia"])
    assert p.get_partition_keys() == ["eu", "us", "asia"]
    assert p.has_partition_key("us") and not p.has_partition_key("US")
    assert p.get_last_partition_key() == "asia"
    assert p.to_snapshot() == {"kind": "static", "keys": ["eu", "us", "asia"]}
    assert partitions_def_from_snapshot(p.to_snapshot()) == p


@pytest.mark.parametrize("keys, message", [
    (["a", "a"], "'a' appears twice"),
    (["a", ""], "must be a non-empty string"),
    (["a", 3], "must be a non-empty string"),
    (["a,b"], "must not contain ','"),
    ("abc", "takes a list of partition keys"),
])
def test_static_bad_keys(keys, message):
    with pytest.raises(DefinitionError, match=message):
        StaticPartitionsDefinition(keys)


# ---- daily, hourly, weekly, monthly ---------------------------------------------------------------------

def test_daily_keys_are_the_complete_days():
    p = DailyPartitionsDefinition("2024-01-01")
    assert p.get_partition_keys(at(2024, 1, 1, 23, 59)) == []  # the first day has not ended
    assert p.get_partition_keys(at(2024, 1, 2)) == ["2024-01-01"]  # ends exactly now: complete
    assert p.get_partition_keys(at(2024, 1, 4, 12)) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert p.get_last_partition_key(at(2024, 1, 4, 12)) == "2024-01-03"
    assert p.has_partition_key("2024-01-03", at(2024, 1, 4, 12))
    assert not p.has_partition_key("2024-01-04", at(2024, 1, 4, 12))  # in progress
    assert not p.has_partition_key("2023-12-31", at(2024, 1, 4, 12))  # before the start
    assert not p.has_partition_key("2024-1-3", at(2024, 1, 4, 12))  # not the key's format
    assert not p.has_partition_key("yesterday")


def test_daily_since_2020_is_fast_and_grows_with_time():
    p = DailyPartitionsDefinition("2020-01-01")
    started = time.perf_counter()
    keys = p.get_partition_keys()
    first = time.perf_counter() - started
    assert keys[0] == "2020-01-01"
    assert keys[-1] == (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    started = time.perf_counter()
    for _ in range(100):
        assert p.has_partition_key("2023-06-15")
        p.get_partition_keys()
    again = (time.perf_counter() - started) / 100
    assert first < 0.5, first
    assert again < 0.01, again  # the computed windows are kept: later calls bisect them
    later = p.get_partition_keys(datetime.now(UTC) + timedelta(days=3))
    assert len(later) == len(keys) + 3


def test_offsets_move_the_window_boundaries():
    p = DailyPartitionsDefinition("2024-01-01", hour_offset=6, minute_offset=30)
    assert p.get_partition_keys(at(2024, 1, 2, 6, 29)) == []
    assert p.get_partition_keys(at(2024, 1, 2, 6, 30)) == ["2024-01-01"]
    w = p.time_window_for_partition_key("2024-01-01")
    assert (w.start, w.end) == (at(2024, 1, 1, 6, 30), at(2024, 1, 2, 6, 30))

    h = HourlyPartitionsDefinition("2024-01-01-00:00", minute_offset=15)
    assert h.get_partition_keys(at(2024, 1, 1, 2, 20)) == ["2024-01-01-00:15", "2024-01-01-01:15"]

    # weeks start on Sunday (day_offset 0) unless told; 2024-01-01 is a Monday
    w0 = WeeklyPartitionsDefinition("2024-01-01")
    assert w0.get_partition_keys(at(2024, 1, 21)) == ["2024-01-07", "2024-01-14"]
    w1 = WeeklyPartitionsDefinition("2024-01-01", day_offset=1)
    assert w1.get_partition_keys(at(2024, 1, 15)) == ["2024-01-01", "2024-01-08"]
    assert w1.time_window_for_partition_key("2024-01-08").end == at(2024, 1, 15)

    m = MonthlyPartitionsDefinition("2023-11-15", day_offset=5)
    assert m.get_partition_keys(at(2024, 2, 5)) == ["2023-12-05", "2024-01-05"]
    assert MonthlyPartitionsDefinition("2023-11-01").get_partition_keys(at(2024, 1, 1)) == ["2023-11-01", "2023-12-01"]
    dec = MonthlyPartitionsDefinition("2023-01-01").time_window_for_partition_key("2023-12-01")
    assert (dec.start, dec.end) == (at(2023, 12, 1), at(2024, 1, 1))


def test_end_offset_adds_or_removes_windows():
    now = at(2024, 1, 10, 12)
    assert DailyPartitionsDefinition("2024-01-01").get_partition_keys(now)[-1] == "2024-01-09"
    assert DailyPartitionsDefinition("2024-01-01", end_offset=1).get_partition_keys(now)[-1] == "2024-01-10"
    assert DailyPartitionsDefinition("2024-01-01", end_offset=2).get_partition_keys(now)[-1] == "2024-01-11"
    assert DailyPartitionsDefinition("2024-01-01", end_offset=-2).get_partition_keys(now)[-1] == "2024-01-07"
    assert DailyPartitionsDefinition("2024-01-01", end_offset=1).get_partition_keys(at(2024, 1, 1, 1)) == ["2024-01-01"]
    assert DailyPartitionsDefinition("2024-01-01", end_offset=-1).get_partition_keys(at(2024, 1, 2, 1)) == []


def test_end_date_stops_the_windows():
    # a window that starts before the end date is the last; it ends when its day does
    noon = DailyPartitionsDefinition("2024-01-01", end_date="2024-01-03 12:00")
    assert noon.get_partition_keys(at(2024, 1, 3, 23)) == ["2024-01-01", "2024-01-02"]
    assert noon.get_partition_keys(at(2024, 1, 4)) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    p = DailyPartitionsDefinition("2024-01-01", end_date="2024-01-04")
    assert p.get_partition_keys(at(2024, 1, 3)) == ["2024-01-01", "2024-01-02"]
    assert p.get_partition_keys(at(2030, 1, 1)) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert not p.has_partition_key("2024-01-04", at(2030, 1, 1))
    with pytest.raises(DefinitionError, match="end .* is not after the first window"):
        DailyPartitionsDefinition("2024-01-05", end_date="2024-01-02")


def test_formats():
    p = DailyPartitionsDefinition("20240101", fmt="%Y%m%d")
    assert p.get_partition_keys(at(2024, 1, 3)) == ["20240101", "20240102"]
    assert p.time_window_for_partition_key("20240102").start == at(2024, 1, 2)
    assert not p.has_partition_key("2024-01-02", at(2024, 1, 3))
    h = HourlyPartitionsDefinition(datetime(2024, 1, 1), fmt="%Y-%m-%dT%H")
    assert h.get_partition_keys(at(2024, 1, 1, 2)) == ["2024-01-01T00", "2024-01-01T01"]
    # starts as dates, datetimes (aware ones converted to the zone) and ISO strings
    assert DailyPartitionsDefinition(date(2024, 1, 1)) == DailyPartitionsDefinition("2024-01-01")
    assert (DailyPartitionsDefinition(at(2024, 1, 1, 5), timezone="America/New_York")
            == DailyPartitionsDefinition("2024-01-01 00:00", timezone="America/New_York"))


def test_a_start_between_boundaries_begins_at_the_next_one():
    p = DailyPartitionsDefinition("2024-01-01 10:00")
    assert p.get_partition_keys(at(2024, 1, 4)) == ["2024-01-02", "2024-01-03"]


# ---- time zones and daylight-saving time -------------------------------------------------------------

def test_daily_windows_across_dst_are_23_and_25_hours():
    p = DailyPartitionsDefinition("2024-03-09", timezone="America/New_York")
    spring = p.time_window_for_partition_key("2024-03-10")
    assert spring.start == at(2024, 3, 10, tz=NY) and spring.end == at(2024, 3, 11, tz=NY)
    assert hours(spring) == 23  # (subtracting datetimes of one zone in Python gives wall-clock time)
    autumn = p.time_window_for_partition_key("2024-11-03")
    assert hours(autumn) == 25
    # keys exist once the local day has ended: 2024-03-10 ends at 04:00 UTC on the 11th (EDT)
    assert p.get_partition_keys(at(2024, 3, 11, 3, 59)) == ["2024-03-09"]
    assert p.get_partition_keys(at(2024, 3, 11, 4)) == ["2024-03-09", "2024-03-10"]


def test_hourly_across_dst_skips_the_missing_hour_and_keeps_the_repeated_one_once():
    spring = HourlyPartitionsDefinition("2024-03-10-00:00", timezone="America/New_York")
    keys = spring.get_partition_keys(at(2024, 3, 10, 9))  # 05:00 EDT
    assert keys == ["2024-03-10-00:00", "2024-03-10-01:00", "2024-03-10-03:00", "2024-03-10-04:00"]
    one = spring.time_window_for_partition_key("2024-03-10-01:00")
    assert hours(one) == 1 and one.end.hour == 3
    assert not spring.has_partition_key("2024-03-10-02:00", at(2024, 3, 11))

    autumn = HourlyPartitionsDefinition("2024-11-03-00:00", timezone="America/New_York")
    keys = autumn.get_partition_keys(at(2024, 11, 3, 9))  # 04:00 EST
    assert keys == ["2024-11-03-00:00", "2024-11-03-01:00", "2024-11-03-02:00", "2024-11-03-03:00"]
    assert len(set(keys)) == len(keys)
    repeated = autumn.time_window_for_partition_key("2024-11-03-01:00")
    assert hours(repeated) == 2  # both 01:00s


def test_daily_offset_inside_the_skipped_hour_starts_after_the_gap():
    p = DailyPartitionsDefinition("2024-03-09", timezone="America/New_York", hour_offset=2, minute_offset=30)
    w = p.time_window_for_partition_key("2024-03-10")
    assert w.start.astimezone(UTC) == at(2024, 3, 10, 7, 30)  # 02:30 does not exist: 03:30 EDT
    assert w.end == at(2024, 3, 11, 2, 30, tz=NY)


def test_time_zone_of_keys_and_windows():
    p = DailyPartitionsDefinition("2024-01-01", timezone="Asia/Tokyo")
    # 2024-01-02 00:00 in Tokyo is 2024-01-01 15:00 UTC
    assert p.get_partition_keys(at(2024, 1, 1, 15)) == ["2024-01-01"]
    w = p.time_window_for_partition_key("2024-01-01")
    assert w.start.utcoffset() == timedelta(hours=9) and w.start.tzinfo.key == "Asia/Tokyo"


# ---- data ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("definition", [
    DailyPartitionsDefinition("2024-01-01", timezone="Europe/Paris", hour_offset=3, end_offset=1),
    HourlyPartitionsDefinition("2024-01-01-00:00", minute_offset=10, fmt="%Y%m%d%H%M"),
    WeeklyPartitionsDefinition("2024-01-01", day_offset=3, end_date="2025-01-01"),
    MonthlyPartitionsDefinition("2024-01-01", day_offset=10),
])
def test_snapshot_round_trip(definition):
    data = definition.to_snapshot()
    again = partitions_def_from_snapshot(data)
    assert again == definition and hash(again) == hash(definition)
    assert again.get_partition_keys(at(2024, 6, 1)) == definition.get_partition_keys(at(2024, 6, 1))
    from runyard.codeserver.snapshot import PartitionsSnapshot

    snap = PartitionsSnapshot.model_validate(data)
    assert snap.get_partition_keys(at(2024, 6, 1)) == definition.get_partition_keys(at(2024, 6, 1))
    import pickle

    copied = pickle.loads(pickle.dumps(definition))
    assert copied == definition
    assert copied.get_partition_keys(at(2024, 6, 1)) == again.get_partition_keys(at(2024, 6, 1))


# ---- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: DailyPartitionsDefinition("2024-01-01", timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    (lambda: DailyPartitionsDefinition("01/02/2024"), "start '01/02/2024' is not a date in the format '%Y-%m-%d'"),
    (lambda: DailyPartitionsDefinition("2024-01-01", hour_offset=24), "hour_offset must be an integer from 0 to 23"),
    (lambda: DailyPartitionsDefinition("2024-01-01", minute_offset=-1), "minute_offset must be an integer"),
    (lambda: HourlyPartitionsDefinition("2024-01-01-00:00", minute_offset=60), "minute_offset"),
    (lambda: WeeklyPartitionsDefinition("2024-01-01", day_offset=7), "day_offset must be an integer from 0 to 6"),
    (lambda: MonthlyPartitionsDefinition("2024-01-01", day_offset=31), "day_offset must be an integer from 1 to 28"),
    (lambda: DailyPartitionsDefinition("2024-01-01", end_offset="1"), "end_offset must be an integer"),
    (lambda: DailyPartitionsDefinition("2024-01-01", fmt="YYYY"), "fmt 'YYYY' must be a strftime format"),
    (lambda: DailyPartitionsDefinition(20240101), "start must be a date"),
])
def test_bad_definitions_name_what_is_wrong(make, message):
    with pytest.raises(DefinitionError, match=message):
        make()


def test_time_window_for_an_unknown_key():
    p = DailyPartitionsDefinition("2024-01-01")
    with pytest.raises(PartitionKeyError,
                       match=r"'2023-12-31' is not a partition key .*\(keys look like '2024-01-01'\)"):
        p.time_window_for_partition_key("2023-12-31")
    with pytest.raises(DefinitionError, match="has no time windows"):
        StaticPartitionsDefinition(["a"]).time_window_for_partition_key("a")


# ---- partitioned config and jobs -------------------------------------------------------------------

@op
def noop() -> None:
    return None


def test_static_partitioned_config_and_tags():
    @static_partitioned_config(["a", "b"], tags_for_partition_fn=lambda key: {"letter": key})
    def cfg(partition_key: str):
        return {"tags": {"from_config": partition_key}}

    @job(config=cfg)
    def letters():
        noop()

    assert isinstance(cfg, PartitionedConfig) and cfg("x") == {"tags": {"from_config": "x"}}
    assert letters.partitions_def == StaticPartitionsDefinition(["a", "b"])
    assert letters.partitioned_config is cfg and letters.default_run_config == {}
    assert letters.run_request_for_partition("b") == (
        {"tags": {"from_config": "b"}}, {"letter": "b", "runyard/partition": "b"})


@pytest.mark.parametrize("decorator, key, start, end", [
    (hourly_partitioned_config("2024-01-01-00:00"), "2024-01-01-05:00", at(2024, 1, 1, 5), at(2024, 1, 1, 6)),
    (daily_partitioned_config("2024-01-01", hour_offset=1), "2024-01-02", at(2024, 1, 2, 1), at(2024, 1, 3, 1)),
    (weekly_partitioned_config("2024-01-01"), "2024-01-07", at(2024, 1, 7), at(2024, 1, 14)),
    (monthly_partitioned_config("2024-01-01"), "2024-02-01", at(2024, 2, 1), at(2024, 3, 1)),
])
def test_time_window_partitioned_config_gets_the_window(decorator, key, start, end):
    seen = []

    @decorator
    def cfg(window_start: datetime, window_end: datetime):
        seen.append((window_start, window_end))
        return {"tags": {"start": window_start.isoformat()}}

    @job(config=cfg)
    def windowed():
        noop()

    config, tags = windowed.run_request_for_partition(key)
    assert seen == [(start, end)] and config == {"tags": {"start": start.isoformat()}}
    assert tags == {"runyard/partition": key}


def test_job_with_partitions_def_and_plain_config():
    @job(partitions_def=StaticPartitionsDefinition(["x"]), config={"tags": {"a": "1"}})
    def plain_config():
        noop()

    assert plain_config.run_request_for_partition("x") == ({"tags": {"a": "1"}}, {"runyard/partition": "x"})


def test_unknown_partitions_name_job_and_key():
    @job(partitions_def=StaticPartitionsDefinition(["x", "y"]))
    def two():
        noop()

    with pytest.raises(PartitionKeyError, match=r"job 'two' has no partition 'z' \(2 partitions: x, y\)") as exc:
        two.run_request_for_partition("z")
    assert exc.value.job_name == "two" and exc.value.partition_key == "z"

    @job
    def unpartitioned():
        noop()

    assert unpartitioned.partitions_def is None
    with pytest.raises(PartitionKeyError, match="job 'unpartitioned' is not partitioned"):
        unpartitioned.run_request_for_partition("x")


def test_partitioned_config_errors():
    @static_partitioned_config(["a"])
    def not_a_dict(key):
        return ["nope"]

    @job(config=not_a_dict)
    def one():
        noop()

    with pytest.raises(DefinitionError, match="partitioned config 'not_a_dict' returned list for partition 'a'"):
        one.run_request_for_partition("a")

    @static_partitioned_config(["a"], tags_for_partition_fn=lambda key: {"runyard/partition": "forged"})
    def forging(key):
        return {}

    @job(config=forging)
    def two():
        noop()

    from runyard.tags import ReservedTagError

    with pytest.raises(ReservedTagError, match="'runyard/partition' is a reserved tag"):
        two.run_request_for_partition("a")

    with pytest.raises(DefinitionError, match="partitions_def must be a PartitionsDefinition"):
        @job(partitions_def=["a", "b"])
        def bad():
            noop()

    with pytest.raises(DefinitionError, match="differs from the partitions of its partitioned config"):
        @job(partitions_def=StaticPartitionsDefinition(["b"]), config=forging)
        def clash():
            noop()
