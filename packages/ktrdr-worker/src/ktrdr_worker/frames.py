"""OHLCV frames: load, resample to higher timeframes, align higher timeframes onto the base.

The canonical ``ohlcv`` frame, here and everywhere in ktrdr-worker: a pandas DataFrame indexed
by a ``DatetimeIndex`` named ``"timestamp"`` (UTC, microsecond unit, strictly increasing),
whose values are bar OPEN times — a bar covers ``[t, t + timeframe)`` — with exactly the
float64 columns ``open, high, low, close, volume``. ``load_ohlcv`` returns exactly that.

Multi-timeframe alignment without lookahead
-------------------------------------------
A higher-timeframe bar that opens at ``t`` covers ``[t, t + H)`` and is known only once it has
closed, at ``t + H``. On the base timeframe (bar length ``B``) the first bar whose CLOSE is at
or after ``t + H`` is the one that opens at ``t + H - B``: that is where ``align_to_base``
first shows the higher bar, and the value is carried forward until the next higher bar
becomes visible. Example, 1h base and 4h higher: the 4h bar 00:00–04:00 first appears on the
03:00 1h bar (which closes at 04:00), and stays until the 07:00 bar shows the 04:00 4h bar.

So a value seen at base bar ``t`` depends only on base bars up to and including ``t``:
computing on data truncated at ``t`` gives the same value at ``t`` as on the full series.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ktrdr_core.market_data import ValidationResult, validate_ohlcv_csv
from ktrdr_core.timeframes import Timeframe, parse_timeframe

__all__ = [
    "OHLCV_COLUMNS",
    "align_to_base",
    "check_ohlcv",
    "frame_from_validation",
    "load_ohlcv",
    "resample_ohlcv",
]

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_INDEX_UNIT = "us"  # pandas' own default unit, so frames built elsewhere compare equal


def load_ohlcv(
    source: str | bytes | os.PathLike[str],
    timeframe: Timeframe | str | None = None,
    *,
    max_errors: int = 100,
) -> pd.DataFrame:
    """Read an OHLCV CSV (path, text or bytes) into the canonical frame.

    The file goes through ``ktrdr_core.market_data.validate_ohlcv_csv`` first, so every
    accepted variant (column order and case, ``date`` column, epoch seconds/ms, offsets) is
    normalised the same way the backend does it. ``timeframe`` (``"1h"``…) turns on the
    bar-alignment rule; ``None`` skips it.

    Returns the canonical frame (see the module docstring). Raises
    ``ktrdr_core.market_data.OHLCVValidationError`` listing every broken rule with its line.
    """
    result = validate_ohlcv_csv(source, timeframe, max_errors=max_errors)
    result.raise_for_errors()
    return frame_from_validation(result)


def frame_from_validation(result: ValidationResult) -> pd.DataFrame:
    """Build the canonical frame from a successful ``ValidationResult`` (no re-parsing)."""
    result.raise_for_errors()
    seconds = np.frombuffer(result.timestamps, dtype=np.int64)
    index = pd.DatetimeIndex(
        seconds.astype("datetime64[s]").astype(f"datetime64[{_INDEX_UNIT}]"), name="timestamp"
    ).tz_localize("UTC")
    # Copies: the frame must not share memory with the result's growable arrays.
    data = {
        name: np.frombuffer(getattr(result, name), dtype=np.float64).copy()
        for name in OHLCV_COLUMNS
    }
    return pd.DataFrame(data, index=index, columns=list(OHLCV_COLUMNS))


def check_ohlcv(ohlcv: pd.DataFrame, timeframe: Timeframe | str | None = None) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``ohlcv`` is a canonical frame.

    Checks: UTC ``DatetimeIndex``, strictly increasing, columns exactly ``open, high, low,
    close, volume`` in that order, float64, no NaN; with ``timeframe``, every bar open on
    that timeframe's grid.
    """
    _check_index(ohlcv.index, "ohlcv", timeframe)
    if list(ohlcv.columns) != list(OHLCV_COLUMNS):
        raise ValueError(
            f"ohlcv columns must be exactly {list(OHLCV_COLUMNS)}, got {list(ohlcv.columns)}"
        )
    bad_types = {c: str(t) for c, t in ohlcv.dtypes.items() if t != np.float64}
    if bad_types:
        raise ValueError(f"ohlcv columns must be float64; got {bad_types}")
    nan_columns = [c for c in OHLCV_COLUMNS if np.isnan(ohlcv[c].to_numpy()).any()]
    if nan_columns:
        raise ValueError(f"ohlcv has NaN values in {nan_columns}; a canonical frame has none")


def resample_ohlcv(
    ohlcv: pd.DataFrame,
    source_tf: Timeframe | str,
    target_tf: Timeframe | str,
    *,
    drop_incomplete: bool = False,
) -> pd.DataFrame:
    """Resample a canonical frame to a higher timeframe.

    Each target bar gathers the source bars whose open falls in ``[T, T + target)``, with
    ``T`` on the target's grid (intraday: multiples from 00:00 UTC; 1d: 00:00 UTC; 1w: Monday
    00:00 UTC), and is labelled by ``T``: open = first open, high = max, low = min,
    close = last close, volume = sum. Periods without source bars (weekends, holes) produce
    no bar: nothing is filled.

    Incomplete bars: the last target bar is complete only when the source data reaches its
    close (last source open + source length >= ``T + target``). It is kept by default —
    flagged by ``result.attrs["last_bar_complete"] = False`` — and dropped when
    ``drop_incomplete=True``. Without a calendar a week of daily stock bars that ends on
    Friday still counts as incomplete (more bars could follow until Monday). The first bar
    may also start after ``T`` when the data begins mid-period; it is kept as it is.
    ``result.attrs["timeframe"]`` holds the target timeframe's name.

    ``ohlcv`` must be canonical (``check_ohlcv``) and on the ``source_tf`` grid; ``target_tf``
    must be a whole multiple of ``source_tf``. Returns a new canonical frame.
    """
    source = parse_timeframe(source_tf)
    target = parse_timeframe(target_tf)
    if not target.is_multiple_of(source):
        raise ValueError(
            f"cannot resample {source.value} to {target.value}: the target must be a whole "
            f"multiple of the source ({', '.join(t.value for t in source.multiples())})"
        )
    check_ohlcv(ohlcv, source)
    unit = ohlcv.index.unit
    if target == source or len(ohlcv) == 0:
        out = ohlcv.copy()
        out.attrs["timeframe"] = target.value
        out.attrs["last_bar_complete"] = True
        return out

    ns = ohlcv.index.as_unit("ns").asi8
    step = target.seconds * 1_000_000_000
    origin = target.origin * 1_000_000_000
    bucket = ns - np.remainder(ns - origin, step)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(ns)])) - 1

    columns = {name: ohlcv[name].to_numpy() for name in OHLCV_COLUMNS}
    data = {
        "open": columns["open"][starts],
        "high": np.maximum.reduceat(columns["high"], starts),
        "low": np.minimum.reduceat(columns["low"], starts),
        "close": columns["close"][ends],
        "volume": np.add.reduceat(columns["volume"], starts),
    }
    index = pd.DatetimeIndex(bucket[starts].astype("datetime64[ns]"), name="timestamp")
    index = index.tz_localize("UTC").as_unit(unit)
    out = pd.DataFrame(data, index=index, columns=list(OHLCV_COLUMNS))

    last_close = int(ns[-1]) + source.seconds * 1_000_000_000
    complete = last_close >= int(bucket[-1]) + step
    if drop_incomplete and not complete:
        out = out.iloc[:-1].copy()
        complete = True
    out.attrs["timeframe"] = target.value
    out.attrs["last_bar_complete"] = bool(complete)
    return out


def align_to_base(
    higher_frame: pd.DataFrame,
    higher_tf: Timeframe | str,
    base_index: pd.DatetimeIndex,
    base_tf: Timeframe | str,
) -> pd.DataFrame:
    """Show higher-timeframe values on the base timeframe's bars, WITHOUT LOOKAHEAD.

    ``higher_frame``: any frame indexed by higher-timeframe bar opens (UTC, increasing) —
    OHLCV, indicators, fuzzy degrees. ``base_index``: the base bars' opens.

    The higher bar opening at ``t`` (covering ``[t, t + H)``) becomes visible on the base bar
    whose close is the first at or after ``t + H``: for aligned bars, the base bar that opens
    at ``t + H - B``, or the next base bar present after it. It is then carried forward until
    the next higher bar becomes visible. Base bars before the first visible higher bar get
    NaN (integer and boolean columns therefore come back as float).

    Returns a frame indexed by ``base_index`` with ``higher_frame``'s columns. Raises
    ``ValueError`` when ``higher_tf`` is not a multiple of ``base_tf`` or an index is not a
    strictly increasing UTC index on its timeframe's grid.
    """
    higher = parse_timeframe(higher_tf)
    base = parse_timeframe(base_tf)
    if not higher.is_multiple_of(base):
        raise ValueError(
            f"cannot align {higher.value} bars onto {base.value} bars: the higher timeframe "
            f"must be a whole multiple of the base ({', '.join(t.value for t in base.multiples())})"
        )
    _check_index(higher_frame.index, "higher_frame", higher)
    _check_index(base_index, "base_index", base)

    if len(higher_frame) == 0:
        return pd.DataFrame(np.nan, index=base_index, columns=higher_frame.columns)

    higher_ns = higher_frame.index.as_unit("ns").asi8
    base_ns = base_index.as_unit("ns").asi8
    # Base-bar open at which each higher bar has closed: t + H - B.
    visible_at = higher_ns + (higher.seconds - base.seconds) * 1_000_000_000
    # The latest higher bar already visible at each base bar (-1: none yet).
    pos = np.searchsorted(visible_at, base_ns, side="right") - 1
    seen = pos >= 0
    out = higher_frame.iloc[np.where(seen, pos, 0)].set_axis(base_index, axis=0)
    if not seen.all():
        out = out.where(np.broadcast_to(seen[:, None], out.shape))
    return out


def _check_index(index: pd.Index, name: str, timeframe: Timeframe | str | None) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{name} must be indexed by a DatetimeIndex, got {type(index).__name__}")
    if index.tz is None or str(index.tz) != "UTC":
        raise ValueError(f"{name}'s index must be tz-aware UTC, got tz={index.tz}")
    if len(index) > 1:
        ns = index.as_unit("ns").asi8
        steps = np.diff(ns)
        if (steps <= 0).any():
            bad = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise ValueError(
                f"{name}'s index must strictly increase; position {bad} ({index[bad]}) "
                f"follows {index[bad - 1]}"
            )
    if timeframe is not None and len(index):
        tf = parse_timeframe(timeframe)
        ns = index.as_unit("ns").asi8
        off = np.remainder(ns - tf.origin * 1_000_000_000, tf.seconds * 1_000_000_000)
        if off.any():
            bad = int(np.flatnonzero(off)[0])
            raise ValueError(
                f"{name} has a bar at {index[bad]} that is not a {tf.value} bar open "
                "(intraday bars open at multiples from 00:00 UTC, 1d at 00:00, 1w on Monday)"
            )
