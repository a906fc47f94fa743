"""Shared data for the market-data tests: CSV builders and the real OHLCV files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.market_data import HEADER, packaged_csv


@pytest.fixture
def make_csv() -> Callable[..., str]:
    """Build CSV text from a header and rows (each row one line), newline-terminated."""

    def build(rows: list[str], header: str = HEADER) -> str:
        return "\n".join([header, *rows]) + "\n"

    return build


@pytest.fixture(scope="session")
def goog_csv() -> Path:
    """backtesting's GOOG daily file (2004-2013): pandas export, unnamed date column."""
    return packaged_csv("GOOG.csv")


@pytest.fixture(scope="session")
def eurusd_csv() -> Path:
    """backtesting's EURUSD hourly file (2017-2018): naive 'YYYY-MM-DD HH:MM:SS' times."""
    return packaged_csv("EURUSD.csv")
