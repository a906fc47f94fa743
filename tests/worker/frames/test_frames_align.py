"""align_to_base: higher-timeframe bars appear on the base bar where they close, never before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.frames import align_to_base, resample_ohlcv
from tests.support.bars import ohlcv_frame, utc_index


def test_hand_example_4h_on_1h() -> None:
    base = ohlcv_frame(utc_index("2024-01-02", 12, "h"))  # 00:00 .. 11:00
    four = resample_ohlcv(base, "1h", "4h")  # 00:00, 04:00, 08:00
    aligned = align_to_base(four, "4h", base.index, "1h")
    assert aligned.index.equals(base.index)
    # 00:00-02:00: no 4h bar has closed yet.
    assert aligned.iloc[:3].isna().all().all()
    # The 00:00 4h bar closes at 04:00, the close of the 03:00 1h bar: visible from 03:00.
    first = four.loc["2024-01-02 00:00"]
    for hour in (3, 4, 5, 6):
        pd.testing.assert_series_equal(aligned.iloc[hour], first, check_names=False)
    # The 04:00 4h bar appears at 07:00, the 08:00 one at 11:00.
    pd.testing.assert_series_equal(aligned.iloc[7], four.iloc[1], check_names=False)
    pd.testing.assert_series_equal(aligned.iloc[10], four.iloc[1], check_names=False)
    pd.testing.assert_series_equal(aligned.iloc[11], four.iloc[2], check_names=False)
    # Its close is the close of the 1h bar it appears on: the values are exactly known then.
    assert aligned["close"].iloc[3] == base["close"].iloc[3]
    assert aligned["high"].iloc[3] == base["high"].iloc[:4].max()


def test_missing_base_bar_delays_visibility_to_the_next_bar() -> None:
    full = ohlcv_frame(utc_index("2024-01-02", 8, "h"))
    four = resample_ohlcv(full, "1h", "4h")
    base_index = full.index.delete(3)  # no 03:00 bar
    aligned = align_to_base(four, "4h", base_index, "1h")
    assert aligned.loc["2024-01-02 02:00"].isna().all()
    assert aligned.loc["2024-01-02 04:00", "close"] == four["close"].iloc[0]


def test_any_columns_align_and_integers_become_float() -> None:
    base_index = utc_index("2024-01-01", 48, "h")
    daily = pd.DataFrame(
        {"regime": [1, 2], "label": ["calm", "wild"]},
        index=utc_index("2024-01-01", 2, "D"),
    )
    aligned = align_to_base(daily, "1d", base_index, "1h")
    assert aligned["regime"].dtype == np.float64
    assert aligned["regime"].isna().sum() == 23
    assert aligned["regime"].iloc[23] == 1.0 and aligned["label"].iloc[23] == "calm"
    assert aligned["regime"].iloc[47] == 2.0


def test_weekly_on_daily_shows_the_week_from_the_next_monday(goog: pd.DataFrame) -> None:
    weekly = resample_ohlcv(goog, "1d", "1w")
    aligned = align_to_base(weekly, "1w", goog.index, "1d")
    # A week of stock bars ends on Friday, but a 1w bar covers Monday-to-Monday: it is shown
    # from the first bar at or after its close, the next Monday (Tuesday after a holiday).
    week = pd.Timestamp("2010-06-07", tz="UTC")
    assert aligned.loc["2010-06-11", "close"] != weekly.loc[week, "close"]
    assert aligned.loc["2010-06-14", "close"] == weekly.loc[week, "close"]
    assert aligned.loc["2010-06-14", "close"] == goog.loc["2010-06-11", "close"]


def truncation_mismatches(
    base: pd.DataFrame, base_tf: str, higher_tf: str, positions: range, align
) -> list[pd.Timestamp]:
    """Bars t where computing on data truncated at t differs from the full series at t."""
    full = align(base, base_tf, higher_tf)
    bad = []
    for i in positions:
        truncated = align(base.iloc[: i + 1], base_tf, higher_tf)
        pd.testing.assert_index_equal(truncated.index, base.index[: i + 1])
        now, later = truncated.iloc[-1].to_numpy(), full.iloc[i].to_numpy()
        if not np.array_equal(now, later, equal_nan=True):
            bad.append(base.index[i])
    return bad


def ktrdr_align(base: pd.DataFrame, base_tf: str, higher_tf: str) -> pd.DataFrame:
    higher = resample_ohlcv(base, base_tf, higher_tf)
    return align_to_base(higher, higher_tf, base.index, base_tf)


def lookahead_align(base: pd.DataFrame, base_tf: str, higher_tf: str) -> pd.DataFrame:
    # The classic mistake: show each higher bar from its OPEN, forward-filled.
    higher = resample_ohlcv(base, base_tf, higher_tf)
    return higher.reindex(base.index, method="ffill")


@pytest.mark.parametrize(("base_tf", "higher_tf"), [("1h", "4h"), ("1h", "1d"), ("1h", "1w")])
def test_no_lookahead_on_real_fx_data(eurusd: pd.DataFrame, base_tf: str, higher_tf: str) -> None:
    # Every 23rd bar (23 is prime to 24 and 168: every hour of the day and of the week comes
    # round) plus the first 30 bars, where no higher bar has closed yet.
    positions = range(0, len(eurusd), 23)
    assert truncation_mismatches(eurusd, base_tf, higher_tf, positions, ktrdr_align) == []
    head = range(30)
    assert truncation_mismatches(eurusd, base_tf, higher_tf, head, ktrdr_align) == []
    # The check has teeth: aligning at the bar open leaks the bar's future close.
    sample = range(0, len(eurusd), 97)
    assert truncation_mismatches(eurusd, base_tf, higher_tf, sample, lookahead_align)


def test_no_lookahead_weekly_on_daily(goog: pd.DataFrame) -> None:
    positions = range(0, len(goog), 11)
    assert truncation_mismatches(goog, "1d", "1w", positions, ktrdr_align) == []
    assert truncation_mismatches(goog, "1d", "1w", positions[::5], lookahead_align)


def test_refuses_mismatched_timeframes() -> None:
    base = ohlcv_frame(utc_index("2024-01-02", 8, "h"))
    four = resample_ohlcv(base, "1h", "4h")
    with pytest.raises(ValueError, match="whole multiple"):
        align_to_base(base, "1h", four.index, "4h")
    with pytest.raises(ValueError, match="not a 1d bar open"):
        align_to_base(four, "1d", base.index, "1h")
    with pytest.raises(ValueError, match="tz-aware UTC"):
        align_to_base(four, "4h", base.index.tz_localize(None), "1h")
    empty = align_to_base(four.iloc[:0], "4h", base.index, "1h")
    assert empty.index.equals(base.index) and empty.isna().all().all()
