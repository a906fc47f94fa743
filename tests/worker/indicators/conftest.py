"""Fixtures for the indicator tests: real OHLCV frames and a million synthetic bars."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.indicator_reference import load_real_frames, synthetic_ohlcv


@pytest.fixture(scope="session")
def real_frames() -> dict[str, pd.DataFrame]:
    """GOOG daily, EURUSD hourly and S&P 500 daily as canonical OHLCV frames."""
    return load_real_frames()


@pytest.fixture(scope="session")
def million_bars() -> pd.DataFrame:
    """1,000,000 synthetic one-minute bars (seeded)."""
    return synthetic_ohlcv(1_000_000)
