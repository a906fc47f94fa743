"""From probabilities to positions: threshold, separation, long-only/long-short, missing data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.models.decisions import (
    DecisionError,
    DecisionSettings,
    decide_positions,
    no_trade_reason,
)

B, H, S = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]
WEAK_B = [0.45, 0.3, 0.25]
NAN = [np.nan, np.nan, np.nan]


def _probs(*rows) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC")
    return pd.DataFrame(rows, index=index, columns=["BUY", "HOLD", "SELL"])


def test_long_only_buys_holds_and_sells_to_flat():
    decided = decide_positions(_probs(H, B, H, H, S, S, H), DecisionSettings(mode="long_only"))
    assert decided.positions.tolist() == [0, 1, 1, 1, 0, 0, 0]
    assert decided.counts["position_changes"] == 2
    assert (
        decided.counts["BUY"] == 1 and decided.counts["SELL"] == 2 and decided.counts["HOLD"] == 4
    )


def test_long_short_flips_and_a_sell_while_flat_opens_a_short():
    settings = DecisionSettings(mode="long_short")
    assert decide_positions(_probs(S, H, B, H), settings).positions.tolist() == [-1, -1, 1, 1]
    long_only = decide_positions(_probs(S, H, B, H), DecisionSettings(mode="long_only"))
    assert long_only.positions.tolist() == [0, 0, 1, 1]
    assert long_only.counts["ignored_short"] == 1


def test_signals_below_the_confidence_threshold_are_ignored():
    decided = decide_positions(
        _probs(WEAK_B, WEAK_B, B), DecisionSettings(confidence_threshold=0.6)
    )
    assert decided.positions.tolist() == [0, 0, 1]
    assert decided.counts["below_threshold"] == 2


def test_minimum_separation_between_position_changes():
    settings = DecisionSettings(min_separation_bars=3, mode="long_short")
    decided = decide_positions(_probs(B, S, S, S, B), settings)
    # The SELLs at bars 1 and 2 come too soon after the BUY at bar 0; bar 3 is 3 bars later.
    # The BUY at bar 4 is then too soon after that change.
    assert decided.positions.tolist() == [1, 1, 1, -1, -1]
    assert decided.counts["suppressed_by_separation"] == 3


def test_missing_features_open_no_new_position_and_keep_the_current_one():
    decided = decide_positions(_probs(NAN, B, NAN, NAN, S), DecisionSettings())
    assert decided.positions.tolist() == [0, 1, 1, 1, 0]
    assert decided.counts["no_data"] == 3


@pytest.mark.parametrize(
    ("rows", "settings", "reason"),
    [
        ([H, H, H], DecisionSettings(), "predicted HOLD on all 3 bars"),
        ([WEAK_B, H, WEAK_B], DecisionSettings(confidence_threshold=0.6), "highest was 0.450"),
        ([S, S, H], DecisionSettings(mode="long_only"), "long_short"),
        ([NAN, NAN], DecisionSettings(), "features were NaN"),
    ],
)
def test_zero_trades_always_come_with_a_reason(rows, settings, reason):
    decided = decide_positions(_probs(*rows), settings)
    assert reason in no_trade_reason(decided, settings, trades=0, bars=len(rows))


def test_bad_settings_name_the_key():
    with pytest.raises(DecisionError, match=r"decisions\.mode"):
        DecisionSettings(mode="short_only")
    with pytest.raises(DecisionError, match="confidence_threshold"):
        DecisionSettings(confidence_threshold=1.5)
