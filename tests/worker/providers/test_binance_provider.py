"""The Binance provider against a local server speaking the klines protocol."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ktrdr_core.timeframes import Timeframe
from ktrdr_worker.providers import ProviderError, make_provider
from ktrdr_worker.providers.binance import BinanceProvider
from tests.support.fake_binance import fixture

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
H = 3600
NOW = T0 + 400 * H  # long after the fixture's 240 bars


def provider(server, **kwargs) -> tuple[BinanceProvider, list[float]]:
    waits: list[float] = []
    made = make_provider("binance", {"KTRDR_BINANCE_URL": server.url}, sleep=waits.append, **kwargs)
    assert isinstance(made, BinanceProvider)
    return made, waits


def test_pages_through_a_range_and_converts_rows(binance, klines):
    source, waits = provider(binance)
    source.page_bars = 100
    pages = []
    bars = source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 240 * H, now=NOW,
                        on_page=lambda n, reached: pages.append((n, reached)))  # fmt: skip
    assert len(bars) == 240 and len(binance.requests) == 3
    assert [q["startTime"] for q in binance.requests] == [
        str(T0 * 1000),
        str((T0 + 100 * H) * 1000),
        str((T0 + 200 * H) * 1000),
    ]
    assert all(q["limit"] == "100" and q["interval"] == "1h" for q in binance.requests)
    assert pages == [(100, T0 + 100 * H), (200, T0 + 200 * H), (240, T0 + 240 * H)]
    first = klines[0]
    assert bars[0] == (T0, float(first[1]), float(first[2]), float(first[3]), float(first[4]),
                       float(first[5]))  # fmt: skip
    assert [b.time for b in bars] == [T0 + i * H for i in range(240)]
    assert waits == [] and source.retries == 0


def test_only_finished_bars_and_only_the_range(binance):
    source, _ = provider(binance)
    # "now" in the middle of bar 50: bars 0..49 are finished, bar 50 is still forming.
    bars = source.fetch("BTCUSDT", Timeframe.H1, T0 + 10 * H, T0 + 200 * H, now=T0 + 50 * H + 60)
    assert [b.time for b in bars] == [T0 + i * H for i in range(10, 50)]


def test_waits_out_a_429_with_its_retry_after(binance):
    binance.script.append((429, {"Retry-After": "7"}, fixture("binance_429.json")))
    source, waits = provider(binance)
    bars = source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 10 * H, now=NOW)
    assert len(bars) == 10
    assert waits == [7.0] and source.retries == 1 and len(binance.requests) == 2


def test_a_418_ban_is_waited_out_too(binance):
    binance.script.append((418, {"Retry-After": "120"}, {"code": -1003, "msg": "IP banned"}))
    source, waits = provider(binance)
    assert len(source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 3 * H, now=NOW)) == 3
    assert waits == [120.0]


def test_a_server_error_is_retried_with_backoff(binance):
    binance.script.extend([(503, {}, {"code": -1001, "msg": "Internal error; unable to process "
                                      "your request. Please try again."}),
                           (502, {}, b"<html>Bad Gateway</html>")])  # fmt: skip
    source, waits = provider(binance, backoff_s=0.5)
    bars = source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 5 * H, now=NOW)
    assert len(bars) == 5
    assert waits == [0.5, 1.0] and source.retries == 2


def test_gives_up_after_max_retries_naming_the_last_failure(binance):
    for _ in range(4):
        binance.script.append((500, {}, {"code": -1000, "msg": "An unknown error occurred"}))
    source, waits = provider(binance, max_retries=3)
    with pytest.raises(ProviderError) as caught:
        source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 5 * H, now=NOW)
    message = str(caught.value)
    assert message.startswith("binance BTCUSDT 1h: gave up on the page from 2024-01-01T00:00:00Z")
    assert "HTTP 500: An unknown error occurred (code -1000)" in message
    assert len(waits) == 3


def test_malformed_rows_are_a_clear_error(binance):
    binance.script.append((200, {}, fixture("binance_malformed_rows.json")))
    source, _ = provider(binance)
    with pytest.raises(ProviderError) as caught:
        source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 5 * H, now=NOW)
    message = str(caught.value)
    assert (
        "binance BTCUSDT 1h: malformed kline (row 2 of the page from 2024-01-01T00:00:00Z)"
        in message
    )
    assert "not-a-number" in message


def test_inconsistent_prices_are_refused(binance, klines):
    t = T0 + 2 * H
    binance.changes[t] = {3: "1.0", 2: "0.5"}  # high below low
    source, _ = provider(binance)
    with pytest.raises(ProviderError, match="bar at 2024-01-01T02:00:00Z has inconsistent prices"):
        source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 5 * H, now=NOW)


def test_an_unknown_symbol_names_provider_and_symbol(binance):
    source, waits = provider(binance)
    with pytest.raises(ProviderError) as caught:
        source.fetch("ETHBTC", Timeframe.H1, T0, T0 + 5 * H, now=NOW)
    assert str(caught.value) == (
        "binance ETHBTC 1h: Binance refused the request (HTTP 400: Invalid symbol. "
        "(code -1121)); check the symbol and interval"
    )
    assert waits == []  # a refusal is an answer, not retried


def test_a_symbol_binance_cannot_spell_is_refused_before_asking(binance):
    source, _ = provider(binance)
    with pytest.raises(ProviderError, match=r"'BRK\.B' is not a binance symbol: use the pair"):
        source.fetch("BRK.B", Timeframe.D1, T0, T0 + 5 * H, now=NOW)
    assert binance.requests == []


def test_an_unreachable_server_is_retried_then_named(binance):
    source, waits = provider(binance, max_retries=2)
    source.base_url = "http://127.0.0.1:9"
    source._http.base_url = "http://127.0.0.1:9"
    with pytest.raises(ProviderError, match=r"gave up .* cannot reach http://127\.0\.0\.1:9"):
        source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 5 * H, now=NOW)
    assert len(waits) == 2


def test_near_the_weight_limit_it_waits_for_the_next_minute(binance):
    binance.weight = 5990  # the server's count for this minute, as Binance reports it
    source, waits = provider(binance)
    source.page_bars = 100
    source.fetch("BTCUSDT", Timeframe.H1, T0, T0 + 150 * H, now=NOW)
    assert len(waits) == 1 and 0.5 <= waits[0] <= 60.5


def test_unknown_provider_names_the_known_ones():
    with pytest.raises(ProviderError, match="unknown provider 'kraken'; known: binance, ib"):
        make_provider("kraken", {})


def test_binance_trades_around_the_clock(binance):
    source, _ = provider(binance)
    assert source.exchange("BTCUSDT") == "24/7" and binance.requests == []
