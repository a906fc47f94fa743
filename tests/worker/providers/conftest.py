"""Fixtures for the provider tests: the fake Binance server (tests/support/fake_binance.py)."""

from __future__ import annotations

import pytest

from tests.support.fake_binance import FakeBinance, fixture


@pytest.fixture
def klines() -> list[list]:
    return fixture("binance_klines_btcusdt_1h.json")


@pytest.fixture
def binance(klines):
    with FakeBinance(klines) as server:
        yield server
