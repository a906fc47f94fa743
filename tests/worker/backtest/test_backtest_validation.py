"""Bad inputs fail with a ValueError that names the problem and where it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.backtest import BacktestConfig, run
from tests.support.bars import make_bars

OPENS = [10.0, 11.0, 12.0, 13.0, 14.0]


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars(OPENS)


def flat(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(0, index=frame.index)


@pytest.mark.parametrize(
    "values,message",
    [
        ([0, 1, 2, 0, 0], r"must be -1, 0 or 1: got 2 at bar 2 \(2024-01-01 02:00"),
        ([0, 0.5, 0, 0, 0], r"must be -1, 0 or 1: got 0\.5 at bar 1"),
        ([0, np.nan, 0, 0, 0], r"NaN or missing values at bar 1"),
        ([0, -1, -1, 0, 0], r"-1 \(short\) at bar 1 .* and 1 other bar.*allow_short is False"),
    ],
)
def test_bad_target_values(bars, values, message):
    with pytest.raises(ValueError, match=message):
        run(bars, pd.Series(values, index=bars.index), BacktestConfig())


def test_non_numeric_targets(bars):
    with pytest.raises(ValueError, match="numeric"):
        run(bars, pd.Series(["long"] * 5, index=bars.index), BacktestConfig())


def test_misaligned_index(bars):
    shifted = pd.Series(0, index=bars.index + pd.Timedelta(hours=1))
    with pytest.raises(ValueError, match=r"misaligned .* first difference at bar 0"):
        run(bars, shifted, BacktestConfig())
    with pytest.raises(ValueError, match=r"misaligned .* 4 positions for 5 bars"):
        run(bars, flat(bars).iloc[:4], BacktestConfig())
    with pytest.raises(ValueError, match="misaligned"):
        run(bars, pd.Series(0, index=range(5)), BacktestConfig())


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
def test_nan_price_inside_the_window(bars, column):
    bars.loc[bars.index[3], column] = np.nan
    with pytest.raises(ValueError, match=rf"'{column}' has NaN .* at bar 3 \(2024-01-01 03:00"):
        run(bars, flat(bars), BacktestConfig())


def test_non_positive_price(bars):
    bars.loc[bars.index[2], "open"] = 0.0
    with pytest.raises(ValueError, match=r"'open' has prices <= 0 at bar 2"):
        run(bars, flat(bars), BacktestConfig())


def test_index_must_be_utc_sorted_and_unique(bars):
    naive = bars.tz_localize(None)
    with pytest.raises(ValueError, match="UTC"):
        run(naive, flat(naive), BacktestConfig())
    shuffled = bars.iloc[[0, 2, 1, 3, 4]]
    with pytest.raises(ValueError, match=r"strictly increasing.*bar 2"):
        run(shuffled, flat(shuffled), BacktestConfig())
    duplicated = bars.iloc[[0, 1, 1, 2]]
    with pytest.raises(ValueError, match="strictly increasing"):
        run(duplicated, flat(duplicated), BacktestConfig())
    with pytest.raises(ValueError, match="at least 2 bars"):
        run(bars.iloc[:1], flat(bars.iloc[:1]), BacktestConfig())


def test_missing_column(bars):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['close'\]"):
        run(bars.drop(columns="close"), flat(bars), BacktestConfig())


@pytest.mark.parametrize(
    "field,value",
    [
        ("capital", 0.0),
        ("capital", -1000.0),
        ("capital", float("nan")),
        ("commission", 1.0),
        ("commission", 1.5),
        ("commission", -0.001),
        ("slippage", 1.0),
        ("slippage", -0.1),
        ("position_size", 0.0),
        ("position_size", 1.5),
        ("fractional", "yes"),
        ("calendar", "nyse"),
        ("timeframe", "60m"),
        ("bars_per_year", 0.0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"BacktestConfig\.{field}"):
        BacktestConfig(**{field: value})


def test_config_must_be_a_backtest_config(bars):
    with pytest.raises(ValueError, match="BacktestConfig"):
        run(bars, flat(bars), {"capital": 1000})
