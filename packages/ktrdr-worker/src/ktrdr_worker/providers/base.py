"""What every market-data provider offers the fetch runner, and the shared plumbing.

A provider turns (symbol, timeframe, [start, end)) into canonical bars: ``Bar`` tuples of
(bar open in epoch seconds UTC, open, high, low, close, volume), oldest first, one per bar
open, only finished bars. It pages through the provider's limits, waits out its rate limits
and retries what may succeed later; anything else raises ``ProviderError`` naming the
provider, the symbol and what went wrong.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from ktrdr_core.errors import KtrdrError
from ktrdr_core.timeframes import Timeframe

__all__ = [
    "Bar",
    "PageCallback",
    "Provider",
    "ProviderError",
    "check_bars",
    "checked_symbol",
    "iso",
]


class Bar(NamedTuple):
    """One canonical OHLCV bar; ``time`` is the bar open, epoch seconds UTC."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class ProviderError(KtrdrError):
    """A provider refused, failed or answered something unusable; the message says which
    provider, which symbol and what to do."""


PageCallback = Callable[[int, int], None]
"""Called after each page with (bars so far, epoch second reached): progress and cancel."""


def checked_symbol(provider: str, symbol: str) -> str:
    """``symbol`` when ``provider`` serves symbols spelt so; ProviderError saying how else."""
    from ktrdr_core.protocol import provider_symbol

    try:
        return provider_symbol(provider, symbol)
    except ValueError as exc:
        raise ProviderError(f"{provider}: {exc}") from None


def iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Provider(ABC):
    """A source of OHLCV bars.

    ``name``: as in ``ktrdr_core.protocol.DATA_PROVIDERS``. ``page_bars``: most bars one
    request returns. ``sleep`` and ``clock`` (seconds, monotonic) are injectable so that tests
    can see the waits a rate limit asks for without spending them.
    """

    name: str = ""
    page_bars: int = 1000

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        backoff_cap_s: float = 30.0,
    ):
        self.sleep = sleep
        self.clock = clock
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.requests = 0  # requests sent, retries included
        self.retries = 0
        self.waited_s = 0.0  # seconds spent waiting on rate limits and backoff

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.waited_s += seconds
            self.sleep(seconds)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1, 2, …): doubling, capped."""
        return min(self.backoff_cap_s, self.backoff_s * 2 ** (attempt - 1))

    def where(self, symbol: str, timeframe: Timeframe) -> str:
        return f"{self.name} {symbol} {timeframe.value}"

    @abstractmethod
    def check_symbol(self, symbol: str) -> str:
        """The provider's spelling of a ktrdr symbol; ProviderError when it cannot be one."""

    @abstractmethod
    def exchange(self, symbol: str) -> str | None:
        """The exchange code (``ktrdr_core.exchanges``) whose sessions ``symbol`` trades in,
        as far as the provider knows; None when it does not (the dataset then names none,
        unless the user does)."""

    @abstractmethod
    def fetch(
        self,
        symbol: str,
        timeframe: Timeframe,
        start: int,
        end: int,
        *,
        on_page: PageCallback | None = None,
        now: int | None = None,
    ) -> list[Bar]:
        """Finished bars opening in ``[start, end)`` (epoch seconds), oldest first.

        ``now`` (epoch seconds, default the wall clock) decides which bars are finished: a
        bar is returned only when ``open + timeframe <= now``.
        """

    def close(self) -> None:  # noqa: B027 - most providers hold nothing
        """Release connections."""


def check_bars(bars: list[Bar], where: str, timeframe: Timeframe) -> None:
    """Raise ProviderError unless each bar is on the timeframe's grid, in order, and has
    consistent prices (low <= open, close <= high) and a non-negative volume."""
    step, origin = timeframe.seconds, timeframe.origin
    previous = None
    for bar in bars:
        if (bar.time - origin) % step:
            raise ProviderError(
                f"{where}: bar at {iso(bar.time)} is not a {timeframe.value} bar open"
            )
        if previous is not None and bar.time <= previous:
            raise ProviderError(f"{where}: bar at {iso(bar.time)} is out of order")
        if not (bar.low <= min(bar.open, bar.close) and max(bar.open, bar.close) <= bar.high):
            raise ProviderError(
                f"{where}: bar at {iso(bar.time)} has inconsistent prices "
                f"(open {bar.open}, high {bar.high}, low {bar.low}, close {bar.close})"
            )
        if bar.volume < 0:
            raise ProviderError(f"{where}: bar at {iso(bar.time)} has volume {bar.volume}")
        previous = bar.time
