"""Gap reports: which bars are missing, and which of those a market calendar explains.

``gap_report(timestamps, timeframe)`` compares bar opens against the timeframe's grid and sorts
every missing bar into one of four kinds:

- ``weekend``: inside the weekly closure of a market that closes at weekends (from the Friday
  close to the Sunday/Monday open, as seen in the data);
- ``session_break``: outside the daily trading session of a session-based intraday market
  (overnight, lunch breaks), including session edges that move with daylight saving time;
- ``holiday``: a whole trading day (or up to ``max_holiday_days`` of them) missing on weekdays,
  for example 2024-12-25 in daily stock data;
- ``unexpected``: everything else — holes in the data that nothing explains.

Nothing is ever filled in: the report only describes. It is small, JSON-ready
(``to_dict``) and computed with the standard library, so the backend serves it.

It is a heuristic, and says so (``"method": "heuristic"`` and the calendar it guessed): a
single missing weekday looks like a holiday to it. When a dataset names its exchange, a
worker also checks the bars against that exchange's official sessions
(:mod:`ktrdr_core.market_data.exact`), which a heuristic cannot know.

Calendars
---------
``MarketCalendar.kind`` is one of

- ``continuous``: trades around the clock, every day (crypto). Every missing bar is unexpected.
- ``weekdays``: trades around the clock on weekdays, closed at weekends (spot FX, or any daily
  stock data). Missing weekend bars are ``weekend``; a missing whole weekday is ``holiday``.
- ``sessions``: trades in a daily session on weekdays (intraday stock data). Bars outside the
  session are ``session_break``; a missing whole session is ``holiday``.

By default the calendar is inferred from the data (see ``infer_calendar``): bars on most
Saturdays → continuous; otherwise weekday bar-open times covering (nearly) the whole day →
weekdays, else sessions, with the session taken as the set of bar-open times of day that
occur on weekdays. The weekly closure is learnt from the data's own weekend gaps, so an
FX week that closes Friday 21:00 UTC and opens Sunday 21:00 UTC is a weekend, not a hole.
Pass ``calendar=`` (a kind name or a ``MarketCalendar``) to override what is inferred.

Heuristics, stated plainly: a session time of day that trades on under 80 % of the days
that trade most often is an "edge" (daylight saving time moves session edges by an hour in
UTC); a missing edge bar next to a session break counts as that break. A holiday is a
stretch of missing in-hours bars of 0.75 to ``max_holiday_days`` + 0.25 typical trading
days; in a ``sessions`` calendar it must also start and end at session boundaries. An early
close (half day) is therefore reported as ``unexpected``.
"""

from __future__ import annotations

import operator
import statistics
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import compress, count, islice, pairwise, repeat
from typing import Any, Literal

from ktrdr_core.timeframes import Timeframe, parse_timeframe

__all__ = [
    "CLOSURE_SLACK",
    "GAP_KINDS",
    "CalendarKind",
    "Gap",
    "GapKind",
    "GapReport",
    "MarketCalendar",
    "annualisation_calendar",
    "gap_report",
    "infer_calendar",
]

GapKind = Literal["weekend", "session_break", "holiday", "unexpected"]

CLOSURE_SLACK = timedelta(days=10)
"""How far a series may start after, or end before, a period asked of it and still cover it:
a market closes for weekends and holidays, and its longest regular closures (a holiday week)
last under ten days, so a shorter stretch at either end is no missing data. The one rule for
"does this data cover that period" (the backend's refusals, a portfolio's shared window)."""
CalendarKind = Literal["continuous", "weekdays", "sessions"]
GAP_KINDS: tuple[str, ...] = ("weekend", "session_break", "holiday", "unexpected")
_CALENDAR_ALIASES = {
    "continuous": "continuous",
    "24/7": "continuous",
    "weekdays": "weekdays",
    "sessions": "sessions",
}

_DAY = 86_400
_WEEK = 7 * _DAY
_MONDAY0 = 4 * _DAY  # 1970-01-05, a Monday: weeks are counted from there
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DEFAULT_WEEKEND = (5 * _DAY, 7 * _DAY)  # Saturday 00:00 to Monday 00:00

# Internal segment classes while walking a gap.
_IN, _EDGE, _OUT, _WEEKEND = "in", "edge", "out", "weekend"


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hhmm(tod: int) -> str:
    return f"{tod // 3600:02d}:{tod % 3600 // 60:02d}"


def _parse_hhmm(text: str) -> int:
    try:
        hh, mm = text.strip().split(":")
        hour, minute = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"session time {text!r} is not HH:MM") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"session time {text!r} is out of range 00:00..23:59")
    return hour * 3600 + minute * 60


def _parse_hours(text: str) -> list[tuple[int, int]]:
    """``"13:30-20:00"`` -> [(start, end)] seconds of day, end exclusive; wraps past midnight."""
    try:
        start_text, end_text = text.split("-")
    except ValueError:
        raise ValueError(f"hours {text!r} are not like '13:30-20:00'") from None
    start = _parse_hhmm(start_text)
    end = _DAY if end_text.strip() == "24:00" else _parse_hhmm(end_text)
    if start == end:
        raise ValueError(f"hours {text!r} are empty")
    return [(start, end)] if start < end else [(start, _DAY), (0, end)]


def _hours_text(tods: list[int], step: int) -> tuple[str, ...]:
    """Sorted bar-open times of day -> ("HH:MM-HH:MM", ...) ranges of bar opens, end exclusive."""
    ranges: list[list[int]] = []
    for tod in tods:
        if ranges and ranges[-1][1] == tod:
            ranges[-1][1] = tod + step
        else:
            ranges.append([tod, tod + step])
    if len(ranges) > 1 and ranges[0][0] == 0 and ranges[-1][1] == _DAY:
        # One session across midnight reads better as one range.
        ranges[0][0] = ranges.pop()[0]
    return tuple(f"{_hhmm(s)}-{'24:00' if e == _DAY else _hhmm(e % _DAY)}" for s, e in ranges)


def _in_hours(tod: int, hours: list[tuple[int, int]]) -> bool:
    return any(s <= tod < e for s, e in hours)


def _week_time_text(tow: int) -> str:
    day, tod = divmod(tow, _DAY)
    return f"{_DAY_NAMES[day % 7]} {_hhmm(tod)}"


def _parse_week_time(text: str) -> int:
    """``"Fri 21:00"`` -> seconds after Monday 00:00 (0 .. one week)."""
    parts = text.split()
    if len(parts) != 2 or parts[0][:3].title() not in _DAY_NAMES:
        raise ValueError(f"weekend bound {text!r} is not like 'Fri 21:00'")
    return _DAY_NAMES.index(parts[0][:3].title()) * _DAY + _parse_hhmm(parts[1])


@dataclass(frozen=True)
class MarketCalendar:
    """When a market trades, as far as gap classification needs to know.

    ``kind``: ``continuous`` | ``weekdays`` | ``sessions`` (see the module docstring).
    ``session_hours``: for ``sessions``, the ranges of bar-open times of day (UTC) inside the
    session, as ``"HH:MM-HH:MM"`` with an exclusive end (``"14:30-21:00"``: bars opening
    14:30 … 20:30 on 30m data); a range may wrap past midnight. Empty means "infer".
    ``edge_hours``: parts of the session that trade on only some of the days (edges moved by
    daylight saving time); a missing edge bar next to a session break counts as that break.
    ``weekend``: the weekly closure as ``("Fri 21:00", "Sun 21:00")`` — from the first missing
    bar open to the first bar open after the weekend, UTC; ``None`` means infer from the data
    (Saturday 00:00 to Monday 00:00 when the data has no weekend to learn from).
    ``max_holiday_days``: a missing stretch of up to this many whole trading days is a
    holiday; longer ones are unexpected.
    ``inferred`` and ``reason`` say how the calendar was chosen.
    """

    kind: CalendarKind
    session_hours: tuple[str, ...] = ()
    edge_hours: tuple[str, ...] = ()
    weekend: tuple[str, str] | None = None
    max_holiday_days: int = 2
    inferred: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "weekdays", "sessions"):
            raise ValueError(
                f"unknown calendar kind {self.kind!r}; valid kinds are: "
                "continuous (or 24/7), weekdays, sessions"
            )
        for text in self.session_hours + self.edge_hours:
            _parse_hours(text)
        if self.weekend is not None:
            for text in self.weekend:
                _parse_week_time(text)
        if self.max_holiday_days < 0:
            raise ValueError(f"max_holiday_days must be >= 0, got {self.max_holiday_days}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return {
            "kind": self.kind,
            "session_hours": list(self.session_hours),
            "edge_hours": list(self.edge_hours),
            "weekend": list(self.weekend) if self.weekend else None,
            "max_holiday_days": self.max_holiday_days,
            "inferred": self.inferred,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MarketCalendar:
        """Inverse of ``to_dict``."""
        weekend = data.get("weekend")
        return cls(
            kind=data["kind"],
            session_hours=tuple(data.get("session_hours", ())),
            edge_hours=tuple(data.get("edge_hours", ())),
            weekend=(weekend[0], weekend[1]) if weekend else None,
            max_holiday_days=int(data.get("max_holiday_days", 2)),
            inferred=bool(data.get("inferred", False)),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class Gap:
    """One stretch of missing bars.

    ``start``: open time (UTC) of the first missing bar; ``end``: open time of the bar after
    the last missing one (exclusive), so the stretch is ``[start, end)``. ``missing_bars``
    counts the bars of this ``kind`` in it — for a hole in a session-based market that spans a
    night, only the in-session bars, so it can be less than ``(end - start) / timeframe``.
    """

    kind: GapKind
    start: datetime
    end: datetime
    missing_bars: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``kind``, ``start``/``end`` as ISO-8601 UTC, ``missing_bars``."""
        return {
            "kind": self.kind,
            "start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": self.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "missing_bars": self.missing_bars,
        }


@dataclass
class GapReport:
    """Missing bars of one series, by kind. Describes; never fills.

    ``missing_bars[kind]``: bars missing of each kind; ``gap_counts[kind]``: separate stretches
    of each kind. ``unexpected`` and ``holidays`` list their stretches, oldest first, at most
    ``max_listed`` each; ``unexpected_total`` / ``holidays_total`` count them all.
    """

    timeframe: Timeframe
    calendar: MarketCalendar
    first: datetime | None
    last: datetime | None
    bars_present: int
    missing_bars: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0))
    gap_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GAP_KINDS, 0))
    unexpected: list[Gap] = field(default_factory=list)
    unexpected_total: int = 0
    holidays: list[Gap] = field(default_factory=list)
    holidays_total: int = 0

    @property
    def has_unexpected(self) -> bool:
        """True when some missing bars are not explained by the calendar."""
        return self.unexpected_total > 0

    def summary(self) -> str:
        """One human-readable line, e.g. for a CLI."""
        parts = [f"{self.gap_counts[k]} {k} ({self.missing_bars[k]} bars)" for k in GAP_KINDS]
        return (
            f"{self.bars_present} bars of {self.timeframe.value}, calendar "
            f"{self.calendar.kind}: " + ", ".join(parts)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the whole report; ``method`` is ``"heuristic"``: the calendar
        was guessed from the data (or given by kind), not read from an exchange."""
        return {
            "method": "heuristic",
            "timeframe": self.timeframe.value,
            "calendar": self.calendar.to_dict(),
            "first": self.first.strftime("%Y-%m-%dT%H:%M:%SZ") if self.first else None,
            "last": self.last.strftime("%Y-%m-%dT%H:%M:%SZ") if self.last else None,
            "bars_present": self.bars_present,
            "missing_bars": dict(self.missing_bars),
            "gap_counts": dict(self.gap_counts),
            "unexpected": [g.to_dict() for g in self.unexpected],
            "unexpected_total": self.unexpected_total,
            "holidays": [g.to_dict() for g in self.holidays],
            "holidays_total": self.holidays_total,
        }


# --- inputs -------------------------------------------------------------------------


def _to_epochs(timestamps: Iterable[int | datetime], tf: Timeframe) -> list[int]:
    """Epoch seconds, checked to be strictly increasing bar opens of ``tf``."""
    epoch0 = datetime(1970, 1, 1, tzinfo=UTC)
    ts: list[int] = []
    if isinstance(timestamps, array) and timestamps.typecode in "qlQLiI":
        ts = timestamps.tolist()  # ValidationResult.timestamps: already epoch seconds
        timestamps = ()
    for i, value in enumerate(timestamps):
        if type(value) is int:
            ts.append(value)
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            delta = value - epoch0
            if delta.microseconds:
                raise ValueError(f"timestamp #{i} ({value}) has a fraction of a second")
            ts.append(delta.days * _DAY + delta.seconds)
        else:
            raise TypeError(
                f"timestamp #{i} is {type(value).__name__}; expected epoch seconds (int) "
                "or datetime"
            )
    # C-level map scans first (this runs on a million bars); Python finds the culprit after.
    step, origin = tf.seconds, tf.origin
    if any(map(operator.mod, map(operator.sub, ts, repeat(origin)), repeat(step))):
        bad = next(i for i, t in enumerate(ts) if (t - origin) % step)
        raise ValueError(f"timestamp #{bad} ({_iso(ts[bad])}) is not a {tf.value} bar open")
    if any(map(operator.ge, ts, islice(ts, 1, None))):
        bad = next(i for i, (a, b) in enumerate(pairwise(ts), 1) if b <= a)
        raise ValueError(
            f"timestamps must strictly increase: #{bad} ({_iso(ts[bad])}) follows "
            f"{_iso(ts[bad - 1])}"
        )
    return ts


# --- calendar inference -----------------------------------------------------------------


def infer_calendar(
    timestamps: Iterable[int | datetime],
    timeframe: Timeframe | str,
    *,
    max_holiday_days: int = 2,
) -> MarketCalendar:
    """Guess the market calendar from bar opens (epoch seconds or datetimes, increasing).

    - bars on at least half of the Saturdays the data spans (or a weekly timeframe, or data
      spanning no Saturday) → ``continuous``;
    - else daily data, or intraday data whose weekday bar-open times of day cover at least
      90 % of the day → ``weekdays``;
    - else ``sessions``, with ``session_hours`` covering the bar-open times of day that occur
      on at least 5 % as many days as there are weekdays with data, and ``edge_hours`` those
      occurring on under 80 % as many days as the most frequent time.

    The weekend window is learnt from the data's gaps that contain a Saturday.
    """
    tf = parse_timeframe(timeframe)
    return _infer(_to_epochs(timestamps, tf), tf, max_holiday_days)


# A daily weekday series covering at least this share of the Monday–Friday dates of its span
# has no exchange holidays (FX daily); stocks miss about 9 of 261 weekdays a year (96.5 %).
_NO_HOLIDAYS_COVERAGE = 0.985


def annualisation_calendar(
    timestamps: Sequence[int], timeframe: Timeframe | str
) -> Literal["24/7", "weekdays", "exchange"]:
    """Which year a series' per-bar statistics annualise over, from its bar opens (epoch
    seconds, increasing; they need not sit on the timeframe's grid, as exchange hours that
    open on the half hour do not), by :func:`infer_calendar`'s rule (the one calendar
    inference of ktrdr):

    - ``continuous`` → ``"24/7"`` (365 trading days);
    - ``sessions`` → ``"exchange"`` (252 sessions);
    - ``weekdays`` → ``"weekdays"`` (260 days), except daily bars covering under 98.5 % of the
      Monday–Friday dates of their span: exchange holidays, so ``"exchange"``.
    """
    tf = parse_timeframe(timeframe)
    ts = list(timestamps)
    kind = _infer(ts, tf, 2).kind
    if kind == "continuous":
        return "24/7"
    if kind == "sessions":
        return "exchange"
    if tf is Timeframe.D1:
        first, last = ts[0] // _DAY, ts[-1] // _DAY
        # Day numbers count from Thursday 1970-01-01: (day + 3) % 7 < 5 is Monday to Friday.
        weekdays = sum(1 for d in range(first, last + 1) if (d + 3) % 7 < 5)
        if len(ts) < _NO_HOLIDAYS_COVERAGE * weekdays:
            return "exchange"
    return "weekdays"


def _infer(ts: list[int], tf: Timeframe, max_holiday_days: int) -> MarketCalendar:
    if len(ts) < 2:
        return MarketCalendar(
            "continuous", max_holiday_days=max_holiday_days, inferred=True, reason="under 2 bars"
        )
    if tf is Timeframe.W1:
        return MarketCalendar(
            "continuous",
            max_holiday_days=max_holiday_days,
            inferred=True,
            reason="weekly bars: every week should have one",
        )
    first_day, last_day = ts[0] // _DAY, ts[-1] // _DAY
    # Day numbers count from Thursday 1970-01-01, so (day + 3) % 7 is 0 on Monday.
    first_sat = first_day + (5 - (first_day + 3) % 7) % 7
    saturdays_spanned = 0 if first_sat > last_day else (last_day - first_sat) // 7 + 1
    day_counts = Counter(map(operator.floordiv, ts, repeat(_DAY)))
    saturdays_traded = sum(1 for d in day_counts if (d + 3) % 7 == 5)
    if saturdays_spanned == 0:
        return MarketCalendar(
            "continuous",
            max_holiday_days=max_holiday_days,
            inferred=True,
            reason="the data spans no Saturday, so weekend closure cannot be seen",
        )
    if saturdays_traded * 2 >= saturdays_spanned:
        return MarketCalendar(
            "continuous",
            max_holiday_days=max_holiday_days,
            inferred=True,
            reason=f"bars on {saturdays_traded} of {saturdays_spanned} Saturdays",
        )
    weekend = _infer_weekend(ts, tf)
    closed = f"bars on {saturdays_traded} of {saturdays_spanned} Saturdays"
    if tf is Timeframe.D1:
        return MarketCalendar(
            "weekdays",
            weekend=weekend,
            max_holiday_days=max_holiday_days,
            inferred=True,
            reason=f"daily bars, {closed}",
        )
    step = tf.seconds
    weekday_days = [d for d in day_counts if (d + 3) % 7 < 5]
    # Times of day over all bars: weekend bars are rare here (Saturdays are closed).
    tod_counts = Counter(map(operator.mod, ts, repeat(_DAY)))
    min_days = max(1, int(0.05 * len(weekday_days)))
    session = sorted(tod for tod, n in tod_counts.items() if n >= min_days)
    slots = _DAY // step
    if len(session) >= 0.9 * slots:
        return MarketCalendar(
            "weekdays",
            weekend=weekend,
            max_holiday_days=max_holiday_days,
            inferred=True,
            reason=f"{closed}; weekday bars at {len(session)} of {slots} times of day",
        )
    top = max(tod_counts[t] for t in session)
    edges = [t for t in session if tod_counts[t] < 0.8 * top]
    return MarketCalendar(
        "sessions",
        session_hours=_hours_text(session, step),
        edge_hours=_hours_text(edges, step),
        weekend=weekend,
        max_holiday_days=max_holiday_days,
        inferred=True,
        reason=f"{closed}; weekday bars at only {len(session)} of {slots} times of day",
    )


def _saturday_gaps(ts: list[int], step: int) -> list[tuple[int, int]]:
    """(first missing bar, next present bar) of every gap that contains a Saturday bar."""
    out = []
    for i in _gap_positions(ts, step):
        a, b = ts[i], ts[i + 1]
        if _touches_saturday(a + step, b - step):
            out.append((a + step, b))
    return out


def _gap_positions(ts: list[int], step: int) -> Iterable[int]:
    """Indices i where ts[i + 1] - ts[i] is not one bar, found at C speed (no Python loop)."""
    steps = map(operator.sub, islice(ts, 1, None), ts)
    return compress(count(), map(operator.ne, steps, repeat(step)))


def _touches_saturday(first_missing: int, last_missing: int) -> bool:
    d0, d1 = first_missing // _DAY, last_missing // _DAY
    return d1 - d0 >= 6 or (5 - (d0 + 3) % 7) % 7 <= d1 - d0


def _infer_weekend(ts: list[int], tf: Timeframe) -> tuple[str, str] | None:
    """Learn the weekly closure window (as week-time texts) from the Saturday gaps."""
    gaps = _saturday_gaps(ts, tf.seconds)
    # Only gaps shorter than two weeks tell us about an ordinary weekend.
    gaps = [(s, e) for s, e in gaps if e - s < 2 * _WEEK]
    if not gaps:
        return None
    starts = [(s - _MONDAY0) % _WEEK for s, _ in gaps]
    # An end on Monday (or later) is measured past the week's end, so windows never wrap.
    ends = []
    for s, e in gaps:
        week_of_start = s - (s - _MONDAY0) % _WEEK
        ends.append(e - week_of_start)
    # Typical closures only: daylight saving time moves them by an hour, so allow 3 hours;
    # a Good Friday or Monday holiday lies a whole day off and is left to holiday detection.
    slack = 3 * 3600 if tf.is_intraday else 0
    mid_start = statistics.median_low(starts)
    mid_end = statistics.median_high(ends)
    start = min(_recurring(s for s in starts if mid_start - slack <= s <= mid_start))
    end = max(_recurring(e for e in ends if mid_end <= e <= mid_end + slack))
    return _week_time_text(start), _week_time_text(end)


def _recurring(values: Iterable[int]) -> list[int]:
    """The values seen on at least 10 % of the weekends (and twice): one odd weekend — a
    missing Sunday-open bar, say — must not widen the weekend window."""
    counts = Counter(values)
    total = sum(counts.values())
    keep = [v for v, n in counts.items() if n >= max(2, 0.1 * total)]
    # With too few weekends to tell what recurs, every value counts.
    return keep or list(counts)


# --- classification -------------------------------------------------------------------


class _Classifier:
    def __init__(self, cal: MarketCalendar, tf: Timeframe, ts: list[int]) -> None:
        self.cal = cal
        self.step = tf.seconds
        if cal.weekend is None:
            self.w_start, self.w_end = _DEFAULT_WEEKEND
        else:
            self.w_start = _parse_week_time(cal.weekend[0])
            self.w_end = _parse_week_time(cal.weekend[1])
            while self.w_end <= self.w_start:
                self.w_end += _WEEK
        # Time-of-day runs [start, end) -> in / edge / out, for the sessions calendar.
        self.tod_starts: list[int] = []
        self.tod_runs: list[tuple[int, int, str]] = []
        if cal.kind == "sessions":
            if not cal.session_hours:
                raise ValueError(
                    "a sessions calendar needs session_hours (or let them be inferred)"
                )
            session = [r for text in cal.session_hours for r in _parse_hours(text)]
            edges = [r for text in cal.edge_hours for r in _parse_hours(text)]
            tod = 0
            while tod < _DAY:
                if not _in_hours(tod, session):
                    cls = _OUT
                else:
                    cls = _EDGE if _in_hours(tod, edges) else _IN
                if self.tod_runs and self.tod_runs[-1][2] == cls:
                    s, _, c = self.tod_runs[-1]
                    self.tod_runs[-1] = (s, tod + self.step, c)
                else:
                    self.tod_runs.append((tod, tod + self.step, cls))
                tod += self.step
            self.tod_starts = [r[0] for r in self.tod_runs]
        self.bars_per_day = self._bars_per_day(ts)

    def _bars_per_day(self, ts: list[int]) -> float:
        if self.step >= _DAY:
            return 1.0
        if self.cal.kind == "sessions":
            per_day = Counter(map(operator.floordiv, ts, repeat(_DAY)))
            weekdays = [n for day, n in per_day.items() if (day + 3) % 7 < 5]
            if weekdays:
                return float(statistics.median(weekdays))
            # No weekday bars to count: the session's own length.
            return float(sum((e - s) // self.step for s, e, c in self.tod_runs if c != _OUT))
        return float(_DAY // self.step)

    def window_at(self, m: int) -> tuple[bool, int]:
        """(inside a weekend window?, its end if inside else the next window's start)."""
        monday = m - (m - _MONDAY0) % _WEEK
        for base in (monday - _WEEK, monday):
            if base + self.w_start <= m < base + self.w_end:
                return True, base + self.w_end
        nxt = monday + self.w_start
        if nxt <= m:
            nxt += _WEEK
        return False, nxt

    def segments(self, first: int, end: int) -> list[list[Any]]:
        """Split the missing stretch [first, end) into [start, end, class] segments."""
        weekendish = self.cal.kind != "continuous" and _touches_saturday(first, end - self.step)
        segs: list[list[Any]] = []
        m = first
        while m < end:
            limit = end
            if weekendish:
                inside, bound = self.window_at(m)
                if inside:
                    seg = [m, min(bound, end), _WEEKEND]
                    _push(segs, seg)
                    m = seg[1]
                    continue
                limit = min(limit, bound)
            if self.cal.kind == "sessions":
                day0 = m - m % _DAY
                run = self.tod_runs[bisect_right(self.tod_starts, m - day0) - 1]
                seg = [m, min(limit, day0 + run[1]), run[2]]
            else:
                seg = [m, limit, _IN]
            _push(segs, seg)
            m = seg[1]
        # Session edges moved by daylight saving time: a missing edge bar that touches a
        # break (or the weekend) belongs to that break; any other edge bar is in-session.
        for i, seg in enumerate(segs):
            if seg[2] != _EDGE:
                continue
            neighbours = [segs[j][2] for j in (i - 1, i + 1) if 0 <= j < len(segs)]
            seg[2] = _OUT if any(n in (_OUT, _WEEKEND) for n in neighbours) else _IN
        # Neighbouring segments may now share a class: merge them.
        merged: list[list[Any]] = []
        for seg in segs:
            _push(merged, list(seg))
        return merged


def _push(segs: list[list[Any]], seg: list[Any]) -> None:
    if seg[0] >= seg[1]:
        return
    if segs and segs[-1][2] == seg[2] and segs[-1][1] == seg[0]:
        segs[-1][1] = seg[1]
    else:
        segs.append(seg)


_KIND_OF = {_WEEKEND: "weekend", _OUT: "session_break"}


def gap_report(
    timestamps: Iterable[int | datetime],
    timeframe: Timeframe | str,
    calendar: MarketCalendar | str | None = None,
    *,
    max_listed: int = 1000,
) -> GapReport:
    """Report the bars missing from a series of bar opens, by kind.

    ``timestamps``: bar open times, strictly increasing, as epoch seconds (``int``, e.g.
    ``ValidationResult.timestamps``) or datetimes (naive = UTC). ``timeframe``: the bar
    timeframe. ``calendar``: ``None`` to infer it, a kind name (``"continuous"`` or ``"24/7"``,
    ``"weekdays"``, ``"sessions"`` — details still inferred), or a full ``MarketCalendar``.
    ``max_listed``: how many unexpected stretches (and holidays) to list; all are counted.

    Returns a ``GapReport``. Raises ``ValueError`` for unordered or misaligned timestamps.
    """
    tf = parse_timeframe(timeframe)
    ts = _to_epochs(timestamps, tf)
    cal = _resolve_calendar(calendar, ts, tf)
    report = GapReport(
        timeframe=tf,
        calendar=cal,
        first=datetime.fromtimestamp(ts[0], tz=UTC) if ts else None,
        last=datetime.fromtimestamp(ts[-1], tz=UTC) if ts else None,
        bars_present=len(ts),
    )
    step = tf.seconds
    classifier = _Classifier(cal, tf, ts)
    bpd = classifier.bars_per_day
    max_days = cal.max_holiday_days
    missing, counts = report.missing_bars, report.gap_counts

    for i in _gap_positions(ts, step):
        a, b = ts[i], ts[i + 1]
        first = a + step
        # A week always has a weekly bar, whatever the market: a missing one is a hole.
        if cal.kind == "continuous" or tf is Timeframe.W1:
            _record(report, "unexpected", first, b, (b - first) // step, max_listed)
            continue
        segs = classifier.segments(first, b)
        in_bars = 0
        for seg in segs:
            kind = _KIND_OF.get(seg[2])
            bars = (seg[1] - seg[0]) // step
            if kind is None:
                in_bars += bars
                continue
            missing[kind] += bars
            counts[kind] += 1
        if not in_bars:
            continue
        in_segs = [s for s in segs if s[2] == _IN]
        days = in_bars / bpd
        whole_sessions = cal.kind != "sessions" or (segs[0][2] != _IN and segs[-1][2] != _IN)
        kind = "holiday" if whole_sessions and 0.75 <= days <= max_days + 0.25 else "unexpected"
        _record(report, kind, in_segs[0][0], in_segs[-1][1], in_bars, max_listed)
    return report


def _record(report: GapReport, kind: str, start: int, end: int, bars: int, cap: int) -> None:
    report.missing_bars[kind] += bars
    report.gap_counts[kind] += 1
    listing = report.unexpected if kind == "unexpected" else report.holidays
    if kind == "unexpected":
        report.unexpected_total += 1
    else:
        report.holidays_total += 1
    if len(listing) < cap:
        listing.append(
            Gap(
                kind=kind,  # type: ignore[arg-type]
                start=datetime.fromtimestamp(start, tz=UTC),
                end=datetime.fromtimestamp(end, tz=UTC),
                missing_bars=bars,
            )
        )


def _resolve_calendar(
    calendar: MarketCalendar | str | None, ts: list[int], tf: Timeframe
) -> MarketCalendar:
    if isinstance(calendar, MarketCalendar):
        if calendar.kind == "sessions" and not tf.is_intraday:
            raise ValueError(
                f"a sessions calendar needs intraday bars; {tf.value} bars have no session "
                "to break (use 'weekdays' for daily stock data)"
            )
        if calendar.kind == "sessions" and not calendar.session_hours:
            inferred = _infer(ts, tf, calendar.max_holiday_days)
            if inferred.kind != "sessions":
                raise ValueError(
                    "calendar 'sessions' without session_hours, and the data shows no daily "
                    f"session to infer them from ({inferred.reason}); give session_hours"
                )
            return replace(
                calendar,
                session_hours=inferred.session_hours,
                edge_hours=inferred.edge_hours,
                weekend=calendar.weekend or inferred.weekend,
            )
        if calendar.kind != "continuous" and calendar.weekend is None:
            return replace(calendar, weekend=_infer_weekend(ts, tf))
        return calendar
    if calendar is None:
        return _infer(ts, tf, 2)
    if not isinstance(calendar, str):
        raise TypeError(f"calendar must be a MarketCalendar, a kind name or None, not {calendar!r}")
    kind = _CALENDAR_ALIASES.get(calendar.strip().lower())
    if kind is None:
        raise ValueError(
            f"unknown calendar {calendar!r}; valid: continuous (or 24/7), weekdays, sessions"
        )
    return _resolve_calendar(MarketCalendar(kind, reason="given"), ts, tf)  # type: ignore[arg-type]
