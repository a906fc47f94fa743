"""Exchanges' official sessions: which bars they hold, the exact gap report, bars per year.

ktrdr's one reader of the ``exchange_calendars`` library (holidays, early closes and lunch
breaks of about 70 exchanges, in their own time zones). Everything that needs an exchange's
calendar comes through here, so a dataset has one calendar everywhere: its exact gap report
(:func:`exact_gap_report`, a ``gap_report`` operation), the annualisation of its backtests
(:func:`exchange_year`, through ``ktrdr_worker.calendars``) and, through the report's
``expected_bars``, the walk-forward embargo the backend plans in days.

Which bars a session holds (see :mod:`ktrdr_core.market_data.exact`): a daily bar opening at
00:00 UTC of the session's date; a weekly bar for each week (ktrdr's Monday grid) with a
session; and for intraday timeframes every bar of the grid that overlaps the trading time
from the open to the close less a lunch break: a 1h bar opening 14:00 UTC holds NYSE's
14:30 open, and a half day that closes 18:00 UTC holds the 14:00 to 17:00 bars only.

The library is imported by the functions that use it (it costs about half a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.errors import KtrdrError
from ktrdr_core.exchanges import exchange_code
from ktrdr_core.market_data.exact import ClosedDayBar, ExactGapReport, SessionGap
from ktrdr_core.timeframes import Timeframe, parse_timeframe

__all__ = [
    "MAX_LISTED",
    "ExchangeYear",
    "SessionsError",
    "exact_gap_report",
    "exchange_year",
]

MAX_LISTED = 200
"""Stretches of missing bars (and holidays, closed-day bars) a report lists; all are counted."""

_DAY = 86_400
_WEEK = 7 * _DAY


class SessionsError(KtrdrError, ValueError):
    """An exchange's sessions cannot be had for the range asked (the library has no record
    that far back); the message says which exchange, which range, and what to do."""


def _library() -> Any:
    import exchange_calendars

    return exchange_calendars


def library_version() -> str:
    """``exchange_calendars <version>``: what the sessions come from, for reports."""
    from importlib.metadata import version

    return f"exchange_calendars {version('exchange-calendars')}"


def _calendar(code: str, first: date, last: date) -> Any:
    """The library's calendar of ``code`` covering ``first`` .. ``last`` (a day either side,
    for sessions that open on the previous UTC day)."""
    xcals = _library()
    try:
        return xcals.get_calendar(
            code,
            start=(first - timedelta(days=1)).isoformat(),
            end=(last + timedelta(days=2)).isoformat(),
        )
    except ValueError:
        pass
    try:  # the library's records may start on the very first day
        return xcals.get_calendar(
            code, start=first.isoformat(), end=(last + timedelta(days=2)).isoformat()
        )
    except ValueError as exc:
        raise SessionsError(
            f"{code}: no sessions from {first} to {last}: {exc} Check from a later date on, or "
            "name no exchange (the heuristic report then guesses the calendar)"
        ) from None


def _epochs(column: pd.Series) -> np.ndarray:
    """A schedule column of UTC times as epoch seconds (NaT -> -1)."""
    values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[s]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = -1
    return out


@dataclass(frozen=True)
class _Slots:
    """Expected bar opens (epoch s, increasing) and the session (index into ``sessions``)
    each belongs to."""

    opens: np.ndarray
    session_of: np.ndarray
    sessions: pd.DatetimeIndex


def _slots(calendar: Any, tf: Timeframe) -> _Slots:
    """Every bar of ``tf`` the calendar's sessions hold, over its whole range."""
    schedule = calendar.schedule
    sessions = pd.DatetimeIndex(schedule.index)
    labels = sessions.to_numpy("datetime64[s]").astype(np.int64)  # 00:00 UTC of each date
    if tf is Timeframe.D1:
        return _Slots(labels, np.arange(len(labels)), sessions)
    if tf is Timeframe.W1:
        weeks = labels - (labels - tf.origin) % _WEEK
        opens, first = np.unique(weeks, return_index=True)
        return _Slots(opens, first, sessions)
    step = tf.seconds
    opens, closes = _epochs(schedule["open"]), _epochs(schedule["close"])
    breaks = _epochs(schedule["break_start"]), _epochs(schedule["break_end"])
    has_break = breaks[0] >= 0
    # Trading intervals [a, b): the whole session, or its morning and afternoon.
    a = np.concatenate([opens, breaks[1][has_break]])
    b = np.concatenate([np.where(has_break, breaks[0], closes), closes[has_break]])
    owner = np.concatenate([np.arange(len(opens)), np.flatnonzero(has_break)])
    first_slot = a - a % step
    counts = np.maximum(-(-b // step) - a // step, 0)  # grid bars overlapping [a, b)
    starts = np.repeat(first_slot, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = starts + offsets * step
    session_of = np.repeat(owner, counts)
    order = np.argsort(slots, kind="stable")
    opens_sorted, first = np.unique(slots[order], return_index=True)
    return _Slots(opens_sorted, session_of[order][first], sessions)


def _as_epochs(timestamps: Sequence[int] | np.ndarray | pd.DatetimeIndex) -> np.ndarray:
    if isinstance(timestamps, pd.DatetimeIndex):
        index = timestamps if timestamps.tz is not None else timestamps.tz_localize("UTC")
        return index.tz_convert("UTC").as_unit("s").asi8.astype(np.int64)
    return np.asarray(timestamps, dtype=np.int64)


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=UTC)


def exact_gap_report(
    timestamps: Sequence[int] | np.ndarray | pd.DatetimeIndex,
    timeframe: Timeframe | str,
    exchange: str,
    *,
    max_listed: int = MAX_LISTED,
) -> ExactGapReport:
    """Check bar opens (epoch seconds or a DatetimeIndex, UTC, increasing, at least one) of
    ``timeframe`` against the sessions of ``exchange``, from the first bar to the last.

    Every bar those sessions hold that the data lacks is unexpected (consecutive ones form
    one listed stretch); every bar on a day without a session is listed; bars on a session's
    day outside its hours are counted. Raises UnknownExchange (naming close matches) or
    SessionsError.
    """
    tf = parse_timeframe(timeframe)
    code = exchange_code(exchange)
    present = _as_epochs(timestamps)
    if present.size == 0:
        raise ValueError("an exact gap report needs at least one bar")
    lo, hi = int(present[0]), int(present[-1])
    calendar = _calendar(code, _utc(lo).date(), _utc(hi).date())
    slots = _slots(calendar, tf)
    in_span = (slots.opens >= lo) & (slots.opens <= hi)
    expected, owner = slots.opens[in_span], slots.session_of[in_span]
    sessions = slots.sessions

    missing_at = np.flatnonzero(~np.isin(expected, present, assume_unique=True))
    runs = np.split(missing_at, np.flatnonzero(np.diff(missing_at) != 1) + 1)
    runs = [run for run in runs if run.size]
    step = tf.seconds
    unexpected = [
        SessionGap(
            start=_utc(expected[run[0]]),
            end=_utc(expected[run[-1]] + step),
            missing_bars=int(run.size),
            first_session=sessions[owner[run[0]]].date(),
            last_session=sessions[owner[run[-1]]].date(),
            sessions=int(np.unique(owner[run]).size),
        )
        for run in runs[:max_listed]
    ]

    # Bars the sessions do not hold: on a closed day, or outside a session day's hours.
    extra = present[~np.isin(present, expected, assume_unique=True)]
    tz = calendar.tz
    if tf.is_intraday:
        days = pd.to_datetime(extra, unit="s", utc=True).tz_convert(tz).tz_localize(None)
        days = days.normalize()
    else:  # a daily bar is its date; a weekly one its Monday
        days = pd.to_datetime(extra, unit="s")
    session_days = sessions.normalize()
    closed = ~days.isin(session_days) if tf is not Timeframe.W1 else np.ones(extra.size, bool)
    closed_bars = [
        ClosedDayBar(timestamp=_utc(t), day=d.date())
        for t, d in zip(extra[closed][:max_listed], days[closed][:max_listed], strict=True)
    ]

    span_sessions = np.unique(owner)
    first_day = (sessions[span_sessions[0]] if span_sessions.size else days[0]).date()
    last_day = (sessions[span_sessions[-1]] if span_sessions.size else days[-1]).date()
    trading_days = pd.bdate_range(first_day, last_day, freq="C", weekmask=calendar.weekmask)
    holidays = trading_days.difference(session_days)
    in_span_sessions = sessions[span_sessions]
    early = pd.DatetimeIndex(calendar.early_closes).intersection(in_span_sessions)
    span_schedule = calendar.schedule.iloc[span_sessions] if span_sessions.size else None
    has_breaks = bool(
        span_schedule is not None and tf.is_intraday and span_schedule["break_start"].notna().any()
    )
    return ExactGapReport(
        exchange=code,
        timezone=str(tz),
        library=library_version(),
        timeframe=tf.value,
        first=_utc(lo),
        last=_utc(hi),
        bars_present=int(present.size),
        sessions=int(span_sessions.size),
        expected_bars=int(expected.size),
        missing_bars=int(missing_at.size),
        early_closes=len(early),
        has_breaks=has_breaks,
        unexpected=unexpected,
        unexpected_total=len(runs),
        holidays=[d.date() for d in holidays[:max_listed]],
        holidays_total=len(holidays),
        closed_day_bars=closed_bars,
        closed_day_bars_total=int(closed.sum()),
        outside_hours_bars=int(extra.size - closed.sum()),
        max_listed=max_listed,
    )


@dataclass(frozen=True)
class ExchangeYear:
    """How many bars a year of ``exchange`` holds for a timeframe: the bars its sessions
    hold over the whole calendar years ``years`` spans, per year; ``bars_per_session`` is
    their average per session (intraday timeframes only, else None)."""

    exchange: str
    bars_per_year: float
    bars_per_session: float | None
    sessions_per_year: float
    years: tuple[int, int]


def exchange_year(
    exchange: str, timeframe: Timeframe | str, first: datetime, last: datetime
) -> ExchangeYear:
    """Bars per year for annualising a series of ``timeframe`` on ``exchange`` from ``first``
    to ``last``: the exchange's sessions over the whole calendar years from ``first``'s to
    ``last``'s (so a month of data is annualised by its year's sessions, not by itself).
    Weekly bars: 365.25 / 7 a year, whatever the exchange (ktrdr's one rule for them)."""
    tf = parse_timeframe(timeframe)
    code = exchange_code(exchange)
    y0, y1 = first.year, last.year
    calendar = _calendar(code, date(y0, 1, 1), date(y1, 12, 31))
    slots = _slots(calendar, tf)
    lo = int(datetime(y0, 1, 1, tzinfo=UTC).timestamp())
    hi = int(datetime(y1 + 1, 1, 1, tzinfo=UTC).timestamp())
    years = y1 - y0 + 1
    labels = slots.sessions.to_numpy("datetime64[s]").astype(np.int64)
    sessions = int(((labels >= lo) & (labels < hi)).sum())
    if tf is Timeframe.W1:
        return ExchangeYear(code, 365.25 * _DAY / tf.seconds, None, sessions / years, (y0, y1))
    bars = int(((slots.opens >= lo) & (slots.opens < hi)).sum())
    per_session = bars / sessions if tf.is_intraday and sessions else None
    return ExchangeYear(code, bars / years, per_session, sessions / years, (y0, y1))
