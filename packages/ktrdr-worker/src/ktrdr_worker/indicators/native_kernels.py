"""Indicators TA-Lib lacks, written as whole-array numpy around TA-Lib building blocks.

TA-Lib's rolling SUM/MAX/MIN/WMA/EMA/ATR/TRANGE/LINEARREG are exact-enough O(n) C loops, so
they are reused where a formula needs them; the rolling standard deviation comes from
``rolling.rolling_mean_std`` (TA-Lib's drifts by ~1e-7 over a million bars) and the supertrend
recursion from ``scan.supertrend_scan``. Warm-up bars are NaN; a ratio whose denominator is
zero (a flat or zero-volume window) is NaN as well, since it has no defined value.
"""

from __future__ import annotations

import math

import numpy as np
import talib

from ktrdr_worker.indicators.registry import kernel
from ktrdr_worker.indicators.rolling import rolling_mean_std
from ktrdr_worker.indicators.scan import supertrend_scan

Array = np.ndarray


def _ratio(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, NaN where the denominator is 0 (or NaN).

    Divides in place: ``numerator`` must be a temporary the caller owns (e.g. a TA-Lib output).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        numerator /= denominator
    numerator[denominator == 0] = np.nan
    return numerator


def _with_previous(values: Array) -> Array:
    """``values`` shifted one bar later, NaN at bar 0 (the bar has no predecessor)."""
    shifted = np.empty_like(values)
    shifted[:1] = np.nan
    shifted[1:] = values[:-1]
    return shifted


# ---- trend ---------------------------------------------------------------------------------------
@kernel("hma", "native")
def _hma(close: Array, *, period: int) -> tuple[Array]:
    raw = talib.WMA(close, period // 2)
    raw *= 2.0
    raw -= talib.WMA(close, period)
    # TA-Lib starts a function at the first non-NaN input, so the outer WMA skips the warm-up.
    return (talib.WMA(raw, round(math.sqrt(period))),)


@kernel("supertrend", "native")
def _supertrend(
    high: Array, low: Array, close: Array, *, period: int, multiplier: float
) -> tuple[Array, Array]:
    n = close.shape[0]
    atr = talib.ATR(high, low, close, period)
    first = period  # TA-Lib's ATR(period) is first defined at bar `period`
    if n <= first:
        return np.full(n, np.nan), np.full(n, np.nan)
    return supertrend_scan(
        close[first:], high[first:], low[first:], atr[first:], multiplier, prefix=first
    )


@kernel("vortex", "native")
def _vortex(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array, Array]:
    plus_move = np.abs(high - _with_previous(low))
    minus_move = np.abs(low - _with_previous(high))
    true_range = talib.SUM(talib.TRANGE(high, low, close), period)
    return (
        _ratio(talib.SUM(plus_move, period), true_range),
        _ratio(talib.SUM(minus_move, period), true_range),
    )


# ---- momentum ------------------------------------------------------------------------------------
@kernel("zscore", "native")
def _zscore(close: Array, *, period: int) -> tuple[Array]:
    mean, std = rolling_mean_std(close, period)
    return (_ratio(np.subtract(close, mean, out=mean), std),)


# ---- volatility ----------------------------------------------------------------------------------
@kernel("keltner", "native")
def _keltner(
    high: Array, low: Array, close: Array, *, period: int, multiplier: float, atr_period: int
) -> tuple[Array, Array, Array]:
    middle = talib.EMA(close, period)
    offset = multiplier * talib.ATR(high, low, close, atr_period)
    return middle + offset, middle, middle - offset


@kernel("donchian", "native")
def _donchian(high: Array, low: Array, *, period: int) -> tuple[Array, Array, Array]:
    upper = talib.MAX(high, period)
    lower = talib.MIN(low, period)
    return upper, (upper + lower) / 2.0, lower


@kernel("squeeze", "native")
def _squeeze(
    high: Array,
    low: Array,
    close: Array,
    *,
    period: int,
    bb_std: float,
    kc_multiplier: float,
) -> tuple[Array, Array]:
    mean, std = rolling_mean_std(close, period)
    average_range = talib.SMA(talib.TRANGE(high, low, close), period)
    # Bollinger inside Keltner, both centred on the SMA: compare the half-widths.
    on = np.where(bb_std * std < kc_multiplier * average_range, 1.0, 0.0)
    on[np.isnan(average_range) | np.isnan(std)] = np.nan
    donchian_mid = (talib.MAX(high, period) + talib.MIN(low, period)) / 2.0
    momentum = talib.LINEARREG(close - (donchian_mid + mean) / 2.0, period)
    return on, momentum


@kernel("chop", "native")
def _chop(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array]:
    path = talib.SUM(talib.TRANGE(high, low, close), period)
    window_range = talib.MAX(high, period) - talib.MIN(low, period)
    with np.errstate(divide="ignore"):
        chop = 100.0 * np.log10(_ratio(path, window_range)) / math.log10(period)
    return (chop,)


# ---- volume --------------------------------------------------------------------------------------
@kernel("vwap", "native")
def _vwap(high: Array, low: Array, close: Array, volume: Array, *, period: int) -> tuple[Array]:
    typical = (high + low + close) / 3.0
    return (_ratio(talib.SUM(typical * volume, period), talib.SUM(volume, period)),)


@kernel("cmf", "native")
def _cmf(high: Array, low: Array, close: Array, volume: Array, *, period: int) -> tuple[Array]:
    bar_range = high - low
    # A bar with no range carries no money flow (TA-Lib's AD line makes the same choice).
    multiplier = np.zeros_like(bar_range)
    np.divide((close - low) - (high - close), bar_range, out=multiplier, where=bar_range > 0)
    return (_ratio(talib.SUM(multiplier * volume, period), talib.SUM(volume, period)),)
