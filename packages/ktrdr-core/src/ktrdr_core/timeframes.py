"""Bar timeframes: names, durations, ordering and bar alignment (standard library only).

ktrdr knows eight timeframes: ``1m 5m 15m 30m 1h 4h 1d 1w``. A bar is labelled by its
OPEN time ``t`` (UTC) and covers ``[t, t + duration)``. Bar opens are aligned on a fixed
UTC grid so that every file, resample and multi-timeframe join agrees on the boundaries:

- intraday bars (``1m`` … ``4h``) open at whole multiples of their duration counted from
  midnight UTC (a 4h bar opens at 00:00, 04:00, …, 20:00 UTC);
- daily bars open at 00:00 UTC;
- weekly bars open on Monday at 00:00 UTC.

Every timeframe is a whole multiple of every shorter one, and the grids nest: each 1w bar
starts exactly on a 1d, 4h, … boundary, so a higher bar is always the union of whole lower
bars.

All functions here take and return epoch seconds (``int``) or ``datetime`` objects; a naive
``datetime`` is read as UTC, the same convention as the OHLCV files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = [
    "TIMEFRAMES",
    "Timeframe",
    "TimeframeError",
    "bar_seconds",
    "parse_timeframe",
    "timeframe_named",
]


class TimeframeError(ValueError):
    """A timeframe name is unknown, or two timeframes cannot be combined."""


_SECONDS = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14_400,
    "1d": 86_400,
    "1w": 604_800,
}

# 1970-01-05 was the first Monday after the epoch: weekly bars are counted from there.
_WEEK_ORIGIN = 4 * 86_400


class Timeframe(StrEnum):
    """One of the eight bar timeframes. Equal to its name as a string (``Timeframe.H1 == "1h"``).

    Ordering (``<``, ``sorted``) is by duration, not by the name's spelling.
    """

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"
    W1 = "1w"

    @property
    def seconds(self) -> int:
        """Bar duration in seconds."""
        return _SECONDS[self.value]

    @property
    def duration(self) -> timedelta:
        """Bar duration as a ``timedelta``."""
        return timedelta(seconds=_SECONDS[self.value])

    @property
    def is_intraday(self) -> bool:
        """True for timeframes shorter than one day."""
        return _SECONDS[self.value] < 86_400

    @property
    def origin(self) -> int:
        """Epoch second of one bar open on this grid: Monday 1970-01-05 for 1w, else 0."""
        return _WEEK_ORIGIN if self is Timeframe.W1 else 0

    # Ordering by duration. StrEnum would otherwise compare names as text ("1d" < "1h").
    def _key(self, other: object) -> int:
        if not isinstance(other, Timeframe):
            raise TypeError(
                f"cannot order Timeframe against {type(other).__name__}; "
                "parse it first with parse_timeframe()"
            )
        return _SECONDS[other.value]

    def __lt__(self, other: object) -> bool:
        return self.seconds < self._key(other)

    def __le__(self, other: object) -> bool:
        return self.seconds <= self._key(other)

    def __gt__(self, other: object) -> bool:
        return self.seconds > self._key(other)

    def __ge__(self, other: object) -> bool:
        return self.seconds >= self._key(other)

    def is_multiple_of(self, other: Timeframe | str) -> bool:
        """True when one bar of ``self`` is made of whole, aligned bars of ``other``.

        ``Timeframe.H4.is_multiple_of("1h")`` is True; a timeframe is a multiple of itself;
        a shorter timeframe is never a multiple of a longer one.
        """
        other_tf = parse_timeframe(other)
        if self.seconds % other_tf.seconds:
            return False
        # The grids must nest too: self's origin has to lie on other's grid.
        return (self.origin - other_tf.origin) % other_tf.seconds == 0

    def ratio(self, other: Timeframe | str) -> int:
        """How many ``other`` bars make one ``self`` bar (``Timeframe.H4.ratio("1h") == 4``).

        Raises ``TimeframeError`` when ``self`` is not a multiple of ``other``.
        """
        other_tf = parse_timeframe(other)
        if not self.is_multiple_of(other_tf):
            raise TimeframeError(f"{self.value} is not a whole multiple of {other_tf.value}")
        return self.seconds // other_tf.seconds

    def multiples(self) -> tuple[Timeframe, ...]:
        """The timeframes strictly longer than this one that are whole multiples of it."""
        return tuple(tf for tf in Timeframe if tf > self and tf.is_multiple_of(self))

    # --- alignment, on epoch seconds -------------------------------------------------

    def floor_epoch(self, epoch_s: int) -> int:
        """Open (epoch seconds) of the bar that contains the instant ``epoch_s``."""
        step = _SECONDS[self.value]
        origin = self.origin
        return epoch_s - (epoch_s - origin) % step

    def is_aligned_epoch(self, epoch_s: int) -> bool:
        """True when ``epoch_s`` is a valid bar open for this timeframe."""
        return (epoch_s - self.origin) % _SECONDS[self.value] == 0

    # --- alignment, on datetimes -----------------------------------------------------

    def bar_open(self, when: datetime) -> datetime:
        """Open (aware UTC datetime) of the bar containing ``when`` (naive = UTC).

        Sub-second parts are dropped: no timeframe is shorter than a minute.
        """
        epoch = _epoch_seconds(when)
        return datetime.fromtimestamp(self.floor_epoch(epoch), tz=UTC)

    def is_aligned(self, when: datetime) -> bool:
        """True when ``when`` (naive = UTC) is exactly a bar open for this timeframe."""
        if when.microsecond:
            return False
        return self.is_aligned_epoch(_epoch_seconds(when))

    def next_open(self, when: datetime) -> datetime:
        """Open of the bar after the one containing ``when`` (naive = UTC)."""
        return self.bar_open(when) + self.duration


TIMEFRAMES: tuple[Timeframe, ...] = tuple(Timeframe)
"""All timeframes, shortest first."""


def parse_timeframe(value: Timeframe | str) -> Timeframe:
    """Turn ``"1h"`` (or a ``Timeframe``) into a ``Timeframe``.

    Names are exact (``"1h"``, not ``"1H"`` or ``"60m"``) so that one spelling is used
    everywhere. Raises ``TimeframeError`` listing the valid names.
    """
    if isinstance(value, Timeframe):
        return value
    if isinstance(value, str):
        try:
            return Timeframe(value.strip())
        except ValueError:
            pass
    valid = ", ".join(tf.value for tf in Timeframe)
    raise TimeframeError(f"unknown timeframe {value!r}; valid timeframes are: {valid}")


def bar_seconds(spacings: Sequence[int]) -> int:
    """The bar size in seconds of a series, from the spacings (seconds) between consecutive
    bar opens: their median. Gaps (nights, weekends, holidays) are the minority of spacings
    in any real series, so the median is the bar size; the mode would be thrown by a series
    with more gaps of one length than bars. The one timeframe-inference rule of ktrdr (the
    worker passes the spacings of up to ~100k evenly spaced pairs of a long series).

    Raises ValueError for no spacing, or a median that is not positive (the bars do not
    increase).
    """
    if not spacings:
        raise ValueError("cannot infer the timeframe from fewer than 2 bars; set it explicitly")
    ordered = sorted(spacings)
    median = ordered[len(ordered) // 2]
    if median <= 0:
        raise ValueError("cannot infer the timeframe: the bars do not strictly increase")
    return median


def timeframe_named(seconds: int) -> Timeframe | None:
    """The timeframe whose bars last ``seconds``, or None when no timeframe does."""
    return next((tf for tf in Timeframe if tf.seconds == seconds), None)


def _epoch_seconds(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    # Integer arithmetic: floats lose whole seconds far from the epoch.
    return delta.days * 86_400 + delta.seconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
