"""Training labels: which of BUY, HOLD or SELL a bar should have been, judged from its future.

Labels look into the future on purpose — that is what a label is — but only as far as the
method says, and a bar whose label the data cannot settle (the end of the series, a
volatility still warming up) gets NaN, never a guess. Each labelling returns the labels with
a :class:`LabelReport` (class counts and shares); a degenerate result — one class above
:data:`MAX_CLASS_SHARE` of the labelled bars, or a class missing — raises :class:`LabelError`
with advice on which parameter values would work on this data.

Classes, by model output index (their names and order are
:data:`ktrdr_core.reports.CLASS_NAMES`, which every report uses):

- ``BUY = 0``: the price is going to rise by the method's margin;
- ``HOLD = 1``: neither rise nor fall is clear enough;
- ``SELL = 2``: the price is going to fall by the method's margin.

Methods (all on ``close`` prices; thresholds are fractions of price, 0.02 = 2 %):

- :func:`zigzag_labels` — a bar whose next zigzag pivot (pivots reverse by at least
  ``threshold``) is a high at least ``threshold`` above it, confirmed within ``lookahead``
  bars, is BUY; such a low is SELL; the rest HOLD.
- :func:`forward_return_labels` — the return ``horizon`` bars ahead against buy and sell
  thresholds.
- :func:`triple_barrier_labels` — profit-take and stop barriers in units of the bar's
  volatility (rolling standard deviation of returns, or ATR as a fraction of price) and a
  vertical barrier after ``max_holding_bars`` bars: upper hit first is BUY, lower first SELL,
  neither HOLD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import CLASS_NAMES
from ktrdr_worker.calendars import infer_timeframe_seconds, timeframe_name

if TYPE_CHECKING:
    from ktrdr_core.strategy.sections import LabelsConfig

BUY = CLASS_NAMES.index("BUY")
HOLD = CLASS_NAMES.index("HOLD")
SELL = CLASS_NAMES.index("SELL")
#: A labelling where one class holds more than this share of the labelled bars is rejected.
MAX_CLASS_SHARE = 0.9

# Share of HOLD the advice aims for: enough signal bars to learn from, enough HOLD to mean it.
_TARGET_HOLD = (0.35, 0.65)


class LabelError(KtrdrError, ValueError):
    """Labelling parameters that do not fit the data; the message says what to try instead.

    ``report`` holds the label report of the rejected result (``None`` when the parameters
    themselves were invalid).
    """

    def __init__(self, message: str, report: LabelReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class LabelReport:
    """What a labelling produced.

    ``counts`` and ``shares`` are keyed by class name (``BUY``, ``HOLD``, ``SELL``); shares are
    fractions of the labelled bars. ``undetermined`` bars got NaN, for ``undetermined_reason``.
    """

    method: str
    params: dict[str, Any]
    timeframe: str
    total_bars: int
    labelled: int
    undetermined: int
    undetermined_reason: str
    counts: dict[str, int] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for training results and model bundles)."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "timeframe": self.timeframe,
            "total_bars": self.total_bars,
            "labelled": self.labelled,
            "undetermined": self.undetermined,
            "undetermined_reason": self.undetermined_reason,
            "counts": dict(self.counts),
            "shares": dict(self.shares),
        }

    def __str__(self) -> str:
        classes = ", ".join(
            f"{name} {self.counts[name]} ({self.shares[name]:.1%})" for name in CLASS_NAMES
        )
        return (
            f"{self.method} labels on {self.timeframe} data: {classes}; "
            f"{self.undetermined} of {self.total_bars} bars undetermined "
            f"({self.undetermined_reason})"
        )


@dataclass(frozen=True)
class LabelResult:
    """Labels and their report.

    ``labels``: float64 Series on the input's index, values ``BUY``/``HOLD``/``SELL`` (0/1/2)
    or NaN where undetermined. ``labelled()`` gives the determined bars as int8.
    """

    labels: pd.Series
    report: LabelReport

    def labelled(self) -> pd.Series:
        """Only the bars with a label, as an int8 Series."""
        return self.labels.dropna().astype(np.int8)


# --------------------------------------------------------------------------- helpers


def _close(ohlcv: pd.DataFrame, where: str) -> np.ndarray:
    if not isinstance(ohlcv, pd.DataFrame) or "close" not in ohlcv.columns:
        raise LabelError(f"{where}: needs an ohlcv DataFrame with a 'close' column")
    close = ohlcv["close"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(close) | (close <= 0)
    if bad.any():
        first = ohlcv.index[int(np.argmax(bad))]
        raise LabelError(
            f"{where}: close prices must be finite and positive; {int(bad.sum())} are not "
            f"(first at {first})"
        )
    return close


def _positive(where: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LabelError(f"{where}: {name} must be a finite number, got {value!r}")
    if value <= 0:
        raise LabelError(f"{where}: {name} must be > 0, got {value}")
    return float(value)


def _bars(where: str, name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise LabelError(f"{where}: {name} must be a whole number of bars ≥ 1, got {value!r}")
    return int(value)


def _timeframe_of(index: pd.Index) -> str:
    """The bar size as a timeframe name (``1h``), by ktrdr's one inference rule."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return "unknown-timeframe"
    try:
        return timeframe_name(infer_timeframe_seconds(index))
    except ValueError:
        return "unknown-timeframe"  # not increasing: the report names no timeframe


def _fmt(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 10 else f"{x:.0f}"


def _suggest_range(values: np.ndarray) -> tuple[float, float]:
    """Thresholds at which roughly ``_TARGET_HOLD`` of these move sizes stay below the threshold."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.quantile(finite, _TARGET_HOLD)
    return float(lo), float(hi)


def _forward_extremes(close: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest close over the next ``window`` bars (t+1 … t+window); NaN past the end."""
    n = close.size
    hi = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    if n > window:
        # origin -(window // 2) makes the filter at i cover i … i+window-1; read it at t+1.
        origin = -(window // 2)
        fmax = maximum_filter1d(close, size=window, origin=origin, mode="nearest")
        fmin = minimum_filter1d(close, size=window, origin=origin, mode="nearest")
        hi[: n - window] = fmax[1 : n - window + 1]
        lo[: n - window] = fmin[1 : n - window + 1]
    return hi, lo


def _finish(
    labels: np.ndarray,
    index: pd.Index,
    method: str,
    params: dict[str, Any],
    undetermined_reason: str,
    advise: Any,
) -> LabelResult:
    """Count classes, build the report and reject a degenerate result with ``advise(report)``."""
    determined = ~np.isnan(labels)
    values = labels[determined].astype(np.int64)
    counts_arr = np.bincount(values, minlength=3)
    labelled = int(determined.sum())
    counts = {name: int(counts_arr[i]) for i, name in enumerate(CLASS_NAMES)}
    shares = {name: (counts[name] / labelled if labelled else 0.0) for name in CLASS_NAMES}
    report = LabelReport(
        method=method,
        params=params,
        timeframe=_timeframe_of(index),
        total_bars=int(labels.size),
        labelled=labelled,
        undetermined=int(labels.size - labelled),
        undetermined_reason=undetermined_reason,
        counts=counts,
        shares=shares,
    )
    series = pd.Series(labels, index=index, name="label", dtype=np.float64)
    if labelled == 0:
        raise LabelError(
            f"{method} {_describe(params)} labels no bar of the {labels.size} "
            f"({undetermined_reason}); {advise(report)}",
            report,
        )
    missing = [name for name in CLASS_NAMES if counts[name] == 0]
    dominant = max(CLASS_NAMES, key=lambda name: shares[name])
    if missing or shares[dominant] > MAX_CLASS_SHARE:
        what = f"{shares[dominant]:.0%} {dominant}"
        if missing:
            what += f" (no {', no '.join(missing)})"
        raise LabelError(
            f"{method} {_describe(params)} gives {what} on {report.timeframe} data "
            f"({labelled} labelled bars); {advise(report)}",
            report,
        )
    return LabelResult(series, report)


def _describe(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


# --------------------------------------------------------------------------- zigzag


def _first_reversal(
    close: np.ndarray, start: int, threshold: float, rising: bool
) -> tuple[int, int] | None:
    """On a leg that began at bar ``start``: (its extreme, the bar that confirmed it).

    A rising leg ends at its highest close once some later close is at least ``threshold``
    below that high; a falling leg mirrors this. ``None`` when the data ends first.
    ``start`` must be the bar that confirmed the previous pivot: from there on the leg's
    extreme is its running extreme (the closes between the previous pivot and ``start`` lie
    inside the reversal band, so none of them can be the new extreme). Searches windows that
    double in size, so a leg costs O(its length) numpy work.
    """
    n = close.size
    width = 64
    while True:
        stop = min(n, start + width)
        seg = close[start:stop]
        if rising:
            extreme = np.maximum.accumulate(seg)
            hits = np.flatnonzero(seg <= extreme * (1.0 - threshold))
        else:
            extreme = np.minimum.accumulate(seg)
            hits = np.flatnonzero(seg >= extreme * (1.0 + threshold))
        if hits.size:
            confirm = int(hits[0])
            head = seg[:confirm]
            at = int(np.argmax(head)) if rising else int(np.argmin(head))
            return start + at, start + confirm
        if stop == n:
            return None
        width *= 2


class Pivots(NamedTuple):
    """Confirmed zigzag pivots, as parallel arrays in bar order.

    ``index``: bar position of each pivot; ``kind``: +1 for a high, -1 for a low;
    ``confirmed``: bar position of the first close that reversed by the threshold from it.
    """

    index: np.ndarray
    kind: np.ndarray
    confirmed: np.ndarray


def zigzag_pivots(close: np.ndarray, threshold: float) -> Pivots:
    """Confirmed zigzag pivots of a close series (the textbook zigzag state machine).

    ``threshold``: the reversal, as a fraction of price, that confirms a pivot (0.02 = 2 %).
    A pivot is listed once a later close has reversed by ``threshold`` from it, so the pivots
    confirmed by bar T are the same whatever comes after T; the last, unconfirmed leg is not
    listed. Loops over pivots, not bars.
    """
    close = np.asarray(close, dtype=np.float64)
    empty = Pivots(
        np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8), np.empty(0, dtype=np.int64)
    )
    if close.size < 2:
        return empty
    # The first pivot: whichever of the running low (confirmed by a rise) or the running high
    # (confirmed by a fall) is confirmed first.
    run_min = np.minimum.accumulate(close)
    run_max = np.maximum.accumulate(close)
    up = np.flatnonzero(close >= run_min * (1.0 + threshold))
    down = np.flatnonzero(close <= run_max * (1.0 - threshold))
    if up.size == 0 and down.size == 0:
        return empty
    if down.size == 0 or (up.size and up[0] < down[0]):
        confirm = int(up[0])
        first, kind = int(np.argmin(close[:confirm])), -1
    else:
        confirm = int(down[0])
        first, kind = int(np.argmax(close[:confirm])), 1
    indices, kinds, confirms = [first], [kind], [confirm]
    while True:
        # After a low the leg rises (look for the high), after a high it falls.
        found = _first_reversal(close, confirm, threshold, rising=kind == -1)
        if found is None:
            break
        pivot, confirm = found
        kind = -kind
        indices.append(pivot)
        kinds.append(kind)
        confirms.append(confirm)
    return Pivots(
        np.asarray(indices, dtype=np.int64),
        np.asarray(kinds, dtype=np.int8),
        np.asarray(confirms, dtype=np.int64),
    )


def _zigzag_array(close: np.ndarray, threshold: float, lookahead: int) -> np.ndarray:
    """Zigzag labels as a float array; the last ``lookahead`` bars are NaN."""
    n = close.size
    labels = np.full(n, np.nan)
    determined = n - lookahead  # bars 0 … n-lookahead-1 see their whole lookahead window
    if determined <= 0:
        return labels
    pivots = zigzag_pivots(close, threshold)
    t = np.arange(determined)
    lab = np.full(determined, HOLD, dtype=np.float64)
    if pivots.index.size:
        # The next pivot strictly after t; past the last one there is none (k == size).
        k = np.searchsorted(pivots.index, t, side="right")
        has = k < pivots.index.size
        k = np.minimum(k, pivots.index.size - 1)
        target = pivots.index[k]
        # The whole swing — pivot and the reversal confirming it — lies within the window.
        seen = has & (pivots.confirmed[k] <= t + lookahead)
        move = close[target] / close[t] - 1.0
        kind = pivots.kind[k]
        lab[seen & (kind == 1) & (move >= threshold)] = BUY
        lab[seen & (kind == -1) & (move <= -threshold)] = SELL
    labels[:determined] = lab
    return labels


# Bars the zigzag advice scans: enough for stable shares, bounded time on long series.
_ADVICE_BARS = 50_000


def _zigzag_thresholds(close: np.ndarray, lookahead: int) -> tuple[float, float]:
    """Range of thresholds whose zigzag labels have a HOLD share within ``_TARGET_HOLD``.

    The share is not a closed form of the threshold, so candidates spanning the typical
    ``lookahead``-bar moves are labelled and measured (on the last ``_ADVICE_BARS`` bars).
    """
    close = close[-_ADVICE_BARS:]
    hi, lo = _forward_extremes(close, lookahead)
    swing = np.fmax(hi / close - 1.0, 1.0 - lo / close)
    swing = swing[np.isfinite(swing) & (swing > 0)]
    if swing.size == 0:
        return (math.nan, math.nan)
    low, high = np.quantile(swing, [0.02, 0.98])
    good = []
    for threshold in np.geomspace(low / 2, high, 16):
        lab = _zigzag_array(close, float(threshold), lookahead)
        lab = lab[~np.isnan(lab)]
        if lab.size == 0:
            continue
        shares = np.bincount(lab.astype(np.int64), minlength=3) / lab.size
        if _TARGET_HOLD[0] <= shares[HOLD] <= _TARGET_HOLD[1] and shares.min() > 0:
            good.append(float(threshold))
    return (min(good), max(good)) if good else (math.nan, math.nan)


def zigzag_labels(ohlcv: pd.DataFrame, threshold: float, lookahead: int) -> LabelResult:
    """Zigzag labels: does a whole zigzag swing start at this bar?

    ``threshold``: reversal that makes a pivot, fraction of price (0.02 = 2 %).
    ``lookahead``: bars ahead the label may see (its horizon).
    A bar t is BUY when its next zigzag pivot is a high at least ``threshold`` above
    ``close[t]`` and that high is confirmed (a close ``threshold`` below it) by bar
    ``t + lookahead``; SELL when it is such a low, confirmed in time; else HOLD. So a label
    depends on closes up to ``t + lookahead`` only, and the last ``lookahead`` bars are NaN.
    """
    where = "zigzag"
    threshold = _positive(where, "threshold", threshold)
    if threshold >= 1:
        raise LabelError(f"{where}: threshold is a fraction (0.02 = 2 %), got {threshold}")
    lookahead = _bars(where, "lookahead", lookahead)
    close = _close(ohlcv, where)
    labels = _zigzag_array(close, threshold, lookahead)

    def advise(report: LabelReport) -> str:
        a, b = _zigzag_thresholds(close, lookahead)
        if math.isnan(a):
            return (
                "no threshold gives balanced labels with this lookahead on this data; "
                "try a longer lookahead or more data"
            )
        return f"try threshold {_fmt(a)}–{_fmt(b)} with lookahead {lookahead} on this data"

    return _finish(
        labels,
        ohlcv.index,
        where,
        {"threshold": threshold, "lookahead": lookahead},
        f"the last {lookahead} bars lack a full {lookahead}-bar lookahead",
        advise,
    )


# --------------------------------------------------------------------------- forward return


def forward_return_labels(
    ohlcv: pd.DataFrame, horizon: int, buy_threshold: float, sell_threshold: float
) -> LabelResult:
    """Forward-return labels, ``r = close[t + horizon] / close[t] - 1``.

    ``horizon``: bars ahead. ``buy_threshold``: BUY when ``r > buy_threshold`` (fraction, > 0).
    ``sell_threshold``: SELL when ``r < sell_threshold`` (signed fraction, < 0: -0.01 means a
    fall of more than 1 %). Otherwise HOLD. The last ``horizon`` bars are NaN.
    """
    where = "forward_return"
    horizon = _bars(where, "horizon", horizon)
    buy_threshold = _positive(where, "buy_threshold", buy_threshold)
    if isinstance(sell_threshold, bool) or not isinstance(sell_threshold, int | float):
        raise LabelError(f"{where}: sell_threshold must be a number, got {sell_threshold!r}")
    if not -1 < sell_threshold < 0:
        raise LabelError(
            f"{where}: sell_threshold is a signed return between -1 and 0 (-0.01 = a 1 % "
            f"fall), got {sell_threshold}"
        )
    sell_threshold = float(sell_threshold)
    close = _close(ohlcv, where)
    n = close.size
    ret = np.full(n, np.nan)
    if n > horizon:
        ret[: n - horizon] = close[horizon:] / close[: n - horizon] - 1.0
    labels = np.where(ret > buy_threshold, BUY, np.where(ret < sell_threshold, SELL, HOLD)).astype(
        np.float64
    )
    labels[np.isnan(ret)] = np.nan

    def advise(report: LabelReport) -> str:
        a, b = _suggest_range(np.abs(ret))
        if math.isnan(a):
            return f"use more than {horizon} bars of data or a shorter horizon"
        return (
            f"try buy_threshold {_fmt(a)}–{_fmt(b)} and sell_threshold {_fmt(-b)}–{_fmt(-a)} "
            f"(typical size of a {horizon}-bar return on this data)"
        )

    return _finish(
        labels,
        ohlcv.index,
        where,
        {"horizon": horizon, "buy_threshold": buy_threshold, "sell_threshold": sell_threshold},
        f"the last {horizon} bars have no close {horizon} bars ahead",
        advise,
    )


# --------------------------------------------------------------------------- triple barrier

Volatility = Literal["std", "atr"]


def volatility(ohlcv: pd.DataFrame, method: Volatility, window: int) -> np.ndarray:
    """Per-bar volatility as a fraction of price, from bars up to and including t.

    ``std``: standard deviation (ddof 1) of simple close-to-close returns over ``window``
    returns. ``atr``: TA-Lib's ATR over ``window`` bars divided by the close. NaN in warm-up.
    """
    where = "triple_barrier"
    window = _bars(where, "volatility_window", window)
    close = _close(ohlcv, where)
    if method == "std":
        if window < 2:
            raise LabelError(f"{where}: a standard deviation needs volatility_window ≥ 2")
        returns = pd.Series(close).pct_change()
        return returns.rolling(window, min_periods=window).std().to_numpy(dtype=np.float64)
    if method == "atr":
        import talib  # heavy C extension: imported only where ATR is asked for

        missing = [c for c in ("high", "low") if c not in ohlcv.columns]
        if missing:
            raise LabelError(f"{where}: ATR volatility needs columns {missing}")
        atr = talib.ATR(
            ohlcv["high"].to_numpy(dtype=np.float64),
            ohlcv["low"].to_numpy(dtype=np.float64),
            close,
            timeperiod=window,
        )
        return atr / close
    raise LabelError(f"{where}: volatility must be 'std' or 'atr', got {method!r}")


def triple_barrier_labels(
    ohlcv: pd.DataFrame,
    profit_take: float,
    stop_loss: float,
    max_holding_bars: int,
    volatility_method: Volatility = "std",
    volatility_window: int = 20,
) -> LabelResult:
    """Triple-barrier labels on closes.

    At bar t with volatility ``v`` (fraction of price, see :func:`volatility`), the upper
    barrier is ``close[t] * (1 + profit_take * v)`` and the lower ``close[t] * (1 - stop_loss
    * v)``; ``profit_take`` and ``stop_loss`` are in volatility units (> 0). The first close
    among the next ``max_holding_bars`` bars to reach the upper barrier makes t BUY, the lower one
    SELL; neither within ``max_holding_bars`` bars is HOLD. NaN: volatility warm-up, and bars near
    the end that touch no barrier before the data runs out.
    """
    where = "triple_barrier"
    profit_take = _positive(where, "profit_take", profit_take)
    stop_loss = _positive(where, "stop_loss", stop_loss)
    max_holding = _bars(where, "max_holding_bars", max_holding_bars)
    close = _close(ohlcv, where)
    vol = volatility(ohlcv, volatility_method, volatility_window)
    n = close.size
    upper = close * (1.0 + profit_take * vol)
    lower = close * (1.0 - stop_loss * vol)
    # First bar offset (1 … max_holding) at which each barrier is touched; never = not at all.
    never = max_holding + 1
    first_up = np.full(n, never, dtype=np.int64)
    first_down = np.full(n, never, dtype=np.int64)
    for k in range(1, min(max_holding, n - 1) + 1):
        ahead = close[k:]
        span = slice(0, n - k)
        hit_up = (ahead >= upper[span]) & (first_up[span] == never)
        hit_down = (ahead <= lower[span]) & (first_down[span] == never)
        first_up[span][hit_up] = k
        first_down[span][hit_down] = k
    labels = np.full(n, float(HOLD))
    labels[first_up < first_down] = BUY
    labels[first_down < first_up] = SELL
    # A barrier reached by a close can only be reached by one of them, so a tie is "neither".
    bars_left = n - 1 - np.arange(n)
    unresolved = (first_up == never) & (first_down == never) & (bars_left < max_holding)
    labels[unresolved | ~np.isfinite(vol)] = np.nan

    def advise(report: LabelReport) -> str:
        hi, lo = _forward_extremes(close, max_holding)
        with np.errstate(invalid="ignore", divide="ignore"):
            swing = np.fmax(hi / close - 1.0, 1.0 - lo / close) / vol
        a, b = _suggest_range(swing)
        if math.isnan(a):
            return "use more data, a shorter volatility_window or a shorter max_holding_bars"
        return (
            f"try profit_take and stop_loss {_fmt(a)}–{_fmt(b)} volatility units (typical "
            f"largest move within {max_holding} bars on this data), or change max_holding_bars"
        )

    return _finish(
        labels,
        ohlcv.index,
        where,
        {
            "profit_take": profit_take,
            "stop_loss": stop_loss,
            "max_holding_bars": max_holding,
            "volatility": volatility_method,
            "volatility_window": volatility_window,
        },
        f"volatility warm-up ({volatility_window} bars) and bars too close to the end to "
        f"reach a barrier or {max_holding} bars",
        advise,
    )


# --------------------------------------------------------------------------- from a strategy


def make_labels(config: LabelsConfig, ohlcv: pd.DataFrame) -> LabelResult:
    """Labels for a strategy's ``labels`` section (``strategy.labels``) on base-timeframe bars.

    The volatility of a triple barrier is the rolling standard deviation of returns, as the
    schema defines it. Returns labels and report; raises :class:`LabelError` as the methods do.
    """
    method = config.method
    if method == "zigzag":
        zz = config.zigzag
        assert zz is not None
        return zigzag_labels(ohlcv, threshold=zz.threshold, lookahead=zz.lookahead)
    if method == "forward_return":
        fr = config.forward_return
        assert fr is not None
        return forward_return_labels(
            ohlcv,
            horizon=fr.horizon,
            buy_threshold=fr.buy_threshold,
            sell_threshold=fr.sell_threshold,
        )
    tb = config.triple_barrier
    assert tb is not None
    return triple_barrier_labels(
        ohlcv,
        profit_take=tb.profit_take,
        stop_loss=tb.stop_loss,
        max_holding_bars=tb.max_holding_bars,
        volatility_method="std",
        volatility_window=tb.volatility_window,
    )
