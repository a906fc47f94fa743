"""Feature building: exact columns and order, values against independent references, warm-up
and gaps dropped and reported (never zero-filled), and feature-name checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from ktrdr_core.examples import list_examples, load_example
from ktrdr_worker.features import (
    FeatureError,
    FeatureMismatchError,
    build_features,
    check_feature_names,
    compute_features,
)
from ktrdr_worker.frames import resample_ohlcv


def pandas_resample(ohlcv: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Higher-timeframe bars by pandas' own resampler (a reference independent of frames.py)."""
    r = ohlcv.resample(rule, label="left", closed="left")
    out = pd.DataFrame(
        {
            "open": r["open"].first(),
            "high": r["high"].max(),
            "low": r["low"].min(),
            "close": r["close"].last(),
            "volume": r["volume"].sum(),
        }
    )
    return out.dropna(subset=["close"])


def trapezoid_low(x: np.ndarray) -> np.ndarray:
    """[null, 0, 30, 45] written out by hand: 1 up to 30, linear down to 0 at 45."""
    return np.where(x <= 30, 1.0, np.where(x >= 45, 0.0, (45 - x) / 15))


def last_closed(higher_opens: pd.DatetimeIndex, hours: int, base_open: pd.Timestamp) -> int:
    """Position of the latest higher bar that has closed by the close of the 1h bar."""
    closes = higher_opens + pd.Timedelta(hours=hours)
    return int(np.searchsorted(closes, base_open + pd.Timedelta(hours=1), side="right")) - 1


def test_columns_are_exactly_the_strategy_feature_names_in_order(small_strategy, eurusd) -> None:
    built = build_features(small_strategy, eurusd)
    assert built.names == small_strategy.feature_names()
    assert list(built.frame.columns) == small_strategy.feature_names()
    assert (built.frame.dtypes == np.float64).all()
    assert not built.frame.isna().any().any()


def test_base_timeframe_values_match_talib_and_the_membership_formula(
    small_strategy, eurusd
) -> None:
    frame = build_features(small_strategy, eurusd).frame
    rsi = pd.Series(talib.RSI(eurusd["close"].to_numpy(), 14), index=eurusd.index)
    rsi = rsi.loc[frame.index].to_numpy()
    np.testing.assert_allclose(frame["1h_rsi_14_raw"], rsi, rtol=0, atol=0)
    np.testing.assert_allclose(frame["1h_rsi_zone_low"], trapezoid_low(rsi), rtol=1e-12)
    high = np.where(rsi >= 70, 1.0, np.where(rsi <= 55, 0.0, (rsi - 55) / 15))
    np.testing.assert_allclose(frame["1h_rsi_zone_high"], high, rtol=1e-12)
    close = eurusd["close"]
    z = (close - close.rolling(20).mean()) / close.rolling(20).std(ddof=0)
    inside = np.clip(1 - np.abs(z.loc[frame.index].to_numpy()) / 2, 0, 1)
    np.testing.assert_allclose(frame["1h_band_inside"], inside, rtol=1e-7, atol=1e-9)


def test_higher_timeframe_values_come_from_the_last_closed_bar(small_strategy, eurusd) -> None:
    frame = build_features(small_strategy, eurusd).frame
    four = pandas_resample(eurusd, "4h")
    rsi4 = talib.RSI(four["close"].to_numpy(), 14)
    hist4 = talib.MACD(four["close"].to_numpy(), 12, 26, 9)[2]
    rng = np.random.default_rng(11)
    for t in rng.choice(len(frame), 200, replace=False):
        at = frame.index[t]
        k = last_closed(four.index, 4, at)
        assert frame["4h_rsi_zone_low"].iloc[t] == pytest.approx(
            trapezoid_low(rsi4[k : k + 1])[0], abs=1e-12
        )
        assert frame["4h_macd_a.hist_raw"].iloc[t] == pytest.approx(hist4[k], abs=1e-15)


def test_a_four_hour_bar_shows_up_on_the_hour_it_closes(small_strategy, eurusd) -> None:
    full = compute_features(small_strategy, eurusd)["4h_macd_a.hist_raw"]
    day = full.loc["2017-06-13"]
    # The 04:00-08:00 bar is first seen on the 07:00 bar, which closes at 08:00.
    assert day.loc["2017-06-13 07:00"] != day.loc["2017-06-13 06:00"]
    assert day.loc["2017-06-13 04:00"] == day.loc["2017-06-13 06:00"]
    assert day.loc["2017-06-13 03:00"] != day.loc["2017-06-13 02:00"]


def test_warmup_rows_are_dropped_and_reported_not_filled(small_strategy, eurusd) -> None:
    built = build_features(small_strategy, eurusd)
    full = compute_features(small_strategy, eurusd)
    report = built.report
    first = int(np.argmax(full.notna().all(axis=1).to_numpy()))
    assert report.warmup_rows == first > 100  # 4h MACD: 33 four-hour bars of warm-up
    assert report.total_rows == len(eurusd)
    assert report.kept_rows == len(built.frame) == len(eurusd) - first
    assert report.first_kept == eurusd.index[first] == built.frame.index[0]
    # RSI(14) lacks 14 bars, zscore(20) 19; the 4h features lack the longest.
    assert report.warmup_by_feature["1h_rsi_zone_low"] == 14
    assert report.warmup_by_feature["1h_band_inside"] == 19
    assert report.warmup_by_feature["4h_macd_a.hist_raw"] == first
    assert report.gap_rows == 0 and report.gaps_by_feature == {}
    # The kept rows are the computed values themselves.
    pd.testing.assert_frame_equal(built.frame, full.iloc[first:])
    assert f"dropped {first} warm-up bars" in report.summary()
    assert report.to_dict()["first_kept"] == eurusd.index[first].isoformat()


def test_rows_where_a_feature_is_undefined_later_are_dropped_and_named(small_strategy) -> None:
    rng = np.random.default_rng(5)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, 600)))
    close[300:330] = close[299]  # a flat stretch: the z-score's std is 0 there
    index = pd.date_range("2024-01-01", periods=close.size, freq="1h", tz="UTC", unit="us")
    ohlcv = pd.DataFrame(
        {"open": close, "high": close * 1.0005, "low": close * 0.9995, "close": close},
        index=index,
    ).assign(volume=1.0)
    built = build_features(small_strategy, ohlcv)
    # Bars 299..329 are equal, so zscore(20) is undefined on bars 318..329 (12 bars).
    assert built.report.gap_rows == 12
    assert built.report.gaps_by_feature == {"1h_band_inside": 12}
    assert not built.frame.index.isin(index[318:330]).any()
    assert index[330:].isin(built.frame.index).all() and index[317] in built.frame.index
    assert "1h_band_inside (12)" in built.report.summary()


def test_given_higher_timeframe_frames_are_used_and_agree_with_resampling(
    small_strategy, eurusd
) -> None:
    resampled = build_features(small_strategy, eurusd).frame
    four = resample_ohlcv(eurusd, "1h", "4h")
    given = build_features(small_strategy, {"1h": eurusd, "4h": four}).frame
    pd.testing.assert_frame_equal(given, resampled)


@pytest.mark.parametrize(
    ("data_of", "fragment"),
    [
        (lambda e: {"4h": e}, "base timeframe is 1h"),
        (lambda e: {"2h": e}, "unknown timeframe '2h'"),
        (lambda e: e.assign(close=e["close"].where(e.index != e.index[50])), "NaN"),
        (lambda e: e.iloc[:100], "no bar of the 100 has every feature"),
        (lambda e: e[["close", "open", "high", "low", "volume"]], "columns must be exactly"),
        (lambda e: e["close"], "expected the base-timeframe ohlcv DataFrame"),
    ],
)
def test_unusable_data_is_an_error_that_says_why(small_strategy, eurusd, data_of, fragment):
    with pytest.raises(FeatureError) as info:
        build_features(small_strategy, data_of(eurusd))
    assert fragment in str(info.value)


@pytest.mark.parametrize("name", list_examples())
def test_every_example_strategy_builds_its_exact_feature_list(
    name: str, goog, eurusd, eurusd_4h
) -> None:
    strategy = load_example(name)
    data = {"1d": goog, "1h": eurusd, "4h": eurusd_4h}[strategy.data.timeframe.value]
    built = build_features(strategy, data)
    assert built.names == strategy.feature_names()
    assert built.report.kept_rows > 0.8 * len(data)
    fuzzy = [f.name for f in strategy.features() if f.kind == "fuzzy"]
    values = built.frame[fuzzy].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()


# --------------------------------------------------------------------------- name checks

NAMES = ["1h_a_low", "1h_a_high", "4h_a_low", "1h_x_raw"]


def test_matching_names_pass() -> None:
    check_feature_names(NAMES, list(NAMES))
    check_feature_names(NAMES, pd.DataFrame(columns=NAMES))


def test_missing_and_extra_names_are_listed() -> None:
    with pytest.raises(FeatureMismatchError) as info:
        check_feature_names(NAMES, ["1h_a_low", "1h_a_high", "1h_x_raw", "1d_new_raw"])
    message = str(info.value)
    assert "expects 4 features, the frame has 4" in message
    assert "missing from the frame: ['4h_a_low']" in message
    assert "not known to the model: ['1d_new_raw']" in message
    assert info.value.missing == ["4h_a_low"] and info.value.extra == ["1d_new_raw"]


def test_same_names_in_another_order_are_an_error_naming_the_positions() -> None:
    swapped = ["1h_a_high", "1h_a_low", "4h_a_low", "1h_x_raw"]
    with pytest.raises(FeatureMismatchError) as info:
        check_feature_names(NAMES, swapped)
    message = str(info.value)
    assert "position 0: model has '1h_a_low', frame has '1h_a_high'" in message
    assert "position 1: model has '1h_a_high', frame has '1h_a_low'" in message
    assert info.value.missing == [] and info.value.extra == []


def test_a_built_frame_checks_against_its_strategy(small_strategy, eurusd) -> None:
    built = build_features(small_strategy, eurusd)
    check_feature_names(small_strategy.feature_names(), built.frame)
    with pytest.raises(FeatureMismatchError, match="missing from the frame"):
        check_feature_names(small_strategy.feature_names(), built.frame.iloc[:, :-1])
