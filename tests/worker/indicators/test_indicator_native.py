"""Our own kernels: hand-computed examples, and agreement with straightforward pandas code.

The pandas references (tests/support/indicator_reference.py) share no code with the kernels;
agreement is to 1e-9 relative, with an absolute floor of 1e-9 x the column's scale where values
cross zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.catalog.indicators import INDICATORS
from ktrdr_worker.indicators import KERNELS, compute, scan
from ktrdr_worker.indicators.rolling import rolling_mean_std
from tests.support.indicator_reference import (
    PANDAS_REFERENCE,
    REAL_DATA,
    assert_close_to_reference,
    supertrend_loop,
    synthetic_ohlcv,
    varied_params,
)

NATIVE = sorted(name for name, k in KERNELS.items() if k.backend == "native")
NAN = math.nan


def bars(**columns: list[float]) -> pd.DataFrame:
    """A small OHLCV frame; columns not given are filled with a value no kernel here reads."""
    n = len(next(iter(columns.values())))
    full = {c: columns.get(c, [1.0] * n) for c in ("open", "high", "low", "close", "volume")}
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(full, index=index, dtype="float64")


# Four bars used by several worked examples. True range: [-, 2, 2, 8].
FOUR = {
    "high": [11.0, 12.0, 12.0, 15.0],
    "low": [9.0, 10.0, 10.0, 7.0],
    "close": [10.0, 11.0, 11.0, 9.0],
}


def assert_values(frame: pd.DataFrame, expected: dict[str, list[float]]) -> None:
    for column, values in expected.items():
        np.testing.assert_allclose(frame[column].to_numpy(), values, rtol=1e-12, err_msg=column)


def test_every_native_kernel_has_a_pandas_reference() -> None:
    assert set(NATIVE) == set(PANDAS_REFERENCE)


# ---- worked examples -----------------------------------------------------------------------------


def test_donchian_worked_example() -> None:
    frame = bars(high=[3, 5, 4, 2, 6], low=[1, 2, 1, 0, 3])
    assert_values(
        compute("donchian", frame, period=3),
        {
            "upper": [NAN, NAN, 5, 5, 6],
            "middle": [NAN, NAN, 3, 2.5, 3],
            "lower": [NAN, NAN, 1, 0, 0],
        },
    )


def test_vwap_worked_example() -> None:
    # high = low = close, so the typical price is the close.
    prices = [10.0, 11.0, 12.0, 13.0]
    frame = bars(high=prices, low=prices, close=prices, volume=[1, 2, 3, 4])
    assert_values(compute("vwap", frame, period=2), {"value": [NAN, 32 / 3, 58 / 5, 88 / 7]})


def test_vwap_of_a_zero_volume_window_is_nan() -> None:
    prices = [10.0, 11.0, 12.0]
    frame = bars(high=prices, low=prices, close=prices, volume=[0, 0, 5])
    assert_values(compute("vwap", frame, period=2), {"value": [NAN, NAN, 12.0]})


def test_zscore_worked_example_with_flat_windows() -> None:
    frame = bars(close=[1, 2, 3, 4, 4, 4, 4])
    # [1,2,3] and [2,3,4]: mean +1 below the last, std sqrt(2/3); [3,4,4]: mean 11/3,
    # std sqrt(2)/3; [4,4,4]: no spread, no z-score.
    third = 1 / math.sqrt(2 / 3)
    assert_values(
        compute("zscore", frame, period=3),
        {"value": [NAN, NAN, third, third, (1 / 3) / (math.sqrt(2) / 3), NAN, NAN]},
    )


def test_cmf_worked_example() -> None:
    # Money-flow multipliers: +1 (close at high), -1 (close at low), 0 (no range), +0.5.
    frame = bars(
        high=[10, 10, 10, 12], low=[8, 8, 10, 8], close=[10, 8, 10, 11], volume=[100, 200, 50, 100]
    )
    assert_values(compute("cmf", frame, period=2), {"value": [NAN, -100 / 300, -0.8, 50 / 150]})


def test_chop_worked_example() -> None:
    # Windows of 2: true-range sums 4 and 10 over ranges 2 and 8.
    assert_values(
        compute("chop", bars(**FOUR), period=2),
        {"value": [NAN, NAN, 100.0, 100 * math.log10(10 / 8) / math.log10(2)]},
    )


def test_vortex_worked_example() -> None:
    # |high - previous low|: 3, 2, 5; |low - previous high|: 1, 2, 5; true range 2, 2, 8.
    assert_values(
        compute("vortex", bars(**FOUR), period=2),
        {"plus": [NAN, NAN, 5 / 4, 7 / 10], "minus": [NAN, NAN, 3 / 4, 7 / 10]},
    )


def test_keltner_worked_example() -> None:
    # EMA(2): seed mean(10, 11) = 10.5, alpha 2/3; ATR(1) is the true range.
    ema = [NAN, 10.5, 10.5 + (11 - 10.5) * 2 / 3]
    ema.append(ema[2] + (9 - ema[2]) * 2 / 3)
    tr = [NAN, 2.0, 2.0, 8.0]
    assert_values(
        compute("keltner", bars(**FOUR), period=2, multiplier=2.0, atr_period=1),
        {
            "upper": [e + 2 * r for e, r in zip(ema, tr, strict=True)],
            "middle": ema,
            "lower": [e - 2 * r for e, r in zip(ema, tr, strict=True)],
        },
    )


def test_hma_of_a_straight_line_is_the_line() -> None:
    # WMA(n) of a line lags it by (n - 1) / 3: 2 * (t - 1/3) - (t - 1) = t + 1/3, and WMA(2)
    # of that is t again. Warm-up: (4 - 1) + (2 - 1) bars.
    line = [float(t) for t in range(10)]
    assert_values(compute("hma", bars(close=line), period=4), {"value": [NAN] * 4 + line[4:]})


def test_squeeze_worked_example() -> None:
    # period 2: std of two closes = half their gap; average true range over 2 bars;
    # linear regression through two points ends at the last one, so momentum is the last
    # close minus the mean of the Donchian midpoint and the SMA.
    frame = bars(**FOUR)
    out = compute("squeeze", frame, period=2, bb_std=2.0, kc_multiplier=0.1)
    # bar 2: std 0 < 0.1 * 2 -> on; bar 3: 2 * 1 = 2 > 0.1 * 5 -> off.
    # momentum: bar 2: 11 - ((12 + 10) / 2 + 11) / 2 = 0; bar 3: 9 - ((15 + 7) / 2 + 10) / 2.
    assert_values(out, {"on": [NAN, NAN, 1.0, 0.0], "momentum": [NAN, NAN, 0.0, -1.5]})


def test_supertrend_worked_example() -> None:
    # ATR(1) = true range; multiplier 1: bands at (high + low) / 2 -/+ true range.
    frame = bars(
        high=[11, 11, 12, 11, 10, 13, 13],
        low=[9, 9, 10, 7, 8, 11, 12],
        close=[10, 10, 11, 8, 9, 12, 12.5],
    )
    out = compute("supertrend", frame, period=1, multiplier=1.0)
    # bar 1: up on lower 10 - 2 = 8; bar 2: lower 11 - 2 = 9 ratchets up; bar 3: close 8 < 9
    # flips down onto upper 9 + 4 = 13; bar 4: upper 9 + 2 = 11 ratchets down; bar 5: close
    # 12 > 11 flips up onto lower 12 - 4 = 8; bar 6: lower 12.5 - 1 = 11.5 ratchets up.
    assert_values(
        out,
        {
            "value": [NAN, 8, 9, 13, 11, 8, 11.5],
            "direction": [NAN, 1, 1, -1, -1, 1, 1],
        },
    )


# ---- against the pandas references --------------------------------------------------------------


@pytest.mark.parametrize("variant", ["defaults", "varied"])
@pytest.mark.parametrize("data", REAL_DATA)
@pytest.mark.parametrize("name", NATIVE)
def test_native_kernel_matches_pandas_reference_on_real_data(
    name, data, variant, real_frames
) -> None:
    frame = real_frames[data]
    spec = INDICATORS[name]
    params = (
        {p.name: p.default for p in spec.params} if variant == "defaults" else varied_params(spec)
    )
    ours = compute(name, frame, **params)
    assert_close_to_reference(ours, PANDAS_REFERENCE[name](frame, **params))
    assert ours.notna().any().all()


@pytest.mark.slow
@pytest.mark.parametrize("name", NATIVE)
def test_native_kernel_matches_pandas_reference_on_a_million_bars(name, million_bars) -> None:
    params = {p.name: p.default for p in INDICATORS[name].params}
    ours = compute(name, million_bars)
    assert_close_to_reference(ours, PANDAS_REFERENCE[name](million_bars, **params))


def test_supertrend_direction_flips_on_real_data(real_frames) -> None:
    """Guards the comparison above against a trivially constant supertrend."""
    direction = compute("supertrend", real_frames["EURUSD"])["direction"].dropna()
    assert set(direction.unique()) == {-1.0, 1.0}
    assert (direction.diff().abs() > 0).sum() > 50


def scan_inputs(n: int, seed: int) -> tuple[np.ndarray, ...]:
    frame = synthetic_ohlcv(n, seed=seed)
    atr = (frame["high"] - frame["low"]).rolling(3, min_periods=1).mean().to_numpy()
    return frame["close"].to_numpy(), frame["high"].to_numpy(), frame["low"].to_numpy(), atr


def assert_scan_equals_loop(close, high, low, atr, multiplier: float = 1.5) -> None:
    band, direction = scan.supertrend_scan(close, high, low, atr, multiplier)
    mid = (high + low) / 2
    values, directions = supertrend_loop(
        close.tolist(), (mid - multiplier * atr).tolist(), (mid + multiplier * atr).tolist()
    )
    np.testing.assert_array_equal(band, values)
    np.testing.assert_array_equal(direction, directions)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 256, 257, 511, 512, 513, 1000, 3001, 70_001])
def test_supertrend_scan_is_bit_identical_to_the_loop_at_every_length(n) -> None:
    """Lane counts and padding change with the length; the result must not, to the bit."""
    assert_scan_equals_loop(*scan_inputs(n, seed=n))


def test_supertrend_scan_repairs_every_wrong_guess(monkeypatch) -> None:
    """Without the warm-up, most lanes start from a wrong guess and short lanes rarely meet
    their re-run in time, so repairs cascade over several rounds: still bit-identical."""
    monkeypatch.setattr(scan, "_WARM_UP", 1)
    monkeypatch.setattr(scan, "_TARGET_STEPS", 4)
    monkeypatch.setattr(scan, "_MAX_LANES_PER_SQRT", 10**6)
    reruns: list[int] = []
    original = scan._rerun

    def counting_rerun(lanes, *args):
        reruns.append(lanes.shape[0])
        original(lanes, *args)

    monkeypatch.setattr(scan, "_rerun", counting_rerun)
    assert_scan_equals_loop(*scan_inputs(20_000, seed=11))
    assert len(reruns) > 1 and reruns[0] > 100


def test_rolling_std_is_accurate_over_a_million_bars(million_bars) -> None:
    """Running-sum variances (TA-Lib, pandas) drift to ~1e-7 here; ours must stay at ~1e-12."""
    close = million_bars["close"].to_numpy()
    _, std = rolling_mean_std(close, 20)
    at = np.arange(19, close.shape[0], 997)
    windows = np.lib.stride_tricks.sliding_window_view(close, 20)[at - 19].astype(np.longdouble)
    exact = windows.std(axis=1)
    assert np.max(np.abs(std[at] - exact) / exact) < 1e-11
