"""Shared data for the market-data tests: CSV builders and the real OHLCV files."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from ohlcv_samples import HEADER


@pytest.fixture
def make_csv() -> Callable[..., str]:
    """Build CSV text from a header and rows (each row one line), newline-terminated."""

    def build(rows: list[str], header: str = HEADER) -> str:
        return "\n".join([header, *rows]) + "\n"

    return build


def _backtesting_file(name: str) -> Path:
    # find_spec locates the package without importing it (its import pulls in bokeh: seconds).
    spec = importlib.util.find_spec("backtesting")
    assert spec is not None and spec.origin, "backtesting is a test dependency of the workspace"
    path = Path(spec.origin).parent / "test" / name
    assert path.is_file(), f"backtesting ships {name} at {path}"
    return path


@pytest.fixture(scope="session")
def goog_csv() -> Path:
    """backtesting's GOOG daily file (2004-2013): pandas export, unnamed date column."""
    return _backtesting_file("GOOG.csv")


@pytest.fixture(scope="session")
def eurusd_csv() -> Path:
    """backtesting's EURUSD hourly file (2017-2018): naive 'YYYY-MM-DD HH:MM:SS' times."""
    return _backtesting_file("EURUSD.csv")
