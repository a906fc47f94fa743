"""Small hand-made frames for the frame tests (a plain module: conftest is not importable)."""

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
