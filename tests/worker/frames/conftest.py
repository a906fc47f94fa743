"""Real OHLCV frames for the frame tests, loaded through ``load_ohlcv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ktrdr_worker.frames import load_ohlcv
from tests.support.market_data import packaged_csv


@pytest.fixture(scope="session")
def goog_path() -> Path:
    return packaged_csv("GOOG.csv")


@pytest.fixture(scope="session")
def goog(goog_path: Path) -> pd.DataFrame:
    """GOOG daily, 2004-08-19 .. 2013-03-01, canonical frame."""
    return load_ohlcv(goog_path, "1d")


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """EURUSD hourly, 2017-04-19 .. 2018-02-07, canonical frame (FX weekends missing)."""
    return load_ohlcv(packaged_csv("EURUSD.csv"), "1h")
