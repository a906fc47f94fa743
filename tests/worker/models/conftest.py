"""Fixtures for the model tests (data builders live in tests/support/training_data.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from ktrdr_core.strategy.loading import load_strategy
from ktrdr_core.strategy.schema import Strategy
from tests.support.training_data import PLANTED_STRATEGY, canonical, planted_market


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    from backtesting.test import EURUSD

    return canonical(EURUSD)


@pytest.fixture(scope="session")
def goog() -> pd.DataFrame:
    from backtesting.test import GOOG

    return canonical(GOOG)


@pytest.fixture(scope="session")
def planted_strategy() -> Strategy:
    return load_strategy(PLANTED_STRATEGY)


@pytest.fixture(scope="session")
def planted_data() -> pd.DataFrame:
    return planted_market()


@pytest.fixture(scope="session")
def planted_outcome(planted_strategy, planted_data):
    """One training of the planted-signal strategy, shared by the tests that need a bundle."""
    from ktrdr_worker.models.pipeline import train_strategy

    return train_strategy(planted_strategy, {"SYN": planted_data}, threads=1)
