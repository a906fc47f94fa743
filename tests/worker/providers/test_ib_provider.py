"""The Interactive Brokers provider against a stand-in for ``ib_async.IB`` (IB Gateway is
outside this machine's reach): the methods the provider calls, real ``BarData`` objects,
real ``RequestError`` pacing violations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ib_async
import pytest

from ktrdr_core.timeframes import Timeframe
from ktrdr_worker.providers import ProviderError, make_provider
from ktrdr_worker.providers.ib import PACING_CODE, IbProvider, PacingGate

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
H = 3600
DURATIONS = {"1 D": 86_400, "1 M": 30 * 86_400, "1 Y": 365 * 86_400}


class FakeIB:
    """What IB Gateway would answer: bars of one series, paged backwards from endDateTime."""

    def __init__(self, series: dict[int, float], *, pacing_errors: int = 0):
        self.series = series  # bar open (epoch s) -> close
        self.pacing_errors = pacing_errors
        self.connected = False
        self.calls: list[dict] = []

    def isConnected(self) -> bool:
        return self.connected

    def connect(self, host, port, clientId, timeout, readonly):
        self.connected = (host, port, clientId) == ("gw.local", 4001, 9)
        if not self.connected:
            raise ConnectionRefusedError(111, "Connect call failed")

    def disconnect(self) -> None:
        self.connected = False

    def reqContractDetails(self, contract):
        primary = {"AAPL": "NASDAQ", "SHEL": "LSE", "ODD": "MOON"}.get(contract.symbol)
        if primary is None:
            return []
        listed = ib_async.Stock(contract.symbol, "SMART", "USD", primaryExchange=primary)
        return [ib_async.ContractDetails(contract=listed)]

    def qualifyContracts(self, contract):
        if contract.symbol in ("NOPE",):
            return []
        contract.conId = 12087792
        return [contract]

    def reqHistoricalData(self, contract, endDateTime, durationStr, barSizeSetting,
                          whatToShow, useRTH, formatDate, timeout):  # fmt: skip
        self.calls.append({"end": endDateTime, "duration": durationStr, "bar": barSizeSetting,
                           "what": whatToShow, "format": formatDate})  # fmt: skip
        if self.pacing_errors:
            self.pacing_errors -= 1
            raise ib_async.RequestError(
                7, PACING_CODE,
                "Historical Market Data Service error message:API historical data query "
                "cancelled: pacing violation",
            )  # fmt: skip
        end = int(endDateTime.timestamp())
        begin = end - DURATIONS[durationStr]
        daily = barSizeSetting == "1 day"
        return [
            ib_async.BarData(
                date=datetime.fromtimestamp(t, tz=UTC).date()
                if daily
                else datetime.fromtimestamp(t, tz=UTC),
                open=c,
                high=c + 1,
                low=c - 1,
                close=c,
                volume=-1 if whatToShow == "MIDPOINT" else 100,
            )
            for t, c in sorted(self.series.items())
            if begin <= t < end
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def provider(fake: FakeIB, clock: Clock | None = None) -> IbProvider:
    clock = clock or Clock()
    env = {"KTRDR_IB_HOST": "gw.local", "KTRDR_IB_PORT": "4001", "KTRDR_IB_CLIENT_ID": "9"}
    made = make_provider("ib", env, ib=fake, sleep=clock.sleep, clock=clock)
    assert isinstance(made, IbProvider)
    return made


def test_hourly_forex_pages_backwards_over_months():
    series = {T0 + i * H: 1.1 + i * 1e-5 for i in range(24 * 75)}  # 75 days of hours
    fake = FakeIB(series)
    source = provider(fake)
    end = T0 + 75 * 86_400
    bars = source.fetch("EURUSD", Timeframe.H1, T0, end, now=end + H)
    assert [b.time for b in bars] == sorted(series)
    assert bars[0].volume == 0.0  # IB sends -1 for FX volume
    assert [c["duration"] for c in fake.calls] == ["1 M"] * 3
    assert {c["what"] for c in fake.calls} == {"MIDPOINT"} and fake.calls[0]["bar"] == "1 hour"
    assert fake.calls[0]["end"] == datetime.fromtimestamp(end, tz=UTC)
    # Each next request ends where the previous page began.
    assert fake.calls[1]["end"] == fake.calls[0]["end"] - timedelta(days=30)


def test_daily_stock_bars_and_trades():
    series = {T0 + d * 86_400: 180.0 + d for d in range(10)}
    fake = FakeIB(series)
    bars = provider(fake).fetch("AAPL", Timeframe.D1, T0, T0 + 10 * 86_400, now=T0 + 20 * 86_400)
    assert [b.close for b in bars] == [180.0 + d for d in range(10)]
    assert fake.calls[0]["what"] == "TRADES" and fake.calls[0]["bar"] == "1 day"


def test_a_pacing_violation_is_waited_out_and_retried():
    fake = FakeIB({T0 + i * H: 1.0 + i for i in range(5)}, pacing_errors=2)
    clock = Clock()
    source = provider(fake, clock)
    bars = source.fetch("EURUSD", Timeframe.H1, T0, T0 + 5 * H, now=T0 + 10 * H)
    assert len(bars) == 5 and source.retries == 2
    # Backoff 15 s then 30 s; the identical request is also held 15 s apart.
    assert sum(clock.waits) >= 45 and len(fake.calls) == 3


def test_pacing_gate_keeps_identical_requests_15_s_apart_and_60_per_10_min():
    clock = Clock()
    gate = PacingGate(clock, clock.sleep)
    gate.before("EURUSD", ("EURUSD", 1))
    gate.before("EURUSD", ("EURUSD", 1))
    assert clock.waits == [15.0]
    clock.waits.clear()
    for i in range(58):
        gate.before(f"S{i}", (f"S{i}",))
    assert clock.waits == []  # 60 sent: the 61st waits for the first to leave the window
    gate.before("X", ("X",))
    assert clock.waits == [600.0 - 15.0]


def test_pacing_gate_limits_bursts_on_one_contract():
    clock = Clock()
    gate = PacingGate(clock, clock.sleep)
    for i in range(6):
        gate.before("AAPL", ("AAPL", i))
    gate.before("AAPL", ("AAPL", 6))
    assert clock.waits == [2.0]


def test_an_unknown_contract_is_named():
    with pytest.raises(ProviderError, match="ib NOPE 1d: IB knows no contract for NOPE"):
        provider(FakeIB({})).fetch("NOPE", Timeframe.D1, T0, T0 + 86_400 * 5, now=T0 + 86_400 * 9)


def test_another_request_error_is_not_retried():
    class Refusing(FakeIB):
        def reqHistoricalData(self, *args, **kwargs):
            raise ib_async.RequestError(3, 200, "No security definition has been found")

    source = provider(Refusing({}))
    with pytest.raises(ProviderError, match=r"error 200: No security definition") as caught:
        source.fetch("AAPL", Timeframe.H1, T0, T0 + 5 * H, now=T0 + 9 * H)
    assert str(caught.value).startswith("ib AAPL 1h: IB refused historical data ending")
    assert source.retries == 0


def test_no_gateway_says_where_it_looked():
    env = {"KTRDR_IB_HOST": "127.0.0.1", "KTRDR_IB_PORT": "4002"}
    source = make_provider("ib", env, ib=FakeIB({}))
    with pytest.raises(
        ProviderError, match=r"cannot connect to IB Gateway/TWS at 127\.0\.0\.1:4002"
    ):
        source.fetch("AAPL", Timeframe.H1, T0, T0 + 5 * H, now=T0 + 9 * H)


def test_a_bad_port_setting_is_named():
    with pytest.raises(ProviderError, match="KTRDR_IB_PORT='gateway' is not a whole number"):
        make_provider("ib", {"KTRDR_IB_PORT": "gateway"})


def test_missing_ib_async_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ib_async", None)  # as if the extra were not installed
    source = make_provider("ib", {})
    with pytest.raises(ProviderError, match=r"pip install 'ktrdr-worker\[ib\]'"):
        source.fetch("AAPL", Timeframe.H1, T0, T0 + 5 * H, now=T0 + 9 * H)


def test_the_contract_details_name_the_exchange():
    source = provider(FakeIB({}))
    assert source.exchange("AAPL") == "XNYS"  # every US venue keeps NYSE's sessions
    assert source.exchange("SHEL") == "XLON"  # an exchange_calendars alias
    assert source.exchange("ODD") is None  # a venue without a calendar: none is claimed
    # FX trades from Sunday 17:00 New York on no exchange's sessions: left to the heuristic.
    assert source.exchange("EURUSD") is None
    with pytest.raises(ProviderError, match="IB knows no contract details for"):
        source.exchange("NOPE")
