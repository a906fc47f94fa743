"""OHLCV frames built by hand or from a seed: canonical shape (UTC index, float64 ``open, high,
low, close, volume``), for the frame and backtest tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

OHLCV = ["open", "high", "low", "close", "volume"]


def utc_index(start: str, periods: int, freq: str) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq=freq, tz="UTC", name="timestamp")


def ohlcv_frame(index: pd.DatetimeIndex, seed: int = 0) -> pd.DataFrame:
    """A random-walk canonical frame on ``index`` (consistent OHLC, positive prices)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, len(index)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, len(index)))
    volume = rng.integers(0, 1000, len(index)).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """backtesting.py's frames (Open/High/…, naive index) in ktrdr's canonical ohlcv shape."""
    out = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    out = out.astype(np.float64)
    out.index = pd.DatetimeIndex(out.index).tz_localize("UTC")
    return out


def make_bars(
    opens: list[float],
    closes: list[float] | None = None,
    freq: str = "1h",
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """A canonical frame with the given opens and closes (closes default to the opens)."""
    o = np.asarray(opens, dtype=np.float64)
    c = o if closes is None else np.asarray(closes, dtype=np.float64)
    index = pd.date_range(start, periods=o.size, freq=freq, tz="UTC")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": 1.0,
        },
        index=index,
    )


def random_walk(n: int, seed: int, freq: str = "1h") -> pd.DataFrame:
    """A seeded geometric random walk with gaps between close and next open."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    opens = prev * np.exp(rng.normal(0.0, 0.002, n))
    return make_bars(list(opens), list(close), freq=freq)
