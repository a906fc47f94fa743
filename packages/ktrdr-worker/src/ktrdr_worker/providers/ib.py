"""Interactive Brokers historical bars through ``ib_async`` (IB Gateway or TWS must run).

``ib_async`` is the optional extra ``ktrdr-worker[ib]``, imported only when an IB fetch
starts. Connection: ``KTRDR_IB_HOST`` (127.0.0.1), ``KTRDR_IB_PORT`` (4002, IB Gateway's
paper port), ``KTRDR_IB_CLIENT_ID`` (17).

``reqHistoricalData`` walks backwards from ``endDateTime`` over ``durationStr``; each bar
size has a longest duration IB serves in one request (``PAGES``). IB's pacing rules for
historical data: at most 60 requests in any 10 minutes, no identical request within 15 s,
at most 6 requests for one contract within 2 s. ``PacingGate`` waits before a request would
break one; a pacing violation (error 162 saying so) is waited out and retried.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

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

__all__ = ["BAR_SIZES", "PAGES", "PRIMARY_EXCHANGES", "IbProvider", "PacingGate"]

log = logging.getLogger("ktrdr_worker.providers")

BAR_SIZES = {
    Timeframe.M1: "1 min",
    Timeframe.M5: "5 mins",
    Timeframe.M15: "15 mins",
    Timeframe.M30: "30 mins",
    Timeframe.H1: "1 hour",
    Timeframe.H4: "4 hours",
    Timeframe.D1: "1 day",
    Timeframe.W1: "1 week",
}
_DAY = 86_400
# Bar size -> (durationStr, its length in seconds): the longest request IB answers for it.
PAGES = {
    Timeframe.M1: ("1 D", _DAY),
    Timeframe.M5: ("1 W", 7 * _DAY),
    Timeframe.M15: ("2 W", 14 * _DAY),
    Timeframe.M30: ("1 M", 30 * _DAY),
    Timeframe.H1: ("1 M", 30 * _DAY),
    Timeframe.H4: ("1 M", 30 * _DAY),
    Timeframe.D1: ("1 Y", 365 * _DAY),
    Timeframe.W1: ("5 Y", 5 * 365 * _DAY),
}
_CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK",
               "HKD", "SGD", "MXN", "ZAR", "CNH", "PLN", "CZK", "HUF", "TRY"}  # fmt: skip
# IB's primary listing exchanges -> the calendar whose sessions they trade: every US equity
# venue keeps NYSE's sessions. Other names go through ktrdr's exchange codes and aliases.
PRIMARY_EXCHANGES = {"NYSE": "XNYS", "NASDAQ": "XNYS", "ARCA": "XNYS", "AMEX": "XNYS",
                     "BATS": "XNYS", "IEX": "XNYS", "ISLAND": "XNYS", "PINK": "XNYS"}  # fmt: skip
PACING_CODE = 162  # "Historical Market Data Service error message: ..."
INSTALL_HINT = "pip install 'ktrdr-worker[ib]'"


class PacingGate:
    """IB's historical-data pacing: ≤ ``max_requests`` per ``window_s``, no identical request
    within ``identical_s``, ≤ ``burst`` requests per contract within ``burst_s``."""

    def __init__(self, clock: Callable[[], float], wait: Callable[[float], None], *,
                 max_requests: int = 60, window_s: float = 600.0, identical_s: float = 15.0,
                 burst: int = 6, burst_s: float = 2.0):  # fmt: skip
        self.clock, self.wait = clock, wait
        self.max_requests, self.window_s = max_requests, window_s
        self.identical_s, self.burst, self.burst_s = identical_s, burst, burst_s
        self.sent: deque[tuple[float, str, tuple[Any, ...]]] = deque()

    def before(self, contract_key: str, request_key: tuple[Any, ...]) -> None:
        """Wait until sending this request breaks no pacing rule, then note it as sent."""
        while True:
            now = self.clock()
            while self.sent and now - self.sent[0][0] >= self.window_s:
                self.sent.popleft()
            delays = [0.0]
            if len(self.sent) >= self.max_requests:
                delays.append(self.sent[0][0] + self.window_s - now)
            same = [t for t, _, key in self.sent if key == request_key]
            if same:
                delays.append(same[-1] + self.identical_s - now)
            recent = [t for t, c, _ in self.sent if c == contract_key and now - t < self.burst_s]
            if len(recent) >= self.burst:
                delays.append(recent[0] + self.burst_s - now)
            delay = max(delays)
            if delay <= 0:
                self.sent.append((now, contract_key, request_key))
                return
            self.wait(delay)


class IbProvider(Provider):
    """``ib`` is an ``ib_async.IB`` (or anything with its ``connect``, ``isConnected``,
    ``qualifyContracts``, ``reqHistoricalData`` and ``disconnect``); None makes one."""

    name = "ib"

    def __init__(self, host: str = "127.0.0.1", port: int = 4002, client_id: int = 17, *,
                 ib: Any = None, connect_timeout_s: float = 10.0,
                 request_timeout_s: float = 120.0, **kwargs: Any):  # fmt: skip
        kwargs.setdefault("backoff_s", 15.0)  # a pacing violation costs IB about this much
        kwargs.setdefault("backoff_cap_s", 120.0)
        super().__init__(**kwargs)
        self.host, self.port, self.client_id = host, port, client_id
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self._ib = ib
        self.pacing = PacingGate(self.clock, self.wait)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kwargs: Any) -> IbProvider:
        def number(name: str, default: int) -> int:
            text = env.get(name) or str(default)
            try:
                return int(text)
            except ValueError:
                raise ProviderError(f"ib: {name}={text!r} is not a whole number") from None

        return cls(
            env.get("KTRDR_IB_HOST") or "127.0.0.1",
            number("KTRDR_IB_PORT", 4002),
            number("KTRDR_IB_CLIENT_ID", 17),
            **kwargs,
        )

    def check_symbol(self, symbol: str) -> str:
        return checked_symbol(self.name, symbol)

    def exchange(self, symbol: str) -> str | None:
        """The exchange of a stock from its IB contract details (``primaryExchange``); None
        for a currency pair: FX trades from Sunday 17:00 New York, not on any exchange's
        sessions, so its weekend is left to the heuristic report, which learns it."""
        from ktrdr_core.exchanges import exchange_code

        contract, _ = self.contract(symbol)
        if contract.secType == "CASH":
            return None
        details = self._connected().reqContractDetails(contract)
        if not details:
            raise ProviderError(f"ib {symbol}: IB knows no contract details for {contract}")
        primary = (details[0].contract.primaryExchange or "").upper()
        code = PRIMARY_EXCHANGES.get(primary)
        if code is not None:
            return code
        try:
            return exchange_code(primary)
        except ValueError:
            log.warning(
                "ib %s: primary exchange %r has no calendar here; name one with --exchange",
                symbol,
                primary,
            )
            return None

    def contract(self, symbol: str) -> tuple[Any, str]:
        """(ib_async contract, whatToShow): a pair of known currencies is Forex (midpoint
        prices), anything else a US stock routed through SMART (trades)."""
        ib_async = _ib_async()
        if len(symbol) == 6 and symbol[:3] in _CURRENCIES and symbol[3:] in _CURRENCIES:
            return ib_async.Forex(symbol), "MIDPOINT"
        return ib_async.Stock(symbol, "SMART", "USD"), "TRADES"

    def _connected(self) -> Any:
        if self._ib is None:
            self._ib = _ib_async().IB()
        # Without this ib_async answers a refused request with an empty list and a log line,
        # which would read as "no bars there".
        self._ib.RaiseRequestErrors = True
        if not self._ib.isConnected():
            try:
                self._ib.connect(self.host, self.port, clientId=self.client_id,
                                 timeout=self.connect_timeout_s, readonly=True)  # fmt: skip
            except (OSError, TimeoutError) as exc:
                raise ProviderError(
                    f"ib: cannot connect to IB Gateway/TWS at {self.host}:{self.port} "
                    f"(client id {self.client_id}): {exc or type(exc).__name__}; is it running "
                    "with the API enabled? (KTRDR_IB_HOST, KTRDR_IB_PORT, KTRDR_IB_CLIENT_ID)"
                ) from None
        return self._ib

    def close(self) -> None:
        if self._ib is not None and self._ib.isConnected():
            self._ib.disconnect()

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
        self.check_symbol(symbol)
        where = self.where(symbol, timeframe)
        step = timeframe.seconds
        now = int(time.time()) if now is None else now
        end = min(end, now - step + 1)
        if start >= end:
            return []
        ib = self._connected()
        contract, what = self.contract(symbol)
        qualified = ib.qualifyContracts(contract)
        if not qualified:
            raise ProviderError(f"{where}: IB knows no contract for {symbol} ({contract})")
        contract = qualified[0]
        duration, span = PAGES[timeframe]
        pages: list[list[Bar]] = []
        cursor = end  # IB pages backwards from endDateTime
        fetched = 0
        while cursor > start:
            end_at = datetime.fromtimestamp(cursor, tz=UTC)
            request = (symbol, end_at, duration, BAR_SIZES[timeframe], what)
            raw = self._request(ib, contract, request, where)
            parsed = [_bar(item, where, timeframe) for item in raw]
            page = sorted((b for b in parsed if start <= b.time < min(end, cursor)),
                          key=lambda b: b.time)  # fmt: skip
            check_bars(page, where, timeframe)
            if page:
                pages.append(page)
                fetched += len(page)
            if on_page is not None:
                on_page(fetched, end - (cursor - start))
            if not parsed:
                break  # IB has nothing before this point
            earliest = min(b.time for b in parsed)
            cursor = earliest if earliest < cursor else cursor - span
        bars = [bar for page in reversed(pages) for bar in page]
        check_bars(bars, where, timeframe)
        return bars

    def _request(self, ib: Any, contract: Any, request: tuple[Any, ...], where: str) -> list:  # type: ignore[type-arg]
        symbol, end_at, duration, bar_size, what = request
        attempt = 0
        while True:
            self.pacing.before(symbol, request)
            self.requests += 1
            try:
                return list(
                    ib.reqHistoricalData(
                        contract,
                        endDateTime=end_at,
                        durationStr=duration,
                        barSizeSetting=bar_size,
                        whatToShow=what,
                        useRTH=False,
                        formatDate=2,
                        timeout=self.request_timeout_s,
                    )
                )
            except Exception as exc:  # ib_async.RequestError, or a lost connection
                code = getattr(exc, "code", None)
                message = getattr(exc, "message", None) or str(exc)
                pacing = code == PACING_CODE and "pacing" in message.lower()
                if not pacing and not isinstance(exc, ConnectionError | TimeoutError):
                    raise ProviderError(
                        f"{where}: IB refused historical data ending {end_at:%Y-%m-%dT%H:%MZ} "
                        f"(error {code}: {message})"
                    ) from None
                attempt += 1
                if attempt > self.max_retries:
                    raise ProviderError(
                        f"{where}: gave up after {self.max_retries} retries; last: "
                        f"error {code}: {message}"
                    ) from None
                self.retries += 1
                self.wait(self.backoff(attempt))


def _bar(item: Any, where: str, timeframe: Timeframe) -> Bar:
    """An ib_async BarData as a Bar; ``date`` is a UTC datetime (intraday, formatDate=2) or
    a date (daily and weekly bars). A weekly bar is put on ktrdr's Monday grid."""
    stamp = item.date
    if isinstance(stamp, datetime):
        moment = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    elif isinstance(stamp, date):
        moment = datetime(stamp.year, stamp.month, stamp.day, tzinfo=UTC)
    else:
        raise ProviderError(f"{where}: IB bar with date {stamp!r}, expected a date or datetime")
    try:
        values = [float(item.open), float(item.high), float(item.low), float(item.close)]
        volume = max(0.0, float(item.volume))  # IB sends -1 when it has no volume (FX)
    except (TypeError, ValueError) as exc:
        raise ProviderError(f"{where}: IB bar at {iso(int(moment.timestamp()))}: {exc}") from None
    opened = int(moment.timestamp())
    if timeframe is Timeframe.W1:
        opened -= (opened - timeframe.origin) % timeframe.seconds
    return Bar(opened, *values, volume)


def _ib_async() -> Any:
    try:
        import ib_async
    except ImportError:
        raise ProviderError(
            f"ib: the Interactive Brokers provider needs ib_async: {INSTALL_HINT}"
        ) from None
    return ib_async
