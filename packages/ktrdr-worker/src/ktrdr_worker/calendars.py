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
given, by ktrdr's one rule for each (``ktrdr_core.timeframes.bar_seconds`` and
``ktrdr_core.market_data.gaps.annualisation_calendar``); each can be set explicitly.

When the data names its exchange, nothing is inferred or assumed about its year: bars per
year are the bars the exchange's official sessions hold in an average year of the data's
span (``ktrdr_worker.sessions.exchange_year``: its holidays, half days and lunch breaks
counted), on the ``"exchange"`` calendar; ``TradingCalendar.exchange`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ktrdr_core.market_data.gaps import annualisation_calendar
from ktrdr_core.timeframes import bar_seconds, parse_timeframe, timeframe_named

__all__ = [
    "CALENDARS",
    "CalendarName",
    "TradingCalendar",
    "bars_per_year",
    "infer_calendar",
    "infer_timeframe_seconds",
    "resolve_calendar",
    "timeframe_name",
]

CalendarName = Literal["24/7", "weekdays", "exchange"]
CALENDARS: tuple[str, ...] = ("24/7", "weekdays", "exchange")

# Trading days per year for each calendar (conventions: 365 for crypto, 52 × 5 for FX,
# 252 NYSE sessions for stocks).
DAYS_PER_YEAR: dict[str, float] = {"24/7": 365.0, "weekdays": 260.0, "exchange": 252.0}

_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_NS = 1_000_000_000


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
        exchange: the exchange whose official sessions gave ``bars_per_year`` (None: the
            calendar's convention, 252 sessions for ``"exchange"``).
    """

    timeframe_seconds: int
    timeframe: str
    calendar: str
    bars_per_year: float
    bars_per_session: float | None
    inferred: tuple[str, ...]
    exchange: str | None = None


def _epoch_ns(index: pd.DatetimeIndex) -> np.ndarray:
    # Work on int64 nanoseconds: pandas' per-field accessors are ~10× slower on 1M bars.
    return index.as_unit("ns").asi8


_SAMPLE = 100_000


def infer_timeframe_seconds(index: pd.DatetimeIndex) -> int:
    """Bar duration in seconds, read from an index of bar open times: ktrdr's one rule,
    :func:`ktrdr_core.timeframes.bar_seconds` (the median spacing), over up to ~100k evenly
    spaced pairs. Raises ``ValueError`` for fewer than two bars or a non-increasing index.
    """
    ns = _epoch_ns(index)
    stride = max(1, (len(ns) - 1) // _SAMPLE)
    spacing = (ns[1::stride] - ns[:-1:stride]) // _NS
    return bar_seconds(spacing.tolist())


def _bars_per_utc_date(ns: np.ndarray) -> float:
    days = ns // (_DAY_S * _NS)
    # Sorted index: a date's bars are one run, so run lengths are the counts per date.
    starts = np.flatnonzero(np.diff(days)) + 1
    bounds = np.concatenate(([0], starts, [len(days)]))
    return float(np.median(np.diff(bounds)))


def infer_calendar(index: pd.DatetimeIndex, timeframe_seconds: int) -> str:
    """Which calendar a bar series trades on, read from its open times (UTC): weekly or
    longer bars ``"24/7"`` (the calendar does not change their bars per year), else ktrdr's
    one calendar rule, :func:`ktrdr_core.market_data.gaps.annualisation_calendar` (the gap
    report's :func:`~ktrdr_core.market_data.gaps.infer_calendar`, mapped to a year).

    Raises ``ValueError`` for a bar size that is no ktrdr timeframe (set the calendar then).
    """
    if timeframe_seconds >= _WEEK_S:
        return "24/7"
    named = timeframe_named(timeframe_seconds)
    if named is None:
        raise ValueError(
            f"cannot infer the calendar of {timeframe_seconds}-second bars, which are no ktrdr "
            "timeframe: set backtest.calendar"
        )
    return annualisation_calendar((_epoch_ns(index) // _NS).tolist(), named)


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


def timeframe_name(seconds: int) -> str:
    """The ktrdr timeframe name of a bar duration (``"1h"``), else ``"<n>s"``."""
    named = timeframe_named(seconds)
    return named.value if named is not None else f"{seconds}s"


def resolve_calendar(
    index: pd.DatetimeIndex,
    timeframe: str | None = None,
    calendar: str | None = None,
    exchange: str | None = None,
) -> TradingCalendar:
    """Work out the annualisation basis of a bar series.

    Args:
        index: bar open times (UTC, increasing); at least 2 bars when anything is inferred.
        timeframe: a ktrdr timeframe name (``"1h"``), or None to infer it from the index.
        calendar: ``"24/7"``, ``"weekdays"``, ``"exchange"``, or None / ``"auto"`` to infer it.
        exchange: the exchange the data trades on (an exchange code, ``"XNYS"``): its
            sessions give the bars per year; ``calendar`` must then be None, ``"auto"`` or
            ``"exchange"``.

    Returns the ``TradingCalendar`` (timeframe, calendar, bars per year). Raises ``ValueError``
    for an unknown timeframe, calendar or exchange, or a calendar contradicting the exchange.
    """
    inferred: list[str] = []
    if timeframe is None:
        tf_s = infer_timeframe_seconds(index)
        inferred.append("timeframe")
    else:
        tf_s = parse_timeframe(timeframe).seconds
    if exchange is not None:
        return _exchange_calendar(index, tf_s, calendar, exchange, tuple(inferred))
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
        timeframe=timeframe_name(tf_s),
        calendar=cal,
        bars_per_year=bars_per_year(tf_s, cal, per_session),
        bars_per_session=per_session,
        inferred=tuple(inferred),
    )


def _exchange_calendar(
    index: pd.DatetimeIndex,
    tf_s: int,
    calendar: str | None,
    exchange: str,
    inferred: tuple[str, ...],
) -> TradingCalendar:
    from ktrdr_worker.sessions import exchange_year

    if calendar not in (None, "auto", "exchange"):
        raise ValueError(
            f"calendar {calendar!r} contradicts the data's exchange {exchange}, whose sessions "
            "annualise it: leave the calendar out (or 'auto'), or set bars_per_year"
        )
    named = timeframe_named(tf_s)
    if named is None:
        raise ValueError(
            f"{tf_s}-second bars are no ktrdr timeframe: {exchange}'s sessions cannot count them"
        )
    if len(index) == 0:
        raise ValueError("annualising by an exchange's sessions needs at least one bar")
    year = exchange_year(exchange, named, index[0].to_pydatetime(), index[-1].to_pydatetime())
    return TradingCalendar(
        timeframe_seconds=tf_s,
        timeframe=named.value,
        calendar="exchange",
        bars_per_year=year.bars_per_year,
        bars_per_session=year.bars_per_session,
        inferred=inferred,
        exchange=year.exchange,
    )
