"""Fixtures for the provider tests: the fake Binance server (fake_binance, beside this file)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_binance import FakeBinance, fixture


@pytest.fixture
def klines() -> list[list]:
    return fixture("binance_klines_btcusdt_1h.json")


@pytest.fixture
def binance(klines):
    with FakeBinance(klines) as server:
        yield server
