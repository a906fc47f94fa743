"""What a backtest returns, and how it is written to disk."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ktrdr_worker.backtest.config import BacktestConfig
from ktrdr_worker.calendars import TradingCalendar

__all__ = ["BacktestResult"]


def _json_ready(value: Any) -> Any:
    # JSON has no NaN or infinity: write them as null (documented in write()).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


@dataclass(frozen=True)
class BacktestResult:
    """The outcome of ``ktrdr_worker.backtest.run``.

    Attributes:
        trades: one row per round trip, in order. Columns: ``entry_time``, ``exit_time`` (UTC
            open time of the fill bar; an ``end_of_data`` exit fills at that bar's close),
            ``side`` (``"long"``/``"short"``), ``units``, ``entry_price``, ``exit_price``
            (fill prices, slippage included), ``gross_pnl``, ``commission``, ``net_pnl``
            (quote currency), ``return`` (net_pnl / (units × entry_price)), ``bars_held``
            (bars held through their close), ``exit_reason`` (``"signal"`` or
            ``"end_of_data"``), ``entry_bar``, ``exit_bar`` (positions in the ohlcv index).
        equity: equity at every bar's close, marked to market (quote currency).
        positions: side held through each bar's close: -1, 0 or 1.
        metrics: see ``ktrdr_worker.backtest.metrics``.
        config: the settings used.
        calendar: the timeframe, calendar and bars per year used for annualising.
    """

    trades: pd.DataFrame
    equity: pd.Series
    positions: pd.Series
    metrics: dict[str, Any]
    config: BacktestConfig
    calendar: TradingCalendar

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write the result into ``folder`` (created if missing) and return the paths.

        Files: ``metrics.json`` (``{"config", "calendar", "metrics"}``; NaN and infinite
        values as null), ``trades.csv`` (the trades frame, ISO UTC times) and ``equity.csv``
        (``time, equity, position`` per bar).
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "metrics": out / "metrics.json",
            "trades": out / "trades.csv",
            "equity": out / "equity.csv",
        }
        document = {
            "config": self.config.to_dict(),
            "calendar": asdict(self.calendar),
            "metrics": self.metrics,
        }
        paths["metrics"].write_text(json.dumps(_json_ready(document), indent=2) + "\n")
        self.trades.to_csv(paths["trades"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        frame = pd.DataFrame({"equity": self.equity, "position": self.positions})
        frame.index.name = "time"
        frame.to_csv(paths["equity"], date_format="%Y-%m-%dT%H:%M:%SZ")
        return paths
