"""Reference implementations the indicator kernels are checked and benchmarked against.

Shared by tests/worker/indicators and by ``bench/indicators.py`` (one copy).

- ``TALIB_DIRECT``: for each TA-Lib-backed indicator, the TA-Lib call spelled out with TA-Lib's
  own keyword names, returning ``{output name: array}``. Written independently of the kernel
  mapping so that a swapped parameter or output shows up as a difference.
- ``PANDAS_REFERENCE``: for each native kernel, a straightforward pandas implementation
  (rolling / ewm / shift, a plain loop where the indicator is a recursion) that shares no code
  with the kernel.
- ``load_real_frames`` / ``synthetic_ohlcv``: canonical OHLCV frames (UTC index, float64
  ``open, high, low, close, volume``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib

from tests.support.market_data import packaged_file

Arrays = dict[str, np.ndarray]

# ---- data ----------------------------------------------------------------------------------------


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["Open", "High", "Low", "Close", "Volume"]].rename(columns=str.lower)
    out = out.astype("float64")
    out.index = pd.DatetimeIndex(out.index).tz_localize("UTC")
    return out


REAL_DATA = ("GOOG", "EURUSD", "SP500")


def load_real_frames() -> dict[str, pd.DataFrame]:
    """GOOG daily and EURUSD hourly (backtesting package), S&P 500 daily (arch package)."""

    def read(path: Path) -> pd.DataFrame:
        return _canonical(pd.read_csv(path, index_col=0, parse_dates=True))

    return {
        "GOOG": read(packaged_file("backtesting", "test", "GOOG.csv")),
        "EURUSD": read(packaged_file("backtesting", "test", "EURUSD.csv")),
        "SP500": read(packaged_file("arch", "data", "sp500", "sp500.csv.gz")),
    }


def synthetic_ohlcv(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` one-minute bars of a geometric random walk (0.1% per bar) with positive volume."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, 2e-4, n))
    wick_up = np.abs(rng.normal(0.0, 5e-4, n))
    wick_down = np.abs(rng.normal(0.0, 5e-4, n))
    high = np.maximum(open_, close) * (1.0 + wick_up)
    low = np.minimum(open_, close) * (1.0 - wick_down)
    volume = rng.gamma(2.0, 500.0, n)
    index = pd.date_range("2020-01-01", periods=n, freq="min", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def arrays_of(frame: pd.DataFrame) -> Arrays:
    """The frame's columns as contiguous float64 arrays (what a direct TA-Lib caller holds)."""
    return {col: np.ascontiguousarray(frame[col].to_numpy(dtype=np.float64)) for col in frame}


# ---- TA-Lib, called directly -----------------------------------------------------------------


def _one(values: np.ndarray) -> Arrays:
    return {"value": values}


def _hlc(a: Arrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return a["high"], a["low"], a["close"]


def _macd(a: Arrays, p: dict) -> Arrays:
    macd, signal, hist = talib.MACD(
        a["close"], fastperiod=p["fast"], slowperiod=p["slow"], signalperiod=p["signal"]
    )
    return {"macd": macd, "signal": signal, "hist": hist}


def _adx(a: Arrays, p: dict) -> Arrays:
    return {
        "adx": talib.ADX(*_hlc(a), timeperiod=p["period"]),
        "plus_di": talib.PLUS_DI(*_hlc(a), timeperiod=p["period"]),
        "minus_di": talib.MINUS_DI(*_hlc(a), timeperiod=p["period"]),
    }


def _aroon(a: Arrays, p: dict) -> Arrays:
    down, up = talib.AROON(a["high"], a["low"], timeperiod=p["period"])
    osc = talib.AROONOSC(a["high"], a["low"], timeperiod=p["period"])
    return {"up": up, "down": down, "osc": osc}


def _stoch(a: Arrays, p: dict) -> Arrays:
    k, d = talib.STOCH(
        *_hlc(a),
        fastk_period=p["k_period"],
        slowk_period=p["k_smooth"],
        slowk_matype=0,
        slowd_period=p["d_period"],
        slowd_matype=0,
    )
    return {"k": k, "d": d}


def _stochrsi(a: Arrays, p: dict) -> Arrays:
    k, d = talib.STOCHRSI(
        a["close"],
        timeperiod=p["period"],
        fastk_period=p["k_period"],
        fastd_period=p["d_period"],
        fastd_matype=0,
    )
    return {"k": k, "d": d}


def _bbands(a: Arrays, p: dict) -> Arrays:
    upper, middle, lower = talib.BBANDS(
        a["close"], timeperiod=p["period"], nbdevup=p["std"], nbdevdn=p["std"], matype=0
    )
    return {"upper": upper, "middle": middle, "lower": lower}


def _close_period(function: Callable) -> Callable[[Arrays, dict], Arrays]:
    return lambda a, p: _one(function(a["close"], timeperiod=p["period"]))


def _hlc_period(function: Callable) -> Callable[[Arrays, dict], Arrays]:
    return lambda a, p: _one(function(*_hlc(a), timeperiod=p["period"]))


TALIB_DIRECT: dict[str, Callable[[Arrays, dict], Arrays]] = {
    "sma": _close_period(talib.SMA),
    "ema": _close_period(talib.EMA),
    "wma": _close_period(talib.WMA),
    "dema": _close_period(talib.DEMA),
    "tema": _close_period(talib.TEMA),
    "trima": _close_period(talib.TRIMA),
    "kama": _close_period(talib.KAMA),
    "t3": lambda a, p: _one(talib.T3(a["close"], timeperiod=p["period"], vfactor=p["vfactor"])),
    "macd": _macd,
    "adx": _adx,
    "aroon": _aroon,
    "sar": lambda a, p: _one(
        talib.SAR(a["high"], a["low"], acceleration=p["acceleration"], maximum=p["maximum"])
    ),
    "linearreg": _close_period(talib.LINEARREG),
    "linearreg_slope": _close_period(talib.LINEARREG_SLOPE),
    "rsi": _close_period(talib.RSI),
    "stoch": _stoch,
    "stochrsi": _stochrsi,
    "cci": _hlc_period(talib.CCI),
    "willr": _hlc_period(talib.WILLR),
    "roc": _close_period(talib.ROC),
    "mom": _close_period(talib.MOM),
    "ppo": lambda a, p: _one(
        talib.PPO(a["close"], fastperiod=p["fast"], slowperiod=p["slow"], matype=1)
    ),
    "apo": lambda a, p: _one(
        talib.APO(a["close"], fastperiod=p["fast"], slowperiod=p["slow"], matype=1)
    ),
    "cmo": _close_period(talib.CMO),
    "trix": _close_period(talib.TRIX),
    "ultosc": lambda a, p: _one(
        talib.ULTOSC(
            *_hlc(a),
            timeperiod1=p["period1"],
            timeperiod2=p["period2"],
            timeperiod3=p["period3"],
        )
    ),
    "bop": lambda a, p: _one(talib.BOP(a["open"], a["high"], a["low"], a["close"])),
    "bbands": _bbands,
    "atr": _hlc_period(talib.ATR),
    "natr": _hlc_period(talib.NATR),
    "trange": lambda a, p: _one(talib.TRANGE(*_hlc(a))),
    "stddev": lambda a, p: _one(talib.STDDEV(a["close"], timeperiod=p["period"], nbdev=1.0)),
    "obv": lambda a, p: _one(talib.OBV(a["close"], a["volume"])),
    "ad": lambda a, p: _one(talib.AD(*_hlc(a), a["volume"])),
    "adosc": lambda a, p: _one(
        talib.ADOSC(*_hlc(a), a["volume"], fastperiod=p["fast"], slowperiod=p["slow"])
    ),
    "mfi": lambda a, p: _one(talib.MFI(*_hlc(a), a["volume"], timeperiod=p["period"])),
}

# ---- pandas references for the native kernels --------------------------------------------------


def _true_range(df: pd.DataFrame) -> pd.Series:
    """max(high, previous close) - min(low, previous close); undefined on the first bar."""
    previous = df["close"].shift(1)
    ranges = pd.concat(
        [df["high"] - df["low"], (df["high"] - previous).abs(), (df["low"] - previous).abs()],
        axis=1,
    )
    tr = ranges.max(axis=1)
    tr.iloc[0] = np.nan
    return tr


def _wilder_atr(df: pd.DataFrame, period: int) -> pd.Series:
    """Wilder's ATR seeded with the mean of the first ``period`` true ranges (bars 1..period)."""
    tr = _true_range(df)
    seeded = tr.copy()
    seeded.iloc[: period + 1] = np.nan
    if len(tr) > period:
        seeded.iloc[period] = tr.iloc[1 : period + 1].mean()
    return seeded.ewm(alpha=1.0 / period, adjust=False).mean()


def _ema(series: pd.Series, period: int) -> pd.Series:
    """EMA with alpha 2 / (period + 1), seeded with the mean of the first ``period`` values."""
    seeded = series.copy()
    seeded.iloc[: period - 1] = np.nan
    if len(series) >= period:
        seeded.iloc[period - 1] = series.iloc[:period].mean()
    return seeded.ewm(alpha=2.0 / (period + 1), adjust=False).mean()


def _wma(series: pd.Series, period: int) -> pd.Series:
    """Weights period, period - 1, ..., 1 from the newest bar back."""
    total = sum((period - lag) * series.shift(lag) for lag in range(period))
    return total / (period * (period + 1) / 2)


def _linreg_end(series: pd.Series, period: int) -> pd.Series:
    """End point of the least-squares line through the last ``period`` values (x = 0..period-1)."""
    sum_x = period * (period - 1) / 2
    sum_xx = (period - 1) * period * (2 * period - 1) / 6
    sum_y = series.rolling(period).sum()
    sum_xy = sum((period - 1 - lag) * series.shift(lag) for lag in range(period))
    slope = (period * sum_xy - sum_x * sum_y) / (period * sum_xx - sum_x**2)
    intercept = (sum_y - slope * sum_x) / period
    return intercept + slope * (period - 1)


def _frame(df: pd.DataFrame, **columns: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(columns, index=df.index)


def ref_hma(df: pd.DataFrame, period: int) -> pd.DataFrame:
    close = df["close"]
    raw = 2 * _wma(close, period // 2) - _wma(close, period)
    return _frame(df, value=_wma(raw, round(math.sqrt(period))))


def supertrend_loop(
    close: list[float], lower: list[float], upper: list[float]
) -> tuple[list[float], list[float]]:
    """The supertrend recursion bar by bar: bar 0 starts an uptrend on ``lower[0]``.

    An uptrend's band ratchets up with ``lower`` and flips down (onto ``upper``) when a close
    falls below the previous band; a downtrend mirrors it.
    """
    trend, band = 1.0, lower[0]
    values, directions = [band], [trend]
    for t in range(1, len(close)):
        if trend > 0:
            if close[t] < band:
                trend, band = -1.0, upper[t]
            else:
                band = max(band, lower[t])
        elif close[t] > band:
            trend, band = 1.0, lower[t]
        else:
            band = min(band, upper[t])
        values.append(band)
        directions.append(trend)
    return values, directions


def ref_supertrend(df: pd.DataFrame, period: int, multiplier: float) -> pd.DataFrame:
    atr = _wilder_atr(df, period).to_numpy()
    hl2 = ((df["high"] + df["low"]) / 2).to_numpy()
    lower, upper = hl2 - multiplier * atr, hl2 + multiplier * atr
    value = np.full(len(df), np.nan)
    direction = np.full(len(df), np.nan)
    if len(df) > period:  # the ATR is first defined at bar `period`
        close = df["close"].to_numpy()
        value[period:], direction[period:] = supertrend_loop(
            close[period:].tolist(), lower[period:].tolist(), upper[period:].tolist()
        )
    return _frame(
        df, value=pd.Series(value, index=df.index), direction=pd.Series(direction, index=df.index)
    )


def ref_vortex(df: pd.DataFrame, period: int) -> pd.DataFrame:
    plus = (df["high"] - df["low"].shift(1)).abs().rolling(period).sum()
    minus = (df["low"] - df["high"].shift(1)).abs().rolling(period).sum()
    tr = _true_range(df).rolling(period).sum()
    return _frame(df, plus=plus / tr, minus=minus / tr)


def _rolling_std(series: pd.Series, period: int) -> pd.Series:
    """Population std as the mean squared deviation from the window mean (two passes).

    Not ``rolling().std()``: pandas keeps running sums there, which drift to ~2.5e-7 relative
    error over a million bars — too coarse to check a kernel to 1e-9.
    """
    mean = series.rolling(period).mean()
    squares = sum((series.shift(lag) - mean) ** 2 for lag in range(period))
    return np.sqrt(squares / period)


def ref_zscore(df: pd.DataFrame, period: int) -> pd.DataFrame:
    close = df["close"]
    rolling = close.rolling(period)
    z = (close - rolling.mean()) / _rolling_std(close, period)
    # A window of equal closes has no z-score.
    return _frame(df, value=z.where(rolling.max() > rolling.min()))


def ref_keltner(df: pd.DataFrame, period: int, multiplier: float, atr_period: int) -> pd.DataFrame:
    middle = _ema(df["close"], period)
    atr = _wilder_atr(df, atr_period)
    return _frame(
        df, upper=middle + multiplier * atr, middle=middle, lower=middle - multiplier * atr
    )


def ref_donchian(df: pd.DataFrame, period: int) -> pd.DataFrame:
    upper = df["high"].rolling(period).max()
    lower = df["low"].rolling(period).min()
    return _frame(df, upper=upper, middle=(upper + lower) / 2, lower=lower)


def ref_squeeze(df: pd.DataFrame, period: int, bb_std: float, kc_multiplier: float) -> pd.DataFrame:
    close = df["close"]
    basis = close.rolling(period).mean()
    deviation = _rolling_std(close, period)
    range_ma = _true_range(df).rolling(period).mean()
    upper_bb, lower_bb = basis + bb_std * deviation, basis - bb_std * deviation
    upper_kc, lower_kc = basis + kc_multiplier * range_ma, basis - kc_multiplier * range_ma
    on = ((lower_bb > lower_kc) & (upper_bb < upper_kc)).astype(float)
    on = on.where(range_ma.notna() & deviation.notna())
    donchian_mid = (df["high"].rolling(period).max() + df["low"].rolling(period).min()) / 2
    momentum = _linreg_end(close - (donchian_mid + basis) / 2, period)
    return _frame(df, on=on, momentum=momentum)


def ref_chop(df: pd.DataFrame, period: int) -> pd.DataFrame:
    path = _true_range(df).rolling(period).sum()
    window_range = df["high"].rolling(period).max() - df["low"].rolling(period).min()
    ratio = (path / window_range).where(window_range > 0)
    return _frame(df, value=100 * np.log10(ratio) / math.log10(period))


def ref_vwap(df: pd.DataFrame, period: int) -> pd.DataFrame:
    typical = (df["high"] + df["low"] + df["close"]) / 3
    volume = df["volume"].rolling(period).sum()
    value = (typical * df["volume"]).rolling(period).sum() / volume
    return _frame(df, value=value.where(volume != 0))


def ref_cmf(df: pd.DataFrame, period: int) -> pd.DataFrame:
    bar_range = df["high"] - df["low"]
    mfm = ((df["close"] - df["low"]) - (df["high"] - df["close"])) / bar_range
    mfm = mfm.where(bar_range > 0, 0.0)
    volume = df["volume"].rolling(period).sum()
    value = (mfm * df["volume"]).rolling(period).sum() / volume
    return _frame(df, value=value.where(volume != 0))


PANDAS_REFERENCE: dict[str, Callable[..., pd.DataFrame]] = {
    "hma": ref_hma,
    "supertrend": ref_supertrend,
    "vortex": ref_vortex,
    "zscore": ref_zscore,
    "keltner": ref_keltner,
    "donchian": ref_donchian,
    "squeeze": ref_squeeze,
    "chop": ref_chop,
    "vwap": ref_vwap,
    "cmf": ref_cmf,
}


def assert_close_to_reference(
    ours: pd.DataFrame, reference: pd.DataFrame, *, rtol: float = 1e-9, floor: float = 1e-9
) -> None:
    """Same columns, same NaN positions, values within ``rtol`` relative.

    Values near zero (oscillators that cross it) get an absolute floor of ``floor`` times the
    column's largest magnitude, since a relative error means nothing at a zero crossing.
    """
    assert list(ours.columns) == list(reference.columns)
    assert ours.index.equals(reference.index)
    for column in ours.columns:
        a = ours[column].to_numpy(dtype=float)
        b = reference[column].to_numpy(dtype=float)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        assert np.array_equal(nan_a, nan_b), (
            f"{column}: NaN positions differ at bars {np.flatnonzero(nan_a != nan_b)[:10]}"
        )
        scale = np.max(np.abs(b[~nan_b]), initial=0.0)
        np.testing.assert_allclose(
            a[~nan_a], b[~nan_b], rtol=rtol, atol=floor * scale, err_msg=column
        )


def varied_params(spec) -> dict[str, int | float]:
    """A non-default parameter set for a catalog entry: ints + 3, floats x 1.5, within bounds.

    Shifting every parameter the same way keeps orderings such as ``fast < slow`` intact.
    """
    varied: dict[str, int | float] = {}
    for param in spec.params:
        value = param.default + 3 if param.type == "int" else param.default * 1.5
        varied[param.name] = min(value, param.maximum)
    return varied
