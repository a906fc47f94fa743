"""Exchanges' official sessions: the exact gap report against the heuristic one on real data,
half days and lunch breaks in intraday bars, closed-day bars, and bars per year."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars
import pandas as pd
import pytest

from ktrdr_core.exchanges import EXCHANGE_ALIASES, EXCHANGES, UnknownExchange, exchange_code
from ktrdr_core.market_data.gaps import gap_report
from ktrdr_worker.calendars import resolve_calendar
from ktrdr_worker.sessions import SessionsError, exact_gap_report, exchange_year
from tests.support.market_data import packaged_csv

NEW_YORK = ZoneInfo("America/New_York")
REMOVED = date(2012, 5, 16)  # a Wednesday NYSE traded


def goog_opens(without: tuple[date, ...] = ()) -> list[int]:
    """Bar opens of GOOG's real daily bars (every NYSE session, 2004-08-19 .. 2013-03-01)."""
    frame = pd.read_csv(packaged_csv("GOOG.csv"), index_col=0, parse_dates=True)
    return [int(t.timestamp()) for t in frame.index.tz_localize("UTC") if t.date() not in without]


def nyse_hourly(first: date, last: date, *, holidays=(), early: dict[date, int] | None = None):
    """1h bar opens (ktrdr's grid, UTC) of a 09:30-16:00 New York session on weekdays; an
    ``early`` day closes at that hour. A bar opening 14:00 UTC holds the 14:30 open."""
    opens, day = [], first
    while day <= last:
        if day.weekday() < 5 and day not in holidays:
            start = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK)
            close = (early or {}).get(day, 16)
            end = datetime(day.year, day.month, day.day, close, tzinfo=NEW_YORK)
            t = int(start.timestamp()) // 3600 * 3600
            while t < end.timestamp():
                opens.append(t)
                t += 3600
        day += timedelta(days=1)
    return opens


def test_the_codes_core_lists_are_the_librarys():
    """The backend checks codes without the library: its list must be the library's."""
    assert list(EXCHANGES) == exchange_calendars.get_calendar_names(include_aliases=False)
    aliases = exchange_calendars.calendar_utils._default_calendar_aliases
    assert aliases == EXCHANGE_ALIASES


def test_an_unknown_exchange_names_the_close_matches():
    assert exchange_code("nasdaq") == "XNYS" and exchange_code(" xlon ") == "XLON"
    with pytest.raises(UnknownExchange, match=r"unknown exchange 'XLNO': did you mean XLON"):
        exchange_code("XLNO")
    with pytest.raises(UnknownExchange, match="did you mean"):
        exact_gap_report(goog_opens()[:10], "1d", "NYSX")


def test_a_removed_session_is_a_hole_to_the_exact_report_and_a_holiday_to_the_heuristic():
    opens = goog_opens(without=(REMOVED,))
    exact = exact_gap_report(opens, "1d", "XNYS")
    assert [(g.start.date(), g.end.date(), g.missing_bars) for g in exact.unexpected] == [
        (REMOVED, REMOVED + timedelta(days=1), 1)
    ]
    assert exact.sessions == exact.expected_bars == 2148 and exact.bars_present == 2147
    assert exact.missing_bars == 1 and exact.closed_day_bars_total == 0
    assert REMOVED not in exact.holidays

    heuristic = gap_report(opens, "1d")
    assert heuristic.unexpected_total == 0
    assert REMOVED in [g.start.date() for g in heuristic.holidays]
    assert heuristic.to_dict()["method"] == "heuristic"


def test_the_untouched_series_matches_nyse_exactly():
    exact = exact_gap_report(goog_opens(), "1d", "XNYS")
    assert exact.unexpected == [] and exact.missing_bars == 0
    # Closures a weekday rule cannot know: a state funeral, Hurricane Sandy's two days.
    assert {date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30)} <= set(exact.holidays)
    assert exact.early_closes == 17  # half days are sessions too, one daily bar each


def test_a_bar_on_a_closed_day_is_listed():
    memorial_day = int(datetime(2012, 5, 28, tzinfo=UTC).timestamp())
    opens = sorted([*goog_opens(), memorial_day])
    exact = exact_gap_report(opens, "1d", "XNYS")
    assert [(b.day, b.timestamp.date()) for b in exact.closed_day_bars] == [
        (date(2012, 5, 28), date(2012, 5, 28))
    ]
    assert exact.unexpected_total == 0


def test_a_us_half_day_in_hourly_data_is_not_a_hole():
    thanksgiving, black_friday = date(2023, 11, 23), date(2023, 11, 24)
    opens = nyse_hourly(date(2023, 11, 1), date(2023, 12, 8), holidays={thanksgiving},
                        early={black_friday: 13})  # fmt: skip
    on_friday = [t for t in opens if datetime.fromtimestamp(t, UTC).date() == black_friday]
    assert len(on_friday) == 4  # 14:00 .. 17:00 UTC: the session closes at 13:00 New York
    exact = exact_gap_report(opens, "1h", "XNYS")
    assert exact.missing_bars == 0 and exact.unexpected == []
    assert exact.early_closes == 1 and exact.closed_day_bars_total == 0
    assert exact.holidays == [thanksgiving]
    # The heuristic, for comparison, takes the closed afternoon of the half day for a hole.
    heuristic = gap_report(opens, "1h")
    afternoon = (datetime(2023, 11, 24, 18, tzinfo=UTC), datetime(2023, 11, 24, 21, tzinfo=UTC))
    assert afternoon in [(g.start, g.end) for g in heuristic.unexpected]

    # An hour missing from a regular session is one, named with its session.
    hole = datetime(2023, 12, 5, 16, tzinfo=UTC)
    gapped = exact_gap_report([t for t in opens if t != hole.timestamp()], "1h", "XNYS")
    assert [(g.start, g.missing_bars, g.first_session) for g in gapped.unexpected] == [
        (hole, 1, date(2023, 12, 5))
    ]


def test_after_hours_bars_are_counted_not_flagged():
    opens = nyse_hourly(date(2024, 3, 4), date(2024, 3, 8))
    late = [int(datetime(2024, 3, d, 22, tzinfo=UTC).timestamp()) for d in (4, 5)]
    exact = exact_gap_report(sorted(opens + late), "1h", "XNYS")
    assert exact.outside_hours_bars == 2 and exact.closed_day_bars_total == 0


def test_a_lunch_break_is_not_a_hole():
    # Hong Kong: 09:30-12:00 and 13:00-16:00 (UTC+8), so 1h bars 01..03 and 05..07 UTC.
    days = pd.bdate_range("2024-03-04", "2024-03-08")
    opens = [int((day + pd.Timedelta(hours=h)).timestamp()) for day in days
             for h in (1, 2, 3, 5, 6, 7)]  # fmt: skip
    exact = exact_gap_report(opens, "1h", "XHKG")
    assert exact.has_breaks and exact.missing_bars == 0 and exact.outside_hours_bars == 0
    without_lunch_end = [t for t in opens if t != opens[4]]  # 2024-03-04 06:00 UTC
    assert exact_gap_report(without_lunch_end, "1h", "XHKG").missing_bars == 1


def test_sessions_the_library_has_no_record_of_are_refused_clearly():
    with pytest.raises(SessionsError, match=r"XSHG: no sessions from 1985-01-02"):
        exact_gap_report([int(datetime(1985, 1, 2, tzinfo=UTC).timestamp())], "1d", "XSHG")


def test_bars_per_year_come_from_the_exchanges_sessions():
    opens = pd.to_datetime(goog_opens(), unit="s", utc=True)
    daily = exchange_year("XNYS", "1d", opens[0], opens[-1])
    assert daily.years == (2004, 2013) and daily.bars_per_year == pytest.approx(251.7)
    hourly = exchange_year("XNYS", "1h", opens[0], opens[-1])
    # 7 bars a full session, 4 on a half day: a little under 7 on average.
    assert 6.9 < hourly.bars_per_session < 7 and hourly.sessions_per_year == daily.bars_per_year
    # The backtest's annualisation takes the same number when the data names its exchange.
    named = resolve_calendar(pd.DatetimeIndex(opens), "1d", None, "XNYS")
    assert named.calendar == "exchange" and named.exchange == "XNYS"
    assert named.bars_per_year == daily.bars_per_year
    assert resolve_calendar(pd.DatetimeIndex(opens), "1d").bars_per_year == 252.0
    with pytest.raises(ValueError, match="contradicts the data's exchange XNYS"):
        resolve_calendar(pd.DatetimeIndex(opens), "1d", "24/7", "XNYS")
