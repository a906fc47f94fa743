"""Indicators TA-Lib has: a thin mapping from catalog names and parameters to TA-Lib calls.

Each kernel receives float64 arrays (the catalog entry's ``inputs``, in order) and resolved
parameters, and returns TA-Lib's arrays unchanged, in catalog output order. Moving averages
inside TA-Lib's composite indicators are set explicitly (matype 0 = SMA, 1 = EMA) so a change
of library default cannot change our numbers.
"""

from __future__ import annotations

import numpy as np
import talib

from ktrdr_worker.indicators.registry import kernel

_SMA, _EMA = 0, 1

Array = np.ndarray


# ---- trend ---------------------------------------------------------------------------------------
@kernel("sma", "talib")
def _sma(close: Array, *, period: int) -> tuple[Array]:
    return (talib.SMA(close, period),)


@kernel("ema", "talib")
def _ema(close: Array, *, period: int) -> tuple[Array]:
    return (talib.EMA(close, period),)


@kernel("wma", "talib")
def _wma(close: Array, *, period: int) -> tuple[Array]:
    return (talib.WMA(close, period),)


@kernel("dema", "talib")
def _dema(close: Array, *, period: int) -> tuple[Array]:
    return (talib.DEMA(close, period),)


@kernel("tema", "talib")
def _tema(close: Array, *, period: int) -> tuple[Array]:
    return (talib.TEMA(close, period),)


@kernel("trima", "talib")
def _trima(close: Array, *, period: int) -> tuple[Array]:
    return (talib.TRIMA(close, period),)


@kernel("kama", "talib")
def _kama(close: Array, *, period: int) -> tuple[Array]:
    return (talib.KAMA(close, period),)


@kernel("t3", "talib")
def _t3(close: Array, *, period: int, vfactor: float) -> tuple[Array]:
    return (talib.T3(close, period, vfactor),)


@kernel("macd", "talib")
def _macd(close: Array, *, fast: int, slow: int, signal: int) -> tuple[Array, Array, Array]:
    return talib.MACD(close, fast, slow, signal)


@kernel("adx", "talib")
def _adx(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array, Array, Array]:
    return (
        talib.ADX(high, low, close, period),
        talib.PLUS_DI(high, low, close, period),
        talib.MINUS_DI(high, low, close, period),
    )


@kernel("aroon", "talib")
def _aroon(high: Array, low: Array, *, period: int) -> tuple[Array, Array, Array]:
    down, up = talib.AROON(high, low, period)
    return up, down, talib.AROONOSC(high, low, period)


@kernel("sar", "talib")
def _sar(high: Array, low: Array, *, acceleration: float, maximum: float) -> tuple[Array]:
    return (talib.SAR(high, low, acceleration, maximum),)


@kernel("linearreg", "talib")
def _linearreg(close: Array, *, period: int) -> tuple[Array]:
    return (talib.LINEARREG(close, period),)


@kernel("linearreg_slope", "talib")
def _linearreg_slope(close: Array, *, period: int) -> tuple[Array]:
    return (talib.LINEARREG_SLOPE(close, period),)


# ---- momentum ------------------------------------------------------------------------------------
@kernel("rsi", "talib")
def _rsi(close: Array, *, period: int) -> tuple[Array]:
    return (talib.RSI(close, period),)


@kernel("stoch", "talib")
def _stoch(
    high: Array, low: Array, close: Array, *, k_period: int, k_smooth: int, d_period: int
) -> tuple[Array, Array]:
    return talib.STOCH(high, low, close, k_period, k_smooth, _SMA, d_period, _SMA)


@kernel("stochrsi", "talib")
def _stochrsi(close: Array, *, period: int, k_period: int, d_period: int) -> tuple[Array, Array]:
    return talib.STOCHRSI(close, period, k_period, d_period, _SMA)


@kernel("cci", "talib")
def _cci(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array]:
    return (talib.CCI(high, low, close, period),)


@kernel("willr", "talib")
def _willr(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array]:
    return (talib.WILLR(high, low, close, period),)


@kernel("roc", "talib")
def _roc(close: Array, *, period: int) -> tuple[Array]:
    return (talib.ROC(close, period),)


@kernel("mom", "talib")
def _mom(close: Array, *, period: int) -> tuple[Array]:
    return (talib.MOM(close, period),)


@kernel("ppo", "talib")
def _ppo(close: Array, *, fast: int, slow: int) -> tuple[Array]:
    return (talib.PPO(close, fast, slow, _EMA),)


@kernel("apo", "talib")
def _apo(close: Array, *, fast: int, slow: int) -> tuple[Array]:
    return (talib.APO(close, fast, slow, _EMA),)


@kernel("cmo", "talib")
def _cmo(close: Array, *, period: int) -> tuple[Array]:
    return (talib.CMO(close, period),)


@kernel("trix", "talib")
def _trix(close: Array, *, period: int) -> tuple[Array]:
    return (talib.TRIX(close, period),)


@kernel("ultosc", "talib")
def _ultosc(
    high: Array, low: Array, close: Array, *, period1: int, period2: int, period3: int
) -> tuple[Array]:
    return (talib.ULTOSC(high, low, close, period1, period2, period3),)


@kernel("bop", "talib")
def _bop(open_: Array, high: Array, low: Array, close: Array) -> tuple[Array]:
    return (talib.BOP(open_, high, low, close),)


# ---- volatility ----------------------------------------------------------------------------------
@kernel("bbands", "talib")
def _bbands(close: Array, *, period: int, std: float) -> tuple[Array, Array, Array]:
    return talib.BBANDS(close, period, std, std, _SMA)


@kernel("atr", "talib")
def _atr(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array]:
    return (talib.ATR(high, low, close, period),)


@kernel("natr", "talib")
def _natr(high: Array, low: Array, close: Array, *, period: int) -> tuple[Array]:
    return (talib.NATR(high, low, close, period),)


@kernel("trange", "talib")
def _trange(high: Array, low: Array, close: Array) -> tuple[Array]:
    return (talib.TRANGE(high, low, close),)


@kernel("stddev", "talib")
def _stddev(close: Array, *, period: int) -> tuple[Array]:
    return (talib.STDDEV(close, period, 1.0),)


# ---- volume --------------------------------------------------------------------------------------
@kernel("obv", "talib")
def _obv(close: Array, volume: Array) -> tuple[Array]:
    return (talib.OBV(close, volume),)


@kernel("ad", "talib")
def _ad(high: Array, low: Array, close: Array, volume: Array) -> tuple[Array]:
    return (talib.AD(high, low, close, volume),)


@kernel("adosc", "talib")
def _adosc(
    high: Array, low: Array, close: Array, volume: Array, *, fast: int, slow: int
) -> tuple[Array]:
    return (talib.ADOSC(high, low, close, volume, fast, slow),)


@kernel("mfi", "talib")
def _mfi(high: Array, low: Array, close: Array, volume: Array, *, period: int) -> tuple[Array]:
    return (talib.MFI(high, low, close, volume, period),)
