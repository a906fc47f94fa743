"""Binance spot klines: a public endpoint, no account needed.

``GET {base}/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=ms&endTime=ms&limit=1000``
answers rows ``[openTime ms, "open", "high", "low", "close", "volume", closeTime ms, …]``,
oldest first, at most ``limit`` (1000) per request. Limits: every request costs weight
(``X-MBX-USED-WEIGHT-1M`` says how much of the minute's 6000 is used); 429 means slow down
and 418 means banned for a while, both with ``Retry-After`` in seconds. The base URL comes
from ``KTRDR_BINANCE_URL`` (default the real one), so tests point it at a local server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import httpx

from ktrdr_core.timeframes import Timeframe
from ktrdr_worker.providers.base import (
    Bar,
    PageCallback,
    Provider,
    ProviderError,
    check_bars,
    checked_symbol,
    iso,
)

__all__ = ["DEFAULT_URL", "BinanceProvider"]

DEFAULT_URL = "https://api.binance.com"
WEIGHT_LIMIT = 6000  # request weight per minute Binance allows one IP
WEIGHT_HEADROOM = 0.9  # above this share of the limit, wait for the next minute
# ktrdr timeframes and Binance intervals are spelt alike; 1w klines open on Mondays.
INTERVALS = {tf: tf.value for tf in Timeframe}


class BinanceProvider(Provider):
    name = "binance"
    page_bars = 1000

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        **kwargs,  # type: ignore[no-untyped-def]
    ):
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self.used_weight = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kwargs) -> BinanceProvider:  # type: ignore[no-untyped-def]
        return cls(env.get("KTRDR_BINANCE_URL") or DEFAULT_URL, **kwargs)

    def close(self) -> None:
        self._http.close()

    def check_symbol(self, symbol: str) -> str:
        return checked_symbol(self.name, symbol)

    def exchange(self, symbol: str) -> str:
        """Binance trades every pair around the clock, every day."""
        return "24/7"

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
        pair = self.check_symbol(symbol)
        where = self.where(symbol, timeframe)
        step = timeframe.seconds
        now = int(time.time()) if now is None else now
        end = min(end, now - step + 1)  # only finished bars: open + step <= now
        bars: list[Bar] = []
        cursor = start
        while cursor < end:
            params = {
                "symbol": pair,
                "interval": INTERVALS[timeframe],
                "startTime": cursor * 1000,
                "endTime": (end - 1) * 1000,  # inclusive on Binance's side
                "limit": self.page_bars,
            }
            rows = self._get_page(params, where, cursor)
            page = [_bar(row, i, where, cursor) for i, row in enumerate(rows)]
            page = [bar for bar in page if start <= bar.time < end]
            check_bars(page, where, timeframe)
            if bars and page and page[0].time <= bars[-1].time:
                raise ProviderError(
                    f"{where}: page from {iso(cursor)} repeats bars up to {iso(bars[-1].time)}"
                )
            bars.extend(page)
            if on_page is not None:
                on_page(len(bars), page[-1].time + step if page else end)
            if len(rows) < self.page_bars or not page:
                break  # the provider has nothing more in this range
            cursor = page[-1].time + step
        return bars

    def _get_page(self, params: dict[str, object], where: str, cursor: int) -> list:  # type: ignore[type-arg]
        attempt = 0
        while True:
            self._respect_weight()
            self.requests += 1
            try:
                response = self._http.get("/api/v3/klines", params=params)
            except httpx.TransportError as exc:
                failure = f"cannot reach {self.base_url}: {exc}"
                retry_after = None
            else:
                self._note_weight(response)
                if response.status_code == 200:
                    try:
                        rows = response.json()
                    except ValueError:
                        raise ProviderError(
                            f"{where}: page from {iso(cursor)} is not JSON: {response.text[:200]!r}"
                        ) from None
                    if not isinstance(rows, list):
                        raise ProviderError(
                            f"{where}: page from {iso(cursor)} is not a list of klines: "
                            f"{str(rows)[:200]}"
                        )
                    return rows
                message = _message(response)
                if response.status_code in (429, 418):
                    failure = f"rate limited (HTTP {response.status_code}: {message})"
                    retry_after = _retry_after(response)
                elif response.status_code >= 500:
                    failure = f"server error (HTTP {response.status_code}: {message})"
                    retry_after = None
                else:
                    raise ProviderError(
                        f"{where}: Binance refused the request (HTTP {response.status_code}: "
                        f"{message}); check the symbol and interval"
                    )
            attempt += 1
            if attempt > self.max_retries:
                raise ProviderError(
                    f"{where}: gave up on the page from {iso(cursor)} after "
                    f"{self.max_retries} retries; last: {failure}"
                )
            self.retries += 1
            self.wait(retry_after if retry_after is not None else self.backoff(attempt))

    def _note_weight(self, response: httpx.Response) -> None:
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if used and used.isdigit():
            self.used_weight = int(used)
            self._weight_seen_at = time.time()

    def _respect_weight(self) -> None:
        # Close to the minute's budget: wait for the minute to roll over rather than earn
        # a 429 (and, after repeated 429s, a ban).
        if self.used_weight >= WEIGHT_LIMIT * WEIGHT_HEADROOM:
            seen = getattr(self, "_weight_seen_at", time.time())
            self.wait(max(0.0, 60.0 - seen % 60.0) + 0.5)
            self.used_weight = 0


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "msg" in body:
        return f"{body.get('msg')} (code {body.get('code')})"
    return str(body)[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _bar(row: object, index: int, where: str, cursor: int) -> Bar:
    """One kline row as a Bar; ProviderError names the page and row when it is malformed."""
    try:
        if not isinstance(row, list) or len(row) < 6:
            raise ValueError("expected [openTime, open, high, low, close, volume, …]")
        opened = row[0]
        if not isinstance(opened, int) or isinstance(opened, bool) or opened % 1000:
            raise ValueError(f"open time {opened!r} is not whole seconds in milliseconds")
        values = [float(v) for v in row[1:6]]
        if not all(map(math.isfinite, values)):
            raise ValueError("a price or volume is not a finite number")
    except (TypeError, ValueError) as exc:
        raise ProviderError(
            f"{where}: malformed kline (row {index + 1} of the page from {iso(cursor)}): "
            f"{exc}; got {str(row)[:200]}"
        ) from None
    return Bar(opened // 1000, *values)
