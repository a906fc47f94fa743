"""Real market data as canonical ohlcv frames (UTC index, lower-case float columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The backtesting package's frames in ktrdr's canonical ohlcv shape."""
    out = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    out = out.astype(np.float64)
    out.index = pd.DatetimeIndex(out.index).tz_localize("UTC")
    return out


def _frame_from_closes(closes: list[float], freq: str = "1h") -> pd.DataFrame:
    close = np.asarray(closes, dtype=np.float64)
    index = pd.date_range("2024-01-01", periods=close.size, freq=freq, tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0},
        index=index,
    )


@pytest.fixture
def from_closes():
    """Builds an ohlcv frame whose bars open, close, top and bottom at the given closes."""
    return _frame_from_closes


@pytest.fixture(scope="session")
def goog() -> pd.DataFrame:
    from backtesting.test import GOOG

    return canonical(GOOG)


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    from backtesting.test import EURUSD

    return canonical(EURUSD)
