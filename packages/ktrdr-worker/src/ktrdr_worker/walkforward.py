"""The walk-forward report: stitch the folds' out-of-sample backtests into one record.

Each fold's backtest starts from the same capital. Stitched, fold *k*'s equity is scaled so
that it starts where fold *k − 1* ended: ``S(t) = C · Π_{j<k} (E_j,end / C_j) · E_k(t) / C_k``
— the equity of one account that traded every test window in turn. Its trades are scaled by
the same factor (returns unchanged), and the metrics are computed over the stitched curve
with the same code and definitions as any backtest (:mod:`ktrdr_worker.backtest.metrics`).
The test windows are contiguous, so buy-and-hold is holding the asset over the whole span
(close to close, no costs: the one definition, in :mod:`ktrdr_worker.backtest.metrics`).

A model trained on several symbols backtests each fold as a portfolio
(``ktrdr-backtest-report/2``): the stitched record is the portfolio's — its equity, capital
and calendar, every symbol's trades — and buy-and-hold holds each symbol's share of the
capital over the whole span (``close`` is then that basket's value, see
:func:`basket_close`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.protocol import FoldOutcome
from ktrdr_core.reports import headline
from ktrdr_core.walkforward import ranking_stability
from ktrdr_worker.backtest.metrics import buy_and_hold_equity, compute_metrics
from ktrdr_worker.calendars import TradingCalendar

__all__ = ["FOLD_METRICS", "WALKFORWARD_REPORT_FORMAT", "basket_close", "stitch_walkforward"]

WALKFORWARD_REPORT_FORMAT = "ktrdr-walkforward-report/1"

FOLD_METRICS = ("total_return", "sharpe", "max_drawdown", "num_trades", "win_rate", "exposure")
"""The metrics the per-fold table carries (the fold reports hold them all)."""


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return None


def _series(pairs: Sequence[Sequence[Any]]) -> pd.Series:
    index = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in pairs]).tz_convert(UTC)
    return pd.Series([float(v) for _, v in pairs], index=index, dtype=np.float64)


def _capital(report: Mapping[str, Any]) -> float:
    whole = headline(report)
    return float(whole["capital"] if "capital" in whole else report["config"]["capital"])


def _trades(report: Mapping[str, Any]) -> list[Any]:
    sections = report.get("symbols")
    if isinstance(sections, Mapping):  # a portfolio: every sleeve's trades
        return [trade for section in sections.values() for trade in section.get("trades", [])]
    return list(report.get("trades", []))


def basket_close(closes: Mapping[str, pd.Series], weights: Mapping[str, float]) -> pd.Series:
    """The value of holding ``weights[s]`` of one unit of money in each symbol from the first
    bar on (``Σ w_s · close_s(t) / close_s(t₀)``), on the union of their bar times, each
    symbol carried forward where it has no bar: a portfolio's buy-and-hold "price"."""
    union = closes[next(iter(closes))].index
    for close in closes.values():
        union = union.union(close.index)
    total = pd.Series(0.0, index=union)
    for symbol, close in closes.items():
        carried = close.reindex(union).ffill().bfill()
        total = total + weights[symbol] * carried / float(close.iloc[0])
    return total


def stitch_walkforward(
    folds: Sequence[FoldOutcome],
    reports: Mapping[int, Mapping[str, Any]],
    close: pd.Series,
    *,
    walkforward_id: str,
    strategy_name: str,
    window: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The aggregate report and its page's series (``ktrdr-walkforward-series/1``).

    ``reports``: fold index -> that fold's backtest report (``ktrdr-backtest-report/1``, or
    ``/2`` for a portfolio); ``close``: the symbol's close prices on the base timeframe (any
    span covering the test windows), or a portfolio's :func:`basket_close` from the first
    test window's start.
    """
    ordered = sorted(folds, key=lambda f: f.index)
    first = reports[ordered[0].index]
    capital = _capital(first)
    level = capital  # where the stitched account stands when the next fold starts
    pieces: list[pd.Series] = []
    trades: list[pd.DataFrame] = []
    per_fold = []
    for fold in ordered:
        report = reports[fold.index]
        whole = headline(report)
        equity = _series(whole["equity"])
        if pieces and len(equity) and equity.index[0] <= pieces[-1].index[-1]:
            raise ValueError(
                f"fold {fold.index}'s test window starts at {equity.index[0]}, before fold "
                f"{fold.index - 1}'s ended at {pieces[-1].index[-1]}: the folds overlap"
            )
        scale = level / _capital(report)
        pieces.append(equity * scale)
        frame = pd.DataFrame(_trades(report))
        if len(frame):
            trades.append(
                pd.DataFrame(
                    {
                        "entry_time": pd.to_datetime(frame["entry_time"], utc=True),
                        "exit_time": pd.to_datetime(frame["exit_time"], utc=True),
                        "net_pnl": frame["net_pnl"].astype(float) * scale,
                        "commission": frame["commission"].astype(float) * scale,
                        "return": frame["return"].astype(float),
                        "bars_held": frame["bars_held"].astype(int),
                        "fold": fold.index,
                    }
                )
            )
        if len(equity):
            level = float(equity.iloc[-1]) * scale
        metrics = whole.get("metrics", {})
        per_fold.append(
            {
                "fold": fold.index,
                "test_start": fold.test_start.isoformat(),
                "test_end": fold.test_end.isoformat(),
                "bars": int(report.get("bars", len(equity))),
                **{key: metrics.get(key) for key in FOLD_METRICS},
                "buy_and_hold_return": whole.get("buy_and_hold", {}).get("total_return"),
                "model_id": fold.model_id,
                "training_operation_id": fold.training_operation_id,
                "backtest_operation_id": fold.backtest_operation_id,
            }
        )

    stitched = pd.concat(pieces)
    index = stitched.index
    columns = ["entry_time", "exit_time", "net_pnl", "commission", "return", "bars_held"]
    all_trades = pd.concat(trades, ignore_index=True) if trades else pd.DataFrame(columns=columns)
    all_trades["entry_bar"] = index.searchsorted(all_trades["entry_time"]).astype(np.int64)
    all_trades["exit_bar"] = np.minimum(
        index.searchsorted(all_trades["exit_time"]), len(index) - 1
    ).astype(np.int64)
    prices = close.reindex(index, method="ffill").to_numpy(dtype=np.float64)
    calendar = TradingCalendar(**{**headline(first)["calendar"], "inferred": ()})
    metrics = compute_metrics(
        index=index,
        equity=stitched.to_numpy(dtype=np.float64),
        close=prices,
        trades=all_trades,
        calendar=calendar,
        capital=capital,
    )
    held = pd.Series(buy_and_hold_equity(prices, capital), index=index)

    returns = [row["total_return"] for row in per_fold if row["total_return"] is not None]
    summary = {
        "folds": len(per_fold),
        "profitable_folds": sum(r > 0 for r in returns),
        "mean_fold_return": float(np.mean(returns)) if returns else None,
        "fold_return_std": float(np.std(returns, ddof=1)) if len(returns) > 1 else None,
        "beat_buy_and_hold": sum(
            row["total_return"] is not None
            and row["buy_and_hold_return"] is not None
            and row["total_return"] > row["buy_and_hold_return"]
            for row in per_fold
        ),
    }
    stability = ranking_stability([fold.importance for fold in ordered])
    report = {
        "format": WALKFORWARD_REPORT_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "walkforward_id": walkforward_id,
        "strategy_name": strategy_name,
        "window": window,
        "symbol": first.get("symbol"),  # None for a portfolio: see symbols
        "symbols": list(first["symbols"]) if "symbols" in first else [first.get("symbol")],
        "timeframe": first.get("timeframe"),
        "metrics": {key: _number(value) for key, value in metrics.items()},
        "summary": summary,
        "folds": per_fold,
        "stability": stability,
        "trades": len(all_trades),
        "equity": [(t.isoformat(), float(v)) for t, v in stitched.items()],
    }
    series = walkforward_series(report, stitched, held, [row["test_start"] for row in per_fold])
    return report, series


def walkforward_series(
    report: Mapping[str, Any], stitched: pd.Series, held: pd.Series, fold_starts: Sequence[str]
) -> dict[str, Any]:
    """What a walk-forward's page draws: the stitched out-of-sample equity, buy-and-hold and
    drawdown (decimated as a backtest's, see ``ktrdr_worker.models.series``), and the time of
    each fold's first test bar (UNIX seconds), where the page marks a boundary."""
    from ktrdr_core.reports import WALKFORWARD_SERIES_FORMAT
    from ktrdr_worker.models.series import bucket_edges, extreme_positions, line

    index = pd.DatetimeIndex(stitched.index)
    values = stitched.to_numpy(dtype=np.float64)
    holding = held.reindex(index).to_numpy(dtype=np.float64)
    peak = np.fmax.accumulate(values)
    drawdown = np.where(peak > 0, 1.0 - values / peak, 0.0)
    edges = bucket_edges(len(index))
    return {
        "format": WALKFORWARD_SERIES_FORMAT,
        "walkforward_id": report["walkforward_id"],
        "strategy_name": report["strategy_name"],
        "metrics": report["metrics"],
        "fold_starts": [int(pd.Timestamp(t).timestamp()) for t in fold_starts],
        "equity": line(index, values, extreme_positions(values, edges)),
        "buy_and_hold": line(index, holding, extreme_positions(holding, edges)),
        "drawdown": line(index, drawdown, extreme_positions(drawdown, edges)),
    }
