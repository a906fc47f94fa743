"""The seeded market simulator: valid, reproducible bars with the character of a market."""

import itertools
import math
import re
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


def test_the_planted_effect_is_opt_in_and_changes_only_the_drift():
    from ktrdr_core.simulator import RSI_REVERSION

    plain = list(simulate_bars(600, "1d", seed=4))
    assert plain == list(simulate_bars(600, "1d", seed=4, planted=None))
    planted = list(simulate_bars(600, "1d", seed=4, planted=RSI_REVERSION))
    # The same random draws: identical until the first RSI extreme, different after it.
    assert planted[:15] == plain[:15]
    assert planted != plain
    assert [b.timestamp for b in planted] == [b.timestamp for b in plain]
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in planted)
    assert simulate_csv(300, "1d", seed=4, planted=RSI_REVERSION) == simulate_csv(
        300, "1d", seed=4, planted=RSI_REVERSION
    )
    assert RSI_REVERSION.describe() == (
        "after a close with RSI(14) ≤ 30 the price drifts up, after one ≥ 70 down, by 1 daily "
        "volatility a day for up to 40 bars (until the opposite extreme)"
    )


def test_the_planted_effect_pushes_prices_away_from_rsi_extremes():
    """After an oversold close the next bars rise more often than without the effect (same
    draws), after an overbought close they fall more often: the effect is what it says."""
    from ktrdr_core.simulator import RSI_REVERSION, _WilderRsi

    def after_extremes(bars) -> tuple[float, float]:
        rsi, ups, downs = _WilderRsi(14), [], []
        closes = [b.close for b in bars]
        for i, close in enumerate(closes[:-10]):
            value = rsi.update(close)
            if value is None:
                continue
            ahead = closes[i + 10] / close - 1
            if value <= 30:
                ups.append(ahead)
            elif value >= 70:
                downs.append(ahead)
        return sum(ups) / len(ups), sum(downs) / len(downs)

    plain_up, plain_down = after_extremes(list(simulate_bars(4000, "1d", seed=7)))
    up, down = after_extremes(list(simulate_bars(4000, "1d", seed=7, planted=RSI_REVERSION)))
    assert up > 0.03 and down < -0.03  # 10 bars after an extreme: several percent either way
    assert up > plain_up + 0.02 and down < plain_down - 0.02


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rsi_period": 1}, "planted.rsi_period must be at least 2, got 1"),
        ({"oversold": 80.0}, "expected 0 < oversold < overbought < 100, got 80.0 and 70.0"),
        ({"strength": 0.0}, "strength must be > 0 and bars ≥ 1, got 0.0 and 40"),
    ],
)
def test_a_planted_effect_that_cannot_be_is_refused(changes, message):
    from ktrdr_core.simulator import PlantedEffect

    with pytest.raises(ValueError, match=re.escape(message)):
        PlantedEffect(**changes)
