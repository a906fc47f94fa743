"""The seeded market simulator: valid, reproducible bars with the character of a market."""

import itertools
import math
import statistics

import pytest

from ktrdr_core.market_data import validate_ohlcv_csv
from ktrdr_core.simulator import simulate_bars, simulate_csv


def _returns(bars):
    closes = [bar.close for bar in bars]
    return [math.log(b / a) for a, b in itertools.pairwise(closes)]


def _autocorrelation(values, lag):
    mean = statistics.fmean(values)
    centred = [v - mean for v in values]
    top = sum(a * b for a, b in zip(centred, centred[lag:], strict=False))
    return top / sum(c * c for c in centred)


def test_same_seed_gives_the_same_file_and_another_seed_does_not():
    assert simulate_csv(300, "1h", seed=5) == simulate_csv(300, "1h", seed=5)
    assert simulate_csv(300, "1h", seed=5) != simulate_csv(300, "1h", seed=6)


@pytest.mark.parametrize("timeframe", ["5m", "1h", "1d"])
def test_output_passes_the_upload_validator(timeframe):
    result = validate_ohlcv_csv(simulate_csv(2000, timeframe, seed=1), timeframe)
    assert result.ok, result.issues[:3]
    assert result.row_count == 2000


def test_volatility_clusters_while_returns_stay_nearly_unpredictable():
    returns = _returns(list(simulate_bars(6000, "1d", seed=11)))
    squared = [r * r for r in returns]
    # Calm and turbulent stretches follow each other: squared returns are autocorrelated.
    assert _autocorrelation(squared, 1) > 0.1
    # ...but the next day's return is close to unpredictable from today's.
    assert abs(_autocorrelation(returns, 1)) < 0.1


def test_regimes_give_trends_in_both_directions():
    bars = list(simulate_bars(8000, "1d", seed=3))
    yearly = [math.log(bars[i + 365].close / bars[i].close) for i in range(0, 7600, 365)]
    assert max(yearly) > 0.1 and min(yearly) < -0.1


def test_annualised_volatility_is_that_of_a_stock_index_or_single_stock():
    returns = _returns(list(simulate_bars(6000, "1d", seed=2)))
    assert 0.15 < statistics.pstdev(returns) * math.sqrt(365) < 0.6


def test_bad_length_is_refused():
    with pytest.raises(ValueError, match="bars must be at least 1"):
        list(simulate_bars(0))
