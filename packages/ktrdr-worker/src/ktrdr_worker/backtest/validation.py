"""Checks on a backtest's inputs, run before any computation.

Each check raises ``ValueError`` saying what is wrong and where (column, bar time, count), so a
researcher can fix the data rather than guess why the numbers look odd.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ktrdr_worker.backtest.config import BacktestConfig

__all__ = ["ValidInputs", "validate_inputs"]

PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class ValidInputs:
    """The inputs as plain arrays, once checked.

    Attributes:
        index: bar open times (UTC, strictly increasing).
        open: bar open prices, float64, finite and > 0.
        close: bar close prices, float64, finite and > 0.
        target: target position per bar, int8 in {-1, 0, 1}.
    """

    index: pd.DatetimeIndex
    open: np.ndarray
    close: np.ndarray
    target: np.ndarray


def _where(index: pd.DatetimeIndex, mask: np.ndarray) -> str:
    bad = np.flatnonzero(mask)
    first = bad[0]
    more = f" and {len(bad) - 1} other bar(s)" if len(bad) > 1 else ""
    return f"at bar {first} ({index[first]}){more}"


def _check_index(ohlcv: pd.DataFrame) -> pd.DatetimeIndex:
    index = ohlcv.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(
            f"ohlcv index must be a DatetimeIndex of bar open times, got {type(index).__name__}"
        )
    if index.tz is None or str(index.tz) != "UTC":
        raise ValueError(
            f"ohlcv index must be tz-aware UTC, got tz={index.tz}; "
            "use .tz_localize('UTC') or .tz_convert('UTC')"
        )
    if len(index) < 2:
        raise ValueError(f"ohlcv must hold at least 2 bars to trade, got {len(index)}")
    ns = index.as_unit("ns").asi8
    not_increasing = np.diff(ns) <= 0
    if not_increasing.any():
        first = int(np.flatnonzero(not_increasing)[0]) + 1
        raise ValueError(
            "ohlcv index must be strictly increasing (sorted, no duplicates): "
            f"bar {first} ({index[first]}) does not come after bar {first - 1} "
            f"({index[first - 1]})"
        )
    return index


def _check_prices(ohlcv: pd.DataFrame, index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    missing = [c for c in PRICE_COLUMNS if c not in ohlcv.columns]
    if missing:
        raise ValueError(
            f"ohlcv is missing column(s) {missing}; expected lower-case "
            f"{', '.join(PRICE_COLUMNS)} (and volume); got {list(ohlcv.columns)}"
        )
    prices: dict[str, np.ndarray] = {}
    for col in PRICE_COLUMNS:
        series = ohlcv[col]
        if not (pd.api.types.is_float_dtype(series) or pd.api.types.is_integer_dtype(series)):
            raise ValueError(f"ohlcv column {col!r} must be numeric, got dtype {series.dtype}")
        values = series.to_numpy(dtype=np.float64)
        # One reduction on the happy path; the mask is built only to report a failure.
        if not np.isfinite(values.min() + values.max()):
            raise ValueError(
                f"ohlcv column {col!r} has NaN or infinite prices "
                f"{_where(index, ~np.isfinite(values))}; "
                "drop or repair those bars before backtesting"
            )
        prices[col] = values
    for col in ("open", "close"):
        if prices[col].min() <= 0:
            raise ValueError(
                f"ohlcv column {col!r} has prices <= 0 {_where(index, prices[col] <= 0)}; "
                "returns are undefined there"
            )
    return prices


def _check_positions(
    positions: pd.Series, index: pd.DatetimeIndex, config: BacktestConfig
) -> np.ndarray:
    if not isinstance(positions, pd.Series):
        raise ValueError(
            f"positions must be a pandas Series on the ohlcv index, got {type(positions).__name__}"
        )
    if len(positions) != len(index):
        raise ValueError(
            f"positions index is misaligned with ohlcv: {len(positions)} positions "
            f"for {len(index)} bars"
        )
    if not positions.index.equals(index):
        other = positions.index
        if isinstance(other, pd.DatetimeIndex) and other.tz is not None:
            differs = other.as_unit("ns").asi8 != index.as_unit("ns").asi8
            first = int(np.flatnonzero(differs)[0])
            raise ValueError(
                f"positions index is misaligned with ohlcv: first difference at bar {first} "
                f"(positions {other[first]}, ohlcv {index[first]})"
            )
        raise ValueError(
            "positions index is misaligned with ohlcv: it must be the same UTC DatetimeIndex, "
            f"got {type(other).__name__} with tz={getattr(other, 'tz', None)}"
        )
    if not pd.api.types.is_numeric_dtype(positions.dtype):
        raise ValueError(f"positions must be numeric (-1, 0, 1), got dtype {positions.dtype}")
    raw = positions.to_numpy()
    if raw.dtype.kind in "biu":
        values, target = raw, raw.astype(np.int8)
        valid = len(raw) == 0 or (raw.min() >= -1 and raw.max() <= 1)
    else:
        # float64 holds every other accepted dtype (float, nullable) and its missing values.
        values = positions.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            target = values.astype(np.int8)
        valid = bool(np.all(target == values)) and (
            len(values) == 0 or (target.min() >= -1 and target.max() <= 1)
        )
    if not valid:
        nan = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
        if nan.any():
            raise ValueError(
                f"positions contain NaN or missing values {_where(index, nan)}; use 0 for flat"
            )
        invalid = (values != 0) & (values != 1) & (values != -1)
        first = int(np.flatnonzero(invalid)[0])
        raise ValueError(
            f"positions must be -1, 0 or 1: got {values[first]:g} {_where(index, invalid)}"
        )
    if not config.allow_short and len(target) and target.min() < 0:
        raise ValueError(
            f"positions hold -1 (short) {_where(index, target == -1)} but "
            "BacktestConfig.allow_short is False"
        )
    return target


def validate_inputs(
    ohlcv: pd.DataFrame, positions: pd.Series, config: BacktestConfig
) -> ValidInputs:
    """Check a backtest's inputs and return them as arrays.

    Raises ``ValueError`` when: ``ohlcv`` is not a DataFrame, its index is not a strictly
    increasing UTC DatetimeIndex of at least 2 bars, a price column is missing, non-numeric,
    NaN or infinite, an open or close is <= 0; ``positions`` is not a Series on exactly the
    same index, holds values other than -1, 0, 1 (or NaN), or holds -1 while
    ``config.allow_short`` is False; ``config`` is not a ``BacktestConfig``.
    """
    if not isinstance(config, BacktestConfig):
        raise ValueError(f"config must be a BacktestConfig, got {type(config).__name__}")
    if not isinstance(ohlcv, pd.DataFrame):
        raise ValueError(f"ohlcv must be a pandas DataFrame, got {type(ohlcv).__name__}")
    index = _check_index(ohlcv)
    prices = _check_prices(ohlcv, index)
    target = _check_positions(positions, index, config)
    return ValidInputs(index=index, open=prices["open"], close=prices["close"], target=target)
