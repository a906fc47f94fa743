"""Backtest a trained model: bundle + market data → report JSON and the page's series.

:func:`backtest_model` runs, for one symbol:

1. the bundle's strategy (from ``bundle.json``) computes features on all the bars given up to
   the end of the period — the bars before its start warm the indicators up, and at least
   the bundle's ``warmup_bars`` of them are required;
2. the model predicts class probabilities (feature names checked against the bundle);
3. the ``decisions`` settings turn them into target positions over the period;
4. ``ktrdr_worker.backtest.run`` simulates them with the strategy's ``backtest`` settings, and
   the same engine holds the asset over the same bars for the buy-and-hold comparison;
5. the report (``ktrdr_core.reports.BacktestReport``) and the series its page draws
   (``ktrdr_worker.models.series``: price, trades, equity, buy-and-hold, drawdown).

By default the period is the bundle's test period: bars the model never trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ktrdr_core.bundles import BundleSource
from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import BacktestReport, in_sample_parts
from ktrdr_core.strategy.loading import load_strategy
from ktrdr_worker.backtest import BacktestConfig, compute_metrics, run
from ktrdr_worker.backtest.metrics import buy_and_hold_equity
from ktrdr_worker.features import compute_features
from ktrdr_worker.models.decisions import DecisionSettings, decide_positions, no_trade_reason
from ktrdr_worker.models.inference import BundleModel
from ktrdr_worker.models.series import backtest_series, symbol_series

__all__ = [
    "ModelBacktestError",
    "ModelBacktestOutcome",
    "SymbolRun",
    "backtest_model",
    "simulate_symbol",
]

REPORT_NAME = "report.json"
SERIES_NAME = "series.json"


class ModelBacktestError(KtrdrError, ValueError):
    """A model backtest that cannot run on the data given; the message says what to change."""


@dataclass(frozen=True)
class ModelBacktestOutcome:
    """Plain values: ``report`` (JSON-ready dict, ``BacktestReport``), ``series`` (the page's
    ``ktrdr-backtest-series/1`` document), and ``paths`` (``report``, ``series`` → file) when
    written to a folder."""

    report: dict[str, Any]
    series: dict[str, Any]
    paths: dict[str, Path] | None = None


def utc_timestamp(value: str | datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    """``value`` as a UTC timestamp (naive times are UTC); None stays None."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def base_frame(data: pd.DataFrame | Mapping[str, pd.DataFrame], timeframe: str) -> pd.DataFrame:
    """The frame on ``timeframe`` of one symbol's data (a frame, or timeframe → frame)."""
    if isinstance(data, pd.DataFrame):
        return data
    for key, frame in data.items():
        if str(key) == timeframe:
            return frame
    raise ModelBacktestError(
        f"data: no frame for the model's base timeframe {timeframe} "
        f"(got {', '.join(map(str, data))})"
    )


def _cut(
    data: pd.DataFrame | Mapping[str, pd.DataFrame], end: pd.Timestamp
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        return data.loc[data.index <= end]
    return {key: frame.loc[frame.index <= end] for key, frame in data.items()}


def _pairs(series: pd.Series) -> list[tuple[str, float]]:
    return [
        (stamp.isoformat(), float(value))
        for stamp, value in zip(series.index, series.to_numpy(dtype=np.float64), strict=True)
    ]


def _json_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return None


def json_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int | None]:
    """Metrics as JSON numbers: NaN and infinities become None."""
    return {key: _json_number(value) for key, value in metrics.items()}


def _trades(trades: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for record in trades.to_dict(orient="records"):
        rows.append(
            {
                "entry_time": pd.Timestamp(record["entry_time"]).isoformat(),
                "exit_time": pd.Timestamp(record["exit_time"]).isoformat(),
                "side": record["side"],
                "units": float(record["units"]),
                "entry_price": float(record["entry_price"]),
                "exit_price": float(record["exit_price"]),
                "gross_pnl": float(record["gross_pnl"]),
                "commission": float(record["commission"]),
                "net_pnl": float(record["net_pnl"]),
                "return": float(record["return"]),
                "bars_held": int(record["bars_held"]),
                "exit_reason": str(record["exit_reason"]),
            }
        )
    return rows


@dataclass(frozen=True)
class SymbolRun:
    """One symbol's backtest: the report (JSON-ready dict), the bars of its period, and the
    equity and buy-and-hold equity at each bar's close."""

    report: dict[str, Any]
    ohlcv: pd.DataFrame
    equity: pd.Series
    held: pd.Series


def backtest_model(
    bundle: BundleSource,
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    symbol: str | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    decisions: Mapping[str, Any] | None = None,
    backtest: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    inference: str = "auto",
    exchange: str | None = None,
) -> ModelBacktestOutcome:
    """Backtest a model bundle on one symbol's bars.

    In: the bundle (path or bytes); ``data``: the symbol's canonical OHLCV frame on the model's
    base timeframe (or a mapping timeframe → frame), including warm-up bars before the start;
    ``symbol``: its name (default: the bundle's only symbol); ``start``/``end``: first and last
    bar of the period (UTC; default: the bundle's test period); ``decisions``/``backtest``:
    overrides of the strategy's sections; ``out_dir``: where to write ``report.json`` and
    ``series.json``; ``inference``: the forward pass (``auto``, ``numpy`` or
    ``torch``, see ``ktrdr_worker.models.inference.resolve_engine``), recorded in the report;
    ``exchange``: the exchange the data trades on (the dataset's), whose sessions annualise
    the metrics (None: the calendar is inferred from the bars).

    Out: :class:`ModelBacktestOutcome`. Raises :class:`ModelBacktestError` when the data does
    not cover the period with enough warm-up, and ``FeatureMismatchError`` when the features
    the strategy builds are not the ones the model was trained on.
    """
    run = simulate_symbol(
        bundle,
        data,
        symbol=symbol,
        start=start,
        end=end,
        decisions=decisions,
        backtest=backtest,
        inference=inference,
        exchange=exchange,
    )
    series = backtest_series(
        run.report,
        {run.report["symbol"]: symbol_series(run.report, run.ohlcv, run.equity, run.held)},
    )
    return finish_outcome(run.report, series, out_dir)


def simulate_symbol(
    bundle: BundleSource,
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    symbol: str | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    decisions: Mapping[str, Any] | None = None,
    backtest: Mapping[str, Any] | None = None,
    inference: str = "auto",
    exchange: str | None = None,
) -> SymbolRun:
    """:func:`backtest_model` without the series and files (same inputs, same report): what a
    portfolio's sleeve runs. Out: :class:`SymbolRun`."""
    model = BundleModel(bundle, inference)
    manifest = model.manifest
    bundle_sha = hashlib.sha256(
        bundle if isinstance(bundle, bytes) else Path(bundle).read_bytes()
    ).hexdigest()
    if symbol is None:
        if len(manifest.symbols) != 1:
            raise ModelBacktestError(
                f"the model was trained on {', '.join(manifest.symbols)}: name the symbol"
            )
        symbol = manifest.symbols[0]
    strategy = load_strategy(manifest.strategy.config)
    timeframe = manifest.timeframe
    base = base_frame(data, timeframe)
    if not isinstance(base.index, pd.DatetimeIndex) or len(base) < 2:
        raise ModelBacktestError("data: expected a canonical ohlcv frame with at least 2 bars")

    test = manifest.splits["test"]
    period = "test" if start is None and end is None else "custom"
    first = utc_timestamp(start) if start is not None else utc_timestamp(test.start)
    last = utc_timestamp(end) if end is not None else utc_timestamp(test.end)
    if first is None or last is None or first > last:
        raise ModelBacktestError(f"the period {first} … {last} is empty")
    in_period = (base.index >= first) & (base.index <= last)
    if not in_period.any():
        raise ModelBacktestError(
            f"data for {symbol} ({base.index[0]} … {base.index[-1]}) has no bar in the period "
            f"{first} … {last}"
        )
    start_pos = int(np.argmax(in_period))
    if start_pos < manifest.warmup_bars:
        raise ModelBacktestError(
            f"data for {symbol} has {start_pos} bars before {base.index[start_pos]}, but the "
            f"model's features need {manifest.warmup_bars} bars of warm-up: give data from "
            "earlier on"
        )

    # Features on everything up to the period's end: the same history the training saw.
    features = compute_features(strategy, _cut(data, last))
    probabilities = model.predict(features)
    window = probabilities.loc[(probabilities.index >= first) & (probabilities.index <= last)]
    ohlcv = base.loc[window.index]
    settings = DecisionSettings.from_dict({**manifest.decisions, **(decisions or {})})
    decided = decide_positions(window, settings)

    section = {**manifest.backtest, **(backtest or {})}
    config = BacktestConfig(
        capital=float(section["capital"]),
        commission=float(section["commission"]),
        slippage=float(section["slippage"]),
        position_size=float(section["position_size"]),
        fractional=bool(section["fractional"]),
        allow_short=settings.mode == "long_short",
        timeframe=timeframe,
        exchange=exchange,
    )
    result = run(ohlcv, decided.positions.astype(np.int64), config)
    # Buy-and-hold has one definition (see ktrdr_worker.backtest.metrics): the same bars,
    # close to close, no costs; its metrics come from the same code as the strategy's.
    close = ohlcv["close"].to_numpy(dtype=np.float64)
    held = pd.Series(buy_and_hold_equity(close, config.capital), index=ohlcv.index)
    held_metrics = compute_metrics(
        index=ohlcv.index,
        equity=held.to_numpy(),
        close=close,
        trades=result.trades.iloc[:0],
        calendar=result.calendar,
        capital=config.capital,
        risk_free_rate=config.risk_free_rate,
    )
    equity = result.equity
    peak = equity.cummax()
    drawdown = (1.0 - equity / peak).where(peak > 0, 0.0)

    n_trades = len(result.trades)
    report = BacktestReport.model_validate(
        {
            "created_at": datetime.now(UTC).isoformat(),
            "strategy_name": manifest.strategy.name,
            "strategy_hash": manifest.strategy.hash,
            "bundle_sha256": bundle_sha,
            "symbol": symbol,
            "timeframe": timeframe,
            "start": ohlcv.index[0].isoformat(),
            "end": ohlcv.index[-1].isoformat(),
            "bars": len(ohlcv),
            "warmup_bars": start_pos,
            "period": period,
            "in_sample": in_sample_parts(
                manifest.splits, ohlcv.index[0].to_pydatetime(), ohlcv.index[-1].to_pydatetime()
            ),
            "inference": model.engine,
            "decisions": settings.to_dict(),
            "config": config.to_dict(),
            "calendar": {k: v for k, v in asdict(result.calendar).items() if k != "inferred"},
            "metrics": json_metrics(result.metrics),
            "buy_and_hold": json_metrics(held_metrics),
            "signal_counts": decided.counts,
            "zero_trade_reason": no_trade_reason(decided, settings, n_trades, len(ohlcv)),
            "trades": _trades(result.trades),
            "equity": _pairs(equity),
            "drawdown": _pairs(drawdown),
            "charts": {"series": SERIES_NAME},
        }
    )
    return SymbolRun(
        report=report.model_dump(mode="json", by_alias=True), ohlcv=ohlcv, equity=equity, held=held
    )


def finish_outcome(
    document: dict[str, Any], series: dict[str, Any], out_dir: str | Path | None
) -> ModelBacktestOutcome:
    """The outcome of report ``document`` and its page's ``series``; with ``out_dir``, both
    written there as JSON."""
    paths = None
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"report": folder / REPORT_NAME, "series": folder / SERIES_NAME}
        paths["report"].write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        # Compact: the series is read by a page, not a person, and may hold many points.
        paths["series"].write_text(json.dumps(series, separators=(",", ":")), encoding="utf-8")
    return ModelBacktestOutcome(report=document, series=series, paths=paths)
