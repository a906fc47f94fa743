"""The series a result page draws, decimated for the screen: ``ktrdr-backtest-series/1``.

A backtest's report holds every bar's equity; a page cannot draw a million points quickly, and
needs none it cannot show. Past ``MAX_POINTS`` points a series is cut into equal buckets of
consecutive bars (half as many buckets as ``MAX_POINTS``) and each bucket keeps its lowest and
its highest point, in time order. So the drawdown's deepest point, the equity's peaks and
troughs, and every bar a trade enters or leaves (kept on top of the buckets) survive; what
goes is the wiggle between them. Prices become one candle per bucket (first open, highest
high, lowest low, last close), and a trade's marker sits on the candle of its bar's bucket.

Times are UNIX seconds (UTC bar open times), the unit the page's chart library reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.reports import BACKTEST_SERIES_FORMAT

MAX_POINTS = 4000
"""Most points a series keeps (a wide screen's pixels, twice over)."""


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("s").asi8 if index.tz is not None else index.asi8 // 10**9


def bucket_edges(n: int, max_points: int = MAX_POINTS) -> np.ndarray | None:
    """Start positions of the buckets for ``n`` bars (None: no decimation needed)."""
    if n <= max_points:
        return None
    buckets = max_points // 2
    return np.unique(np.linspace(0, n, buckets, endpoint=False).astype(np.int64))


def extreme_positions(
    values: np.ndarray, edges: np.ndarray | None, keep: Iterable[int] = ()
) -> np.ndarray:
    """Positions of ``values`` to keep: each bucket's minimum and maximum, plus ``keep``
    (sorted, unique). Without ``edges`` every position is kept."""
    n = len(values)
    if edges is None:
        return np.arange(n)
    lows = edges + _reduce_arg(values, edges, np.minimum)
    highs = edges + _reduce_arg(values, edges, np.maximum)
    extra = np.fromiter((p for p in keep if 0 <= p < n), dtype=np.int64)
    return np.unique(np.concatenate([lows, highs, extra, [0, n - 1]]))


def _reduce_arg(values: np.ndarray, edges: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Offset, inside each bucket, of its extreme (``np.minimum`` or ``np.maximum``)."""
    extremes = ufunc.reduceat(values, edges)
    bucket = np.repeat(np.arange(len(edges)), np.diff(np.append(edges, len(values))))
    hit = values == extremes[bucket]
    positions = np.arange(len(values))
    # The first position of each bucket whose value equals the bucket's extreme.
    first = np.full(len(edges), len(values), dtype=np.int64)
    np.minimum.at(first, bucket[hit], positions[hit])
    return first - edges


def line(index: pd.DatetimeIndex, values: np.ndarray, positions: np.ndarray) -> list[list[Any]]:
    """``[[time, value], ...]`` at ``positions`` (None for a value that is not finite)."""
    times = _seconds(index)[positions]
    picked = values[positions]
    return [
        [int(t), float(v) if np.isfinite(v) else None] for t, v in zip(times, picked, strict=True)
    ]


def candles(ohlcv: pd.DataFrame, edges: np.ndarray | None) -> list[list[Any]]:
    """``[[time, open, high, low, close], ...]``: every bar, or one candle per bucket."""
    times = _seconds(ohlcv.index)
    columns = [ohlcv[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")]
    if edges is None:
        rows = zip(times, *columns, strict=True)
    else:
        ends = np.append(edges[1:], len(times)) - 1
        rows = zip(
            times[edges],
            columns[0][edges],
            np.maximum.reduceat(columns[1], edges),
            np.minimum.reduceat(columns[2], edges),
            columns[3][ends],
            strict=True,
        )
    return [[int(t), float(o), float(h), float(lo), float(c)] for t, o, h, lo, c in rows]


def _positions(index: pd.DatetimeIndex, stamps: Iterable[str]) -> list[int]:
    wanted = pd.DatetimeIndex([pd.Timestamp(s) for s in stamps])
    if len(wanted) == 0:
        return []
    if wanted.tz is None:
        wanted = wanted.tz_localize("UTC")
    found = index.get_indexer(wanted.tz_convert(index.tz) if index.tz is not None else wanted)
    return [int(p) for p in found if p >= 0]


def symbol_series(
    report: Mapping[str, Any],
    ohlcv: pd.DataFrame,
    equity: pd.Series,
    held: pd.Series,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """One symbol's page data: its report's numbers, its trades (each marker's time is the
    candle its bar falls in) and its decimated price, equity, buy-and-hold and drawdown."""
    index = ohlcv.index
    edges = bucket_edges(len(index), max_points)
    trades = report["trades"]
    at_trades = _positions(index, [t["entry_time"] for t in trades])
    at_trades += _positions(index, [t["exit_time"] for t in trades])
    values = equity.reindex(index).to_numpy(dtype=np.float64)
    holding = held.reindex(index).to_numpy(dtype=np.float64)
    peak = np.fmax.accumulate(values)
    drawdown = np.where(peak > 0, 1.0 - values / peak, 0.0)
    candle_of = _seconds(index)
    if edges is not None:
        bucket = np.repeat(np.arange(len(edges)), np.diff(np.append(edges, len(index))))
        candle_of = candle_of[edges][bucket]

    def marker_time(stamp: str) -> int | None:
        found = _positions(index, [stamp])
        return int(candle_of[found[0]]) if found else None

    return {
        "symbol": report["symbol"],
        "metrics": report["metrics"],
        "buy_and_hold_metrics": report["buy_and_hold"],
        "signal_counts": report["signal_counts"],
        "zero_trade_reason": report["zero_trade_reason"],
        "trades": [
            {
                "entry_time": marker_time(t["entry_time"]),
                "exit_time": marker_time(t["exit_time"]),
                "side": t["side"],
                "entry_price": t["entry_price"],
                "exit_price": t["exit_price"],
                "net_pnl": t["net_pnl"],
                "exit_reason": t["exit_reason"],
            }
            for t in trades
        ],
        "price": candles(ohlcv, edges),
        "equity": line(index, values, extreme_positions(values, edges, at_trades)),
        "buy_and_hold": line(index, holding, extreme_positions(holding, edges)),
        "drawdown": line(index, drawdown, extreme_positions(drawdown, edges, at_trades)),
        "bars": len(index),
        "decimated": edges is not None,
    }


def portfolio_series(
    document: Mapping[str, Any],
    equity: pd.Series,
    held: pd.Series,
    max_points: int = MAX_POINTS,
) -> dict[str, Any]:
    """The portfolio's page data: its metrics, weights and contributions, and its decimated
    equity, buy-and-hold and drawdown on the union of the sleeves' bar times."""
    section = document["portfolio"]
    index = pd.DatetimeIndex(equity.index)
    values = equity.to_numpy(dtype=np.float64)
    holding = held.reindex(index).to_numpy(dtype=np.float64)
    peak = np.fmax.accumulate(values)
    drawdown = np.where(peak > 0, 1.0 - values / peak, 0.0)
    edges = bucket_edges(len(index), max_points)
    return {
        "metrics": section["metrics"],
        "buy_and_hold_metrics": section["buy_and_hold"],
        "weights": section["weights"],
        "contributions": section["contributions"],
        "equity": line(index, values, extreme_positions(values, edges)),
        "buy_and_hold": line(index, holding, extreme_positions(holding, edges)),
        "drawdown": line(index, drawdown, extreme_positions(drawdown, edges)),
        "bars": len(index),
        "decimated": edges is not None,
    }


def backtest_series(
    document: Mapping[str, Any],
    symbols: Mapping[str, dict[str, Any]],
    portfolio: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole artifact: the report's identity, the portfolio (None for one symbol) and each
    symbol's :func:`symbol_series`."""
    return {
        "format": BACKTEST_SERIES_FORMAT,
        "strategy_name": document["strategy_name"],
        "timeframe": document["timeframe"],
        "start": document["start"],
        "end": document["end"],
        "bars": document["bars"],
        "period": document["period"],
        "max_points": MAX_POINTS,
        "portfolio": portfolio,
        "symbols": dict(symbols),
    }
