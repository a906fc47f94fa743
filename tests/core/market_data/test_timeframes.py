"""Timeframes: names, durations, ordering, multiples and bar alignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ktrdr_core.timeframes import TIMEFRAMES, Timeframe, TimeframeError, parse_timeframe

NAMES = ["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"]


def test_the_eight_timeframes_in_duration_order() -> None:
    assert [tf.value for tf in TIMEFRAMES] == NAMES
    assert [tf.duration for tf in TIMEFRAMES] == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=4),
        timedelta(days=1),
        timedelta(weeks=1),
    ]
    assert Timeframe.H4.seconds == 14_400


def test_parse_accepts_names_and_timeframes() -> None:
    assert parse_timeframe("4h") is Timeframe.H4
    assert parse_timeframe(" 1d ") is Timeframe.D1
    assert parse_timeframe(Timeframe.W1) is Timeframe.W1
    # A Timeframe is its name as a string, so it serialises and compares as one.
    assert Timeframe.H1 == "1h"
    assert {"1h": 1}[Timeframe.H1] == 1


@pytest.mark.parametrize("bad", ["2h", "1H", "60m", "", "1 h", "daily", None, 60])
def test_parse_rejects_unknown_names_listing_the_valid_ones(bad: object) -> None:
    with pytest.raises(TimeframeError) as info:
        parse_timeframe(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(bad) in message
    assert "1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w" in message


def test_ordering_is_by_duration_not_spelling() -> None:
    # As plain strings "1d" < "1h" < "1m"; as timeframes it is the other way round.
    assert sorted([Timeframe.D1, Timeframe.M1, Timeframe.H1, Timeframe.W1]) == [
        Timeframe.M1,
        Timeframe.H1,
        Timeframe.D1,
        Timeframe.W1,
    ]
    assert Timeframe.M15 < Timeframe.H1 <= Timeframe.H1 < Timeframe.D1
    assert max(TIMEFRAMES) is Timeframe.W1
    with pytest.raises(TypeError, match="parse_timeframe"):
        _ = Timeframe.H1 < "4h"


def test_every_longer_timeframe_is_an_aligned_multiple_of_every_shorter_one() -> None:
    for i, low in enumerate(TIMEFRAMES):
        for high in TIMEFRAMES[i:]:
            assert high.is_multiple_of(low), (high, low)
            assert high.ratio(low) * low.seconds == high.seconds
        for shorter in TIMEFRAMES[:i]:
            assert not shorter.is_multiple_of(low)
    assert Timeframe.H4.ratio("1h") == 4
    assert Timeframe.W1.ratio(Timeframe.D1) == 7
    assert Timeframe.H1.multiples() == (Timeframe.H4, Timeframe.D1, Timeframe.W1)
    assert Timeframe.W1.multiples() == ()
    with pytest.raises(TimeframeError, match="not a whole multiple"):
        Timeframe.H1.ratio("4h")


def test_weekly_bars_open_on_monday_midnight_utc() -> None:
    wednesday = datetime(2024, 1, 3, 15, 30, tzinfo=UTC)
    assert Timeframe.W1.bar_open(wednesday) == datetime(2024, 1, 1, tzinfo=UTC)
    assert Timeframe.W1.bar_open(datetime(2024, 1, 7, 23, 59)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert Timeframe.W1.bar_open(datetime(2024, 1, 8)) == datetime(2024, 1, 8, tzinfo=UTC)
    assert Timeframe.W1.is_aligned(datetime(2024, 1, 8, tzinfo=UTC))  # a Monday
    assert not Timeframe.W1.is_aligned(datetime(2024, 1, 7, tzinfo=UTC))  # a Sunday
    assert Timeframe.W1.next_open(wednesday) == datetime(2024, 1, 8, tzinfo=UTC)


def test_daily_and_intraday_bars_open_on_multiples_from_midnight_utc() -> None:
    when = datetime(2024, 1, 2, 14, 47, 31, tzinfo=UTC)
    assert Timeframe.D1.bar_open(when) == datetime(2024, 1, 2, tzinfo=UTC)
    assert Timeframe.H4.bar_open(when) == datetime(2024, 1, 2, 12, tzinfo=UTC)
    assert Timeframe.H1.bar_open(when) == datetime(2024, 1, 2, 14, tzinfo=UTC)
    assert Timeframe.M15.bar_open(when) == datetime(2024, 1, 2, 14, 45, tzinfo=UTC)
    assert Timeframe.M1.bar_open(when) == datetime(2024, 1, 2, 14, 47, tzinfo=UTC)
    assert Timeframe.H4.is_aligned(datetime(2024, 1, 2, 20, tzinfo=UTC))
    assert not Timeframe.H4.is_aligned(datetime(2024, 1, 2, 14, tzinfo=UTC))
    assert not Timeframe.M1.is_aligned(datetime(2024, 1, 2, 14, 47, 0, 500, tzinfo=UTC))


def test_offsets_are_converted_and_naive_means_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    # 01:30 at +02:00 is 23:30 UTC on the day before.
    assert Timeframe.D1.bar_open(datetime(2024, 1, 2, 1, 30, tzinfo=plus_two)) == datetime(
        2024, 1, 1, tzinfo=UTC
    )
    assert Timeframe.H1.bar_open(datetime(2024, 1, 2, 1, 30)) == datetime(2024, 1, 2, 1, tzinfo=UTC)


def test_epoch_helpers_match_the_datetime_ones() -> None:
    monday = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    assert Timeframe.W1.floor_epoch(monday + 3 * 86_400 + 5) == monday
    assert Timeframe.W1.is_aligned_epoch(monday)
    assert not Timeframe.W1.is_aligned_epoch(monday + 86_400)
    assert Timeframe.H4.floor_epoch(monday + 5 * 3600) == monday + 4 * 3600
