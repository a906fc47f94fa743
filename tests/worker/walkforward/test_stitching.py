"""Stitching fold backtests into one out-of-sample record."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.protocol import FoldOutcome
from ktrdr_worker.walkforward import stitch_walkforward


def _fold(index: int, start: str, end: str) -> FoldOutcome:
    return FoldOutcome(
        index=index,
        test_start=date.fromisoformat(start),
        test_end=date.fromisoformat(end),
        training_operation_id=f"op_train{index:07d}",
        backtest_operation_id=f"op_test0{index:07d}",
        model_id=f"mdl_{index:012d}",
        report_sha256=str(index) * 64,
        importance={"a": 1.0 + index, "b": 0.5, "c": 0.1 * index},
    )


def _report(start: str, days: int, growth: float, capital: float, pnl: float) -> dict:
    index = pd.date_range(start, periods=days, freq="D", tz="UTC")
    equity = capital * np.linspace(1.0, growth, days)
    return {
        "symbol": "GOOG",
        "timeframe": "1d",
        "bars": days,
        "config": {"capital": capital},
        "calendar": {
            "timeframe_seconds": 86400,
            "timeframe": "1d",
            "calendar": "24/7",
            "bars_per_year": 365.0,
            "bars_per_session": None,
        },
        "metrics": {"total_return": growth - 1, "sharpe": 1.0, "num_trades": 1},
        "buy_and_hold": {"total_return": 0.01},
        "trades": [
            {
                "entry_time": index[1].isoformat(),
                "exit_time": index[-2].isoformat(),
                "net_pnl": pnl,
                "commission": 1.0,
                "return": pnl / capital,
                "bars_held": days - 3,
            }
        ],
        "equity": [(t.isoformat(), float(v)) for t, v in zip(index, equity, strict=True)],
    }


def test_folds_compound_into_one_account_and_metrics_come_from_the_stitched_curve():
    folds = [_fold(0, "2021-01-01", "2021-01-10"), _fold(1, "2021-01-11", "2021-01-20")]
    reports = {
        0: _report("2021-01-01", 10, 1.10, 10_000.0, 900.0),
        1: _report("2021-01-11", 10, 0.95, 50_000.0, -2_000.0),  # another capital: scaled
    }
    close = pd.Series(
        np.linspace(100, 120, 30), index=pd.date_range("2020-12-25", periods=30, tz="UTC")
    )
    report, series = stitch_walkforward(
        folds, reports, close, walkforward_id="op_wf", strategy_name="s", window="rolling"
    )
    assert report["metrics"]["total_return"] == pytest.approx(1.10 * 0.95 - 1)
    assert report["metrics"]["final_equity"] == pytest.approx(10_000 * 1.10 * 0.95)
    equity = report["equity"]
    assert len(equity) == 20 and equity[0][1] == pytest.approx(10_000.0)
    assert equity[10][1] == pytest.approx(11_000.0)  # fold 1 starts where fold 0 ended
    assert report["metrics"]["num_trades"] == 2
    # fold 1's loss is scaled from its 50k account to the 11k the stitched one held
    assert report["metrics"]["largest_loss"] == pytest.approx(-2_000.0 * 11_000 / 50_000)
    assert report["summary"]["profitable_folds"] == 1
    assert [row["fold"] for row in report["folds"]] == [0, 1]
    assert report["stability"]["features"][0]["feature"] == "a"
    assert [v for _, v in series["equity"]] == [v for _, v in equity]
    assert len(series["fold_starts"]) == 2 and series["fold_starts"][1] == series["equity"][10][0]


def test_overlapping_folds_are_refused():
    folds = [_fold(0, "2021-01-01", "2021-01-10"), _fold(1, "2021-01-05", "2021-01-14")]
    reports = {
        0: _report("2021-01-01", 10, 1.1, 10_000.0, 1.0),
        1: _report("2021-01-05", 10, 1.1, 10_000.0, 1.0),
    }
    close = pd.Series(1.0, index=pd.date_range("2021-01-01", periods=20, tz="UTC"))
    with pytest.raises(ValueError, match="the folds overlap"):
        stitch_walkforward(
            folds, reports, close, walkforward_id="op_wf", strategy_name="s", window="rolling"
        )
