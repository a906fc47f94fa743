"""Real OHLCV frames for the frame tests, loaded through ``load_ohlcv``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from ktrdr_worker.frames import load_ohlcv


def backtesting_file(name: str) -> Path:
    # find_spec locates the package without importing it (its import pulls in bokeh: seconds).
    spec = importlib.util.find_spec("backtesting")
    assert spec is not None and spec.origin, "backtesting is a test dependency of the workspace"
    return Path(spec.origin).parent / "test" / name


@pytest.fixture(scope="session")
def goog_path() -> Path:
    return backtesting_file("GOOG.csv")


@pytest.fixture(scope="session")
def goog(goog_path: Path) -> pd.DataFrame:
    """GOOG daily, 2004-08-19 .. 2013-03-01, canonical frame."""
    return load_ohlcv(goog_path, "1d")


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """EURUSD hourly, 2017-04-19 .. 2018-02-07, canonical frame (FX weekends missing)."""
    return load_ohlcv(backtesting_file("EURUSD.csv"), "1h")
