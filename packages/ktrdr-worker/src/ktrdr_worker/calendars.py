"""Trading calendars: how many bars a year holds, for a timeframe and a market's hours.

Annualising a per-bar statistic (volatility, Sharpe, Sortino) needs the number of bars in a
year, and that depends on both the bar size and when the market trades: a 1h series of a
24/7 crypto market holds 8,760 bars a year, a 1h series of a 24h-on-weekdays FX market
6,240, and a 1h series of a US stock (6.5 h sessions) about 252 × 7 = 1,764. Using √252
whatever the bar size was one of the old system's bugs.

Three calendars:

- ``"24/7"`` — trades every day around the clock (crypto): 365 days a year.
- ``"weekdays"`` — trades around the clock Monday to Friday (FX, index futures): 260 days a year.
- ``"exchange"`` — trades in sessions on exchange days (stocks): 252 sessions a year, and for
  intraday bars as many bars per session as the data holds (the median number of bars per
  UTC date), so a 1h series of 09:30–16:00 sessions counts 7 bars per session.

Bars per year for a timeframe of ``tf`` seconds:

- ``tf`` shorter than a day: ``days_per_year × 86 400 / tf`` for ``24/7`` and ``weekdays``,
  ``252 × bars_per_session`` for ``exchange``;
- ``tf`` from one day to under a week: ``days_per_year × 86 400 / tf`` (365, 260 or 252 daily bars);
- ``tf`` of a week or longer: ``365.25 × 86 400 / tf`` whatever the calendar (52.18 weekly bars).

``resolve_calendar`` infers the timeframe and calendar from a bar index when they are not
given (see its docstring for the rules); each can be set explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ktrdr_core.timeframes import Timeframe, parse_timeframe

__all__ = [
    "CALENDARS",
    "CalendarName",
    "TradingCalendar",
    "bars_per_year",
    "infer_calendar",
    "infer_timeframe_seconds",
    "resolve_calendar",
]

CalendarName = Literal["24/7", "weekdays", "exchange"]
CALENDARS: tuple[str, ...] = ("24/7", "weekdays", "exchange")

# Trading days per year for each calendar (conventions: 365 for crypto, 52 × 5 for FX,
# 252 NYSE sessions for stocks).
DAYS_PER_YEAR: dict[str, float] = {"24/7": 365.0, "weekdays": 260.0, "exchange": 252.0}

_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_NS = 1_000_000_000
# Share of weekend bars above which a series is taken as 24/7: a 24/7 market has 2/7 of its
# bars on Saturday and Sunday; FX has a few Sunday-evening bars (about 2 %).
_WEEKEND_SHARE_24_7 = 0.5 * 2 / 7
# A weekday intraday series whose days hold at least this many hours of bars trades around the
# clock (FX); shorter days are exchange sessions.
_ROUND_THE_CLOCK_HOURS = 20.0
# A daily weekday series that covers at least this share of Monday–Friday dates has no exchange
# holidays (FX daily); stocks miss about 9 of 261 weekdays a year (96.5 %).
_WEEKDAY_COVERAGE = 0.985


@dataclass(frozen=True)
class TradingCalendar:
    """The annualisation basis of one bar series.

    Attributes:
        timeframe_seconds: bar duration in seconds.
        timeframe: the ktrdr timeframe name (``"1h"``) when the duration is one, else ``"<n>s"``.
        calendar: ``"24/7"``, ``"weekdays"`` or ``"exchange"``.
        bars_per_year: bars in one year of this market (used for annualising).
        bars_per_session: bars per exchange session for intraday ``exchange`` series, else None.
        inferred: which of ``"timeframe"``, ``"calendar"`` were inferred from the data.
    """

    timeframe_seconds: int
    timeframe: str
    calendar: str
    bars_per_year: float
    bars_per_session: float | None
    inferred: tuple[str, ...]


def _epoch_ns(index: pd.DatetimeIndex) -> np.ndarray:
    # Work on int64 nanoseconds: pandas' per-field accessors are ~10× slower on 1M bars.
    return index.as_unit("ns").asi8


def _sample(values: np.ndarray) -> np.ndarray:
    # Shares and medians over at most ~100k evenly spaced elements: as good as the full
    # series for these estimates, and 10× cheaper on a million bars.
    stride = max(1, len(values) // _SAMPLE)
    return values[::stride]


_SAMPLE = 100_000


def infer_timeframe_seconds(index: pd.DatetimeIndex) -> int:
    """Bar duration in seconds, read from an index of bar open times.

    The median spacing between consecutive bars (over up to ~100k evenly spaced pairs): gaps
    (nights, weekends, holidays) are the minority of spacings in any real series, so the
    median is the bar size. Raises ``ValueError`` for fewer than two bars or a
    non-increasing index.
    """
    if len(index) < 2:
        raise ValueError("cannot infer the timeframe from fewer than 2 bars; set it explicitly")
    ns = _epoch_ns(index)
    stride = max(1, (len(ns) - 1) // _SAMPLE)
    spacing = ns[1::stride] - ns[:-1:stride]
    step = int(np.median(spacing)) // _NS
    if step <= 0:
        raise ValueError("cannot infer the timeframe: the index is not strictly increasing")
    return step


def _bars_per_utc_date(ns: np.ndarray) -> float:
    days = ns // (_DAY_S * _NS)
    # Sorted index: a date's bars are one run, so run lengths are the counts per date.
    starts = np.flatnonzero(np.diff(days)) + 1
    bounds = np.concatenate(([0], starts, [len(days)]))
    return float(np.median(np.diff(bounds)))


def infer_calendar(index: pd.DatetimeIndex, timeframe_seconds: int) -> str:
    """Which calendar a bar series trades on, read from its open times (UTC).

    Rules, in order:

    1. weekly or longer bars: ``"24/7"`` (the calendar does not change their bars per year);
    2. more than 1/7 of the bars (of up to ~100k evenly spaced ones) open on Saturday or
       Sunday: ``"24/7"``;
    3. intraday bars whose UTC dates hold at least 20 h of bars (median): ``"weekdays"``,
       else ``"exchange"``;
    4. daily bars covering at least 98.5 % of the Monday–Friday dates of their span:
       ``"weekdays"`` (no exchange holidays), else ``"exchange"``.
    """
    if timeframe_seconds >= _WEEK_S:
        return "24/7"
    ns = _epoch_ns(index)
    # 1970-01-01 was a Thursday: (days + 3) % 7 counts from Monday = 0.
    weekday = (_sample(ns) // (_DAY_S * _NS) + 3) % 7
    if float(np.mean(weekday >= 5)) > _WEEKEND_SHARE_24_7:
        return "24/7"
    if timeframe_seconds < _DAY_S:
        hours_per_date = _bars_per_utc_date(ns) * timeframe_seconds / 3600.0
        return "weekdays" if hours_per_date >= _ROUND_THE_CLOCK_HOURS else "exchange"
    first = index[0].date()
    last = index[-1].date()
    weekdays_in_span = int(np.busday_count(first, last)) + 1
    coverage = len(index) * (timeframe_seconds / _DAY_S) / weekdays_in_span
    return "weekdays" if coverage >= _WEEKDAY_COVERAGE else "exchange"


def bars_per_year(
    timeframe_seconds: int, calendar: str, bars_per_session: float | None = None
) -> float:
    """Bars in one year for a bar size (seconds) and calendar; the rules are in the module doc.

    ``bars_per_session`` is needed only for intraday bars on the ``"exchange"`` calendar.
    """
    if calendar not in DAYS_PER_YEAR:
        raise ValueError(f"unknown calendar {calendar!r}; valid calendars are: {CALENDARS}")
    if timeframe_seconds <= 0:
        raise ValueError(f"timeframe must be a positive number of seconds, got {timeframe_seconds}")
    if timeframe_seconds >= _WEEK_S:
        return 365.25 * _DAY_S / timeframe_seconds
    days = DAYS_PER_YEAR[calendar]
    if timeframe_seconds < _DAY_S and calendar == "exchange":
        if bars_per_session is None or bars_per_session <= 0:
            raise ValueError("intraday bars on the 'exchange' calendar need bars_per_session (> 0)")
        return days * bars_per_session
    return days * _DAY_S / timeframe_seconds


def _timeframe_name(seconds: int) -> str:
    for tf in Timeframe:
        if tf.seconds == seconds:
            return tf.value
    return f"{seconds}s"


def resolve_calendar(
    index: pd.DatetimeIndex,
    timeframe: str | None = None,
    calendar: str | None = None,
) -> TradingCalendar:
    """Work out the annualisation basis of a bar series.

    Args:
        index: bar open times (UTC, increasing); at least 2 bars when anything is inferred.
        timeframe: a ktrdr timeframe name (``"1h"``), or None to infer it from the index.
        calendar: ``"24/7"``, ``"weekdays"``, ``"exchange"``, or None / ``"auto"`` to infer it.

    Returns the ``TradingCalendar`` (timeframe, calendar, bars per year). Raises ``ValueError``
    for an unknown timeframe or calendar name.
    """
    inferred: list[str] = []
    if timeframe is None:
        tf_s = infer_timeframe_seconds(index)
        inferred.append("timeframe")
    else:
        tf_s = parse_timeframe(timeframe).seconds
    if calendar is None or calendar == "auto":
        cal = infer_calendar(index, tf_s)
        inferred.append("calendar")
    elif calendar in CALENDARS:
        cal = calendar
    else:
        raise ValueError(
            f"unknown calendar {calendar!r}; valid calendars are: 'auto', "
            + ", ".join(repr(c) for c in CALENDARS)
        )
    per_session: float | None = None
    if cal == "exchange" and tf_s < _DAY_S:
        per_session = _bars_per_utc_date(_epoch_ns(index))
    return TradingCalendar(
        timeframe_seconds=tf_s,
        timeframe=_timeframe_name(tf_s),
        calendar=cal,
        bars_per_year=bars_per_year(tf_s, cal, per_session),
        bars_per_session=per_session,
        inferred=tuple(inferred),
    )
