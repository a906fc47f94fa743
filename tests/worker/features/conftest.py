"""Real market data as canonical ohlcv frames, and a small strategy for feature tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.strategy import Strategy, load_strategy
from ktrdr_worker.frames import resample_ohlcv


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The backtesting package's frames in ktrdr's canonical ohlcv shape."""
    out = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    out = out.astype(np.float64)
    out.index = pd.DatetimeIndex(out.index, name="timestamp").tz_localize("UTC")
    return out


@pytest.fixture(scope="session")
def goog() -> pd.DataFrame:
    """GOOG daily bars, 2004-2013 (2,148 bars)."""
    from backtesting.test import GOOG

    return canonical(GOOG)


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """EURUSD hourly bars, 2017-2018 (5,000 bars, weekends missing)."""
    from backtesting.test import EURUSD

    return canonical(EURUSD)


@pytest.fixture(scope="session")
def eurusd_4h(eurusd: pd.DataFrame) -> pd.DataFrame:
    return resample_ohlcv(eurusd, "1h", "4h", drop_incomplete=True)


SMALL_STRATEGY = """
name: feature_test
data:
  symbols: [EURUSD]
  timeframe: 1h
  extra_timeframes: [4h]
indicators:
  rsi_14: {type: rsi, params: {period: 14}}
  z_20: {type: zscore, params: {period: 20}}
  macd_a: {type: macd, params: {fast: 12, slow: 26, signal: 9}}
fuzzy_sets:
  rsi_zone:
    indicator: rsi_14
    low: {type: trapezoidal, params: [null, 0, 30, 45]}
    high: {type: trapezoidal, params: [55, 70, 100, null]}
  band:
    indicator: z_20
    inside: {type: triangular, params: [-2, 0, 2]}
inputs:
  - fuzzy_set: rsi_zone
    timeframes: [1h, 4h]
  - fuzzy_set: band
  - raw: macd_a.hist
    timeframes: [4h]
  - raw: rsi_14
labels:
  forward_return: {horizon: 4, buy_threshold: 0.002, sell_threshold: -0.002}
"""


@pytest.fixture(scope="session")
def small_strategy() -> Strategy:
    """1h base with 4h context: fuzzy and raw inputs, a multi-output indicator."""
    return load_strategy(SMALL_STRATEGY)
