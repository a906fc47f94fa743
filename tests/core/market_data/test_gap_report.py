"""Gap reports: missing bars classified as weekend, session break, holiday or unexpected."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ktrdr_core.market_data import (
    Gap,
    MarketCalendar,
    gap_report,
    infer_calendar,
    validate_ohlcv_csv,
)
from tests.support.market_data import continuous_opens, epoch, nyse_opens

HOUR = 3600
DAY = 86_400


@pytest.fixture(scope="module")
def goog_opens(goog_csv: Path) -> list[int]:
    return list(validate_ohlcv_csv(goog_csv, "1d").timestamps)


@pytest.fixture(scope="module")
def eurusd_opens(eurusd_csv: Path) -> list[int]:
    return list(validate_ohlcv_csv(eurusd_csv, "1h").timestamps)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- real data: GOOG daily -------------------------------------------------------------


def test_goog_daily_has_weekends_and_holidays_and_no_holes(goog_opens: list[int]) -> None:
    report = gap_report(goog_opens, "1d")
    assert report.calendar.kind == "weekdays" and report.calendar.inferred
    assert report.calendar.weekend == ("Sat 00:00", "Mon 00:00")
    # 2004-08-19 (Thu) .. 2013-03-01 (Fri) spans 445 weekends of two missing days each.
    assert report.gap_counts["weekend"] == 445
    assert report.missing_bars["weekend"] == 890
    # US market holidays: 79 weekdays without a bar, two of them two days long.
    assert report.missing_bars["holiday"] == 79
    assert report.gap_counts["holiday"] == 77
    assert report.unexpected == [] and not report.has_unexpected
    holidays = {(g.start, g.missing_bars) for g in report.holidays}
    assert (utc(2005, 3, 25), 1) in holidays  # Good Friday, next to a weekend
    assert (utc(2004, 11, 25), 1) in holidays  # Thanksgiving, mid-week
    assert (utc(2012, 10, 29), 2) in holidays  # hurricane Sandy: Monday and Tuesday
    assert report.bars_present == 2148


def test_a_missing_week_in_daily_data_is_unexpected(goog_opens: list[int]) -> None:
    start, end = epoch(2010, 6, 14), epoch(2010, 6, 19)  # Mon 14 .. Fri 18 June 2010
    holed = [t for t in goog_opens if not start <= t < end]
    report = gap_report(holed, "1d")
    assert report.unexpected == [Gap("unexpected", utc(2010, 6, 14), utc(2010, 6, 19), 5)]
    assert report.missing_bars["holiday"] == 79  # the real holidays are still holidays


def test_holiday_length_is_settable(goog_opens: list[int]) -> None:
    strict = gap_report(goog_opens, "1d", MarketCalendar("weekdays", max_holiday_days=0))
    assert strict.missing_bars["holiday"] == 0
    assert strict.missing_bars["unexpected"] == 79
    assert strict.missing_bars["weekend"] == 890
    one_day = gap_report(goog_opens, "1d", MarketCalendar("weekdays", max_holiday_days=1))
    assert one_day.unexpected_total == 2  # the two-day closures (2007-01-01/02, Sandy)


def test_calling_daily_stocks_continuous_makes_weekends_unexpected(
    goog_opens: list[int],
) -> None:
    report = gap_report(goog_opens, "1d", calendar="24/7")
    assert report.calendar.kind == "continuous" and not report.calendar.inferred
    assert report.gap_counts["weekend"] == 0
    assert report.missing_bars["unexpected"] == 890 + 79
    assert report.unexpected_total == len(report.unexpected)


# --- real data: EURUSD hourly ----------------------------------------------------------


def test_eurusd_hourly_weekends_follow_the_fx_week(eurusd_opens: list[int]) -> None:
    report = gap_report(eurusd_opens, "1h")
    calendar = report.calendar
    assert calendar.kind == "weekdays"
    # FX closes Friday 21:00/22:00 UTC and opens Sunday 21:00/22:00 (summer/winter).
    assert calendar.weekend == ("Fri 21:00", "Sun 22:00")
    assert report.gap_counts["weekend"] == 42
    assert report.missing_bars["session_break"] == 0
    assert report.unexpected == []
    # Christmas Day and New Year's Day 2018 (Mondays): a whole FX day (22:00 to 22:00) missing.
    assert [(g.start, g.end, g.missing_bars) for g in report.holidays] == [
        (utc(2017, 12, 24, 22), utc(2017, 12, 25, 22), 24),
        (utc(2017, 12, 31, 22), utc(2018, 1, 1, 22), 24),
    ]


def test_a_hole_in_an_fx_week_is_reported_exactly(eurusd_opens: list[int]) -> None:
    start = epoch(2017, 9, 13, 10)  # a Wednesday
    holed = [t for t in eurusd_opens if not start <= t < start + 5 * HOUR]
    # A missing first bar of a winter week (Sunday 22:00) is a hole, not weekend. (In summer,
    # when the week opens at 21:00, a missing 21:00 bar falls inside the learnt weekend
    # window, which spans both DST regimes.)
    sunday_open = epoch(2017, 11, 12, 22)
    assert sunday_open in holed
    holed.remove(sunday_open)
    report = gap_report(holed, "1h")
    assert report.unexpected == [
        Gap("unexpected", utc(2017, 9, 13, 10), utc(2017, 9, 13, 15), 5),
        Gap("unexpected", utc(2017, 11, 12, 22), utc(2017, 11, 12, 23), 1),
    ]
    assert report.gap_counts["weekend"] == 42


# --- constructed 24/7 data -------------------------------------------------------------


def test_crypto_like_data_is_continuous_and_every_hole_is_unexpected() -> None:
    start = epoch(2024, 1, 1)  # a Monday
    opens = continuous_opens(start, start + 28 * DAY, HOUR)
    holes = [
        (epoch(2024, 1, 6, 3), 1),  # a Saturday: no weekend excuse for 24/7 markets
        (epoch(2024, 1, 10, 22), 4),  # across midnight
        (epoch(2024, 1, 20), 48),  # a whole weekend
    ]
    for hole_start, bars in holes:
        opens = [t for t in opens if not hole_start <= t < hole_start + bars * HOUR]
    report = gap_report(opens, "1h")
    assert report.calendar.kind == "continuous"
    assert "Saturdays" in report.calendar.reason
    assert [(g.start, g.missing_bars) for g in report.unexpected] == [
        (datetime.fromtimestamp(s, tz=UTC), n) for s, n in holes
    ]
    for gap in report.unexpected:
        assert (gap.end - gap.start).total_seconds() == gap.missing_bars * HOUR
    assert report.missing_bars == {
        "weekend": 0,
        "session_break": 0,
        "holiday": 0,
        "unexpected": 53,
    }


def test_complete_series_has_no_gaps() -> None:
    opens = continuous_opens(epoch(2024, 1, 1), epoch(2024, 1, 2), 300)
    report = gap_report(opens, "5m")
    assert sum(report.missing_bars.values()) == 0
    assert report.bars_present == 288
    assert report.first == utc(2024, 1, 1) and report.last == utc(2024, 1, 1, 23, 55)


def test_weekly_bars_are_continuous() -> None:
    mondays = [epoch(2024, 1, 1) + i * 7 * DAY for i in range(10) if i != 4]
    report = gap_report(mondays, "1w")
    assert report.calendar.kind == "continuous"
    assert report.unexpected == [Gap("unexpected", utc(2024, 1, 29), utc(2024, 2, 5), 1)]
    # Even for a market closed at weekends, a week without its bar is a hole.
    assert gap_report(mondays, "1w", "weekdays").unexpected == report.unexpected
    with pytest.raises(ValueError, match="sessions calendar needs intraday bars"):
        gap_report(mondays, "1w", "sessions")


# --- constructed session data (New York hours, with daylight saving time) -------------

HOLIDAYS_2023 = {date(2023, 7, 4), date(2023, 11, 23), date(2023, 11, 24), date(2023, 12, 25)}


@pytest.fixture(scope="module")
def nyse_30m() -> list[int]:
    return nyse_opens(date(2023, 1, 2), date(2024, 1, 31), 30, HOLIDAYS_2023)


def test_session_is_inferred_from_bar_open_times(nyse_30m: list[int]) -> None:
    calendar = infer_calendar(nyse_30m, "30m")
    assert calendar.kind == "sessions"
    # Winter 14:30-21:00 UTC, summer 13:30-20:00: the union, with the DST-only edges marked.
    assert calendar.session_hours == ("13:30-21:00",)
    assert calendar.edge_hours == ("13:30-14:30", "20:00-21:00")
    assert calendar.weekend == ("Fri 20:00", "Mon 14:30")


def test_session_data_breaks_weekends_and_holidays(nyse_30m: list[int]) -> None:
    report = gap_report(nyse_30m, "30m")
    assert report.calendar.kind == "sessions"
    # Across both DST switches, no overnight gap is mistaken for a hole.
    assert report.unexpected == []
    assert report.gap_counts["weekend"] == 56
    weekdays_between = 282  # trading weekdays 2023-01-02 .. 2024-01-31 without the holidays
    assert report.gap_counts["session_break"] == weekdays_between - report.gap_counts["weekend"]
    assert [(g.start.date(), g.missing_bars) for g in report.holidays] == [
        (date(2023, 7, 4), 11),
        (date(2023, 11, 23), 22),
        (date(2023, 12, 25), 11),
    ]


def test_a_hole_inside_a_session_is_unexpected(nyse_30m: list[int]) -> None:
    hole = epoch(2023, 9, 13, 15)  # 11:00 in New York
    holed = [t for t in nyse_30m if not hole <= t < hole + 3 * 1800]
    # A hole that runs from mid-session into the next morning is unexpected too. Summer
    # session, 13:30-20:00 UTC: 18:00-19:30 that day and 13:30-14:30 the next are missing.
    # 13:30 and 14:00 are DST edges (winter pre-open) next to the night, so they count as the
    # night: 4 + 1 in-session bars.
    late = epoch(2023, 3, 15, 18)
    holed = [t for t in holed if not late <= t < epoch(2023, 3, 16, 15)]
    report = gap_report(holed, "30m")
    assert [(g.start, g.end, g.missing_bars) for g in report.unexpected] == [
        (utc(2023, 3, 15, 18), utc(2023, 3, 16, 15), 5),
        (utc(2023, 9, 13, 15), utc(2023, 9, 13, 16, 30), 3),
    ]


def test_sessions_can_be_given(nyse_30m: list[int]) -> None:
    # Summer hours only: the winter-only 20:00-21:00 bars are then outside the session, and the
    # winter 13:30 bars are missing session bars with no DST edge to excuse them.
    summer = MarketCalendar("sessions", session_hours=("13:30-20:00",), weekend=None)
    report = gap_report(nyse_30m, "30m", summer)
    assert report.calendar.session_hours == ("13:30-20:00",)
    assert report.has_unexpected
    assert all(g.start.hour == 13 and g.missing_bars == 2 for g in report.unexpected[:5])


# --- the report as data ----------------------------------------------------------------


def test_report_is_json_ready_and_calendar_round_trips(nyse_30m: list[int]) -> None:
    report = gap_report(nyse_30m, "30m")
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    # Independence Day, summer session 13:30-20:00 UTC; its DST edge bars (13:30, 14:00)
    # count as the night, so the listed stretch is the session's core.
    assert data["holidays"][0] == {
        "kind": "holiday",
        "start": "2023-07-04T14:30:00Z",
        "end": "2023-07-04T20:00:00Z",
        "missing_bars": 11,
    }
    assert MarketCalendar.from_dict(data["calendar"]) == report.calendar
    assert "30m" in report.summary() and "holiday" in report.summary()


def test_listing_is_capped_but_counts_are_complete() -> None:
    opens = continuous_opens(epoch(2024, 1, 1), epoch(2024, 1, 3), HOUR)[::2]
    report = gap_report(opens, "1h", max_listed=5)
    assert len(report.unexpected) == 5
    assert report.unexpected_total == report.gap_counts["unexpected"] == 23


def test_datetimes_and_epochs_give_the_same_report() -> None:
    opens = [epoch(2024, 1, 1, h) for h in (0, 1, 5, 6)]
    as_datetimes = [datetime.fromtimestamp(t, tz=UTC) for t in opens]
    naive = [d.replace(tzinfo=None) for d in as_datetimes]
    reports = [gap_report(x, "1h").to_dict() for x in (opens, as_datetimes, naive)]
    assert reports[0] == reports[1] == reports[2]


@pytest.mark.parametrize(
    ("opens", "message"),
    [
        ([epoch(2024, 1, 1, 1), epoch(2024, 1, 1)], "strictly increase"),
        ([epoch(2024, 1, 1), epoch(2024, 1, 1)], "strictly increase"),
        ([epoch(2024, 1, 1, 0, 30)], "not a 1h bar open"),
    ],
)
def test_bad_inputs_are_rejected(opens: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gap_report(opens, "1h")


def test_bad_calendars_are_rejected() -> None:
    with pytest.raises(ValueError, match="valid: continuous"):
        gap_report([], "1h", calendar="stocks")
    with pytest.raises(ValueError, match="unknown calendar kind"):
        MarketCalendar("stocks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HH:MM"):
        MarketCalendar("sessions", session_hours=("9-17",))
    with pytest.raises(ValueError, match="no daily session"):
        gap_report(continuous_opens(epoch(2024, 1, 1), epoch(2024, 1, 20), HOUR), "1h", "sessions")
