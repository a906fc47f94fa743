"""No lookahead: a feature's value at bar t must not change when the bars after t are removed.

For every shipped example strategy (and the small test strategy), every feature — fuzzy
degrees, raw values, base and higher timeframes — is computed on the full series and on the
series truncated at bar t, for many t, and must be identical at t. Cuts fall at every
position inside a higher-timeframe bar, so a higher bar still forming at t is exercised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.examples import list_examples, load_example
from ktrdr_worker.features import compute_features
from ktrdr_worker.frames import resample_ohlcv

CUTS = 36


def data_for(strategy, goog, eurusd, eurusd_4h) -> pd.DataFrame:
    by_base = {"1d": goog, "1h": eurusd, "4h": eurusd_4h}
    base = strategy.data.timeframe.value
    assert base in by_base, f"no test data for base timeframe {base}: add a frame here"
    return by_base[base]


def cut_points(full: pd.DataFrame, count: int, seed: int) -> list[int]:
    """Bars after the warm-up: random ones plus a run of consecutive ones (every phase of a
    higher-timeframe bar, including its first and last base bar)."""
    complete = np.flatnonzero(full.notna().all(axis=1).to_numpy())
    start = int(complete[0])
    rng = np.random.default_rng(seed)
    random = rng.choice(np.arange(start, len(full)), size=count, replace=False)
    run = np.arange(start + 50, start + 50 + 30)
    return sorted({*random.tolist(), *run.tolist(), len(full) - 1})


def assert_no_lookahead(strategy, data: pd.DataFrame, seed: int) -> list[int]:
    full = compute_features(strategy, data)
    cuts = cut_points(full, CUTS, seed)
    for t in cuts:
        part = compute_features(strategy, data.iloc[: t + 1])
        assert list(part.columns) == list(full.columns)
        got, want = part.iloc[-1].to_numpy(), full.iloc[t].to_numpy()
        differing = [
            name
            for name, g, w in zip(full.columns, got, want, strict=True)
            if not (g == w or (np.isnan(g) and np.isnan(w)))
        ]
        assert not differing, f"bar {t} ({data.index[t]}): {differing} change with later bars"
    return cuts


@pytest.mark.parametrize("name", list_examples())
def test_example_strategy_features_do_not_look_ahead(name, goog, eurusd, eurusd_4h) -> None:
    strategy = load_example(name)
    data = data_for(strategy, goog, eurusd, eurusd_4h)
    kinds = {(f.kind, f.timeframe != strategy.data.timeframe) for f in strategy.features()}
    assert ("fuzzy", False) in kinds  # every example has fuzzy features on its base timeframe
    cuts = assert_no_lookahead(strategy, data, seed=len(name))
    for extra in strategy.data.extra_timeframes:
        # Some cuts end inside a higher bar: the truncated data's last higher bar is partial.
        partial = [
            t
            for t in cuts
            if not resample_ohlcv(data.iloc[: t + 1], strategy.data.timeframe, extra).attrs[
                "last_bar_complete"
            ]
        ]
        assert len(partial) > len(cuts) // 3


def test_small_strategy_features_do_not_look_ahead(small_strategy, eurusd) -> None:
    assert_no_lookahead(small_strategy, eurusd, seed=3)


def test_the_check_catches_a_higher_bar_shown_before_it_closes(eurusd) -> None:
    # The classic bug: showing a 4h bar from its open. The same truncation check flags it.
    def leaky(ohlcv: pd.DataFrame) -> pd.Series:
        four = resample_ohlcv(ohlcv, "1h", "4h")
        return four["close"].reindex(ohlcv.index, method="ffill")

    full = leaky(eurusd)
    changed = [t for t in range(1000, 1040) if leaky(eurusd.iloc[: t + 1]).iloc[-1] != full.iloc[t]]
    assert len(changed) >= 25  # every cut but those on the last hour of a 4h bar
