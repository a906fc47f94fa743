"""The page's series: min/max buckets past MAX_POINTS keep every trade and the deepest
drawdown, and prices become one candle per bucket."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ktrdr_worker.models.series import MAX_POINTS, bucket_edges, extreme_positions, symbol_series


def _walk(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close}, index=index
    )


def _report(frame: pd.DataFrame, trades: list[tuple[int, int]]) -> dict:
    stamp = frame.index
    return {
        "symbol": "X",
        "metrics": {"total_return": 0.1},
        "buy_and_hold": {"total_return": 0.2},
        "signal_counts": {"BUY": 1, "HOLD": 2, "SELL": 3, "no_data": 0},
        "zero_trade_reason": None,
        "trades": [
            {
                "entry_time": stamp[a].isoformat(),
                "exit_time": stamp[b].isoformat(),
                "side": "long",
                "entry_price": 1.0,
                "exit_price": 2.0,
                "net_pnl": 1.0,
                "exit_reason": "signal",
            }
            for a, b in trades
        ],
    }


def test_small_series_are_kept_whole():
    frame = _walk(500)
    equity = frame["close"] * 100
    page = symbol_series(_report(frame, [(10, 20)]), frame, equity, equity)
    assert not page["decimated"] and len(page["price"]) == len(page["equity"]) == 500
    assert page["trades"][0]["entry_time"] == int(frame.index[10].timestamp())


def test_a_million_bars_keep_every_trade_and_the_deepest_drawdown():
    n = 1_000_000
    frame = _walk(n)
    equity = frame["close"] * 100
    # A crash deep inside one bucket, and trades at arbitrary bars.
    equity.iloc[654_321] = equity.iloc[654_320] * 0.5
    trades = [(17, 9_999), (123_457, 123_458), (999_000, n - 1)]
    page = symbol_series(_report(frame, trades), frame, equity, frame["close"])
    assert page["decimated"] and page["bars"] == n
    for key in ("price", "equity", "drawdown", "buy_and_hold"):
        assert len(page[key]) <= MAX_POINTS + 2 * len(trades) + 2, key
    times = [t for t, _ in page["equity"]]
    assert times == sorted(set(times))
    kept = set(times)
    for a, b in trades:  # every trade's bars survive in the equity line
        assert int(frame.index[a].timestamp()) in kept and int(frame.index[b].timestamp()) in kept
    values = equity.to_numpy()
    deepest = float(np.max(1 - values / np.maximum.accumulate(values)))
    assert max(v for _, v in page["drawdown"]) == deepest
    # Each trade's markers sit on an existing candle: the one of its bar's bucket.
    candle_times = {row[0] for row in page["price"]}
    assert all(
        t["entry_time"] in candle_times and t["exit_time"] in candle_times for t in page["trades"]
    )
    # Candles keep the extremes of price: the highest high and lowest low over all bars.
    assert max(r[2] for r in page["price"]) == frame["high"].max()
    assert min(r[3] for r in page["price"]) == frame["low"].min()


def test_each_bucket_keeps_its_min_and_max():
    values = np.array([5.0, 1.0, 9.0, 3.0, 2.0, 8.0, 0.0, 4.0])
    edges = np.array([0, 4])
    assert extreme_positions(values, edges).tolist() == [0, 1, 2, 5, 6, 7]
    assert (
        bucket_edges(MAX_POINTS) is None and len(bucket_edges(MAX_POINTS * 10)) == MAX_POINTS // 2
    )
