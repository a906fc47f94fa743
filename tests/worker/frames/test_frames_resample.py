"""resample_ohlcv: first/max/min/last/sum per higher bar, labelled by its open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.frames import check_ohlcv, resample_ohlcv
from tests.support.bars import ohlcv_frame, utc_index


def hourly(rows: list[tuple[str, float, float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex([r[0] for r in rows], name="timestamp").tz_localize("UTC")
    data = [[float(x) for x in r[1:]] for r in rows]
    return pd.DataFrame(data, index=index.as_unit("us"), columns=list(OHLCV_NAMES))


OHLCV_NAMES = ("open", "high", "low", "close", "volume")


def test_hand_example_1h_to_4h() -> None:
    base = hourly(
        [
            ("2024-01-02 00:00", 10, 12, 9, 11, 100),
            ("2024-01-02 01:00", 11, 15, 10, 14, 200),
            ("2024-01-02 02:00", 14, 14, 8, 9, 300),
            ("2024-01-02 03:00", 9, 10, 8.5, 10, 400),
            ("2024-01-02 04:00", 10, 11, 9.5, 10.5, 10),
            ("2024-01-02 05:00", 10.5, 13, 10, 12, 20),
            ("2024-01-02 06:00", 12, 12.5, 7, 8, 30),
            ("2024-01-02 07:00", 8, 9, 7.5, 8.5, 40),
        ]
    )
    four = resample_ohlcv(base, "1h", "4h")
    expected = hourly(
        [
            ("2024-01-02 00:00", 10, 15, 8, 10, 1000),
            ("2024-01-02 04:00", 10, 13, 7, 8.5, 100),
        ]
    )
    pd.testing.assert_frame_equal(four, expected)
    assert four.attrs == {"timeframe": "4h", "last_bar_complete": True}
    check_ohlcv(four, "4h")


def test_incomplete_last_bar_is_flagged_or_dropped() -> None:
    base = ohlcv_frame(utc_index("2024-01-02", 6, "h"))  # 00:00 .. 05:00
    kept = resample_ohlcv(base, "1h", "4h")
    assert list(kept.index.hour) == [0, 4]
    assert kept.attrs["last_bar_complete"] is False
    assert kept["close"].iloc[-1] == base["close"].iloc[-1]  # the partial bar, as it stands
    dropped = resample_ohlcv(base, "1h", "4h", drop_incomplete=True)
    assert list(dropped.index.hour) == [0]
    assert dropped.attrs["last_bar_complete"] is True
    pd.testing.assert_frame_equal(dropped, kept.iloc[:1], check_flags=False)


def test_missing_periods_are_not_filled() -> None:
    index = utc_index("2024-01-02", 12, "h").delete([4, 5, 6, 7])  # no bars 04:00-07:59
    four = resample_ohlcv(ohlcv_frame(index), "1h", "4h")
    assert list(four.index.hour) == [0, 8]
    assert not four.isna().any().any()


def test_weekly_bars_open_on_monday(goog: pd.DataFrame) -> None:
    weekly = resample_ohlcv(goog, "1d", "1w")
    assert (weekly.index.day_of_week == 0).all()
    assert weekly.index[0] == pd.Timestamp("2004-08-16", tz="UTC")  # the Monday before Thu 19th
    reference = (
        goog.resample("W-MON", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    pd.testing.assert_frame_equal(weekly, reference, check_freq=False)


@pytest.mark.parametrize("target", ["4h", "1d", "1w"])
def test_matches_a_pandas_reference_on_real_fx_data(eurusd: pd.DataFrame, target: str) -> None:
    rule = {"4h": "4h", "1d": "1D", "1w": "W-MON"}[target]
    reference = (
        eurusd.resample(rule, label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    result = resample_ohlcv(eurusd, "1h", target)
    pd.testing.assert_frame_equal(result, reference, check_freq=False)
    # The whole series is covered: volume is conserved, and no bar is invented.
    assert result["volume"].sum() == eurusd["volume"].sum()


def test_same_timeframe_is_a_copy() -> None:
    base = ohlcv_frame(utc_index("2024-01-02", 5, "h"))
    same = resample_ohlcv(base, "1h", "1h")
    pd.testing.assert_frame_equal(same, base)
    assert same is not base


def test_bad_requests_are_refused() -> None:
    base = ohlcv_frame(utc_index("2024-01-02", 8, "h"))
    with pytest.raises(ValueError, match="whole multiple"):
        resample_ohlcv(base, "4h", "1h")
    with pytest.raises(ValueError, match="not a 4h bar open"):
        resample_ohlcv(base, "4h", "1d")  # hourly data declared as 4h
    with pytest.raises(ValueError, match="columns must be exactly"):
        resample_ohlcv(base.rename(columns={"volume": "vol"}), "1h", "4h")
    assert np.isfinite(resample_ohlcv(base, "1h", "1d").to_numpy()).all()
