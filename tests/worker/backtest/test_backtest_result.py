"""A result written to a folder can be read back by anything that reads JSON and CSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ktrdr_worker.backtest import BacktestConfig, run
from tests.support.bars import random_walk
from tests.support.targets import random_targets


def test_write_produces_metrics_json_and_trade_and_equity_csv(tmp_path):
    bars = random_walk(300, seed=5)
    positions = pd.Series(random_targets(300, 5, changes=30), index=bars.index)
    result = run(bars, positions, BacktestConfig(commission=0.001, allow_short=True))
    paths = result.write(tmp_path / "report")

    document = json.loads(paths["metrics"].read_text())
    assert document["config"]["commission"] == 0.001
    assert document["calendar"]["calendar"] == "24/7"
    assert document["metrics"]["num_trades"] == len(result.trades)
    assert document["metrics"]["final_equity"] == result.metrics["final_equity"]

    trades = pd.read_csv(paths["trades"])
    assert len(trades) == len(result.trades)
    assert list(trades.columns)[:11] == [
        "entry_time",
        "exit_time",
        "side",
        "units",
        "entry_price",
        "exit_price",
        "gross_pnl",
        "commission",
        "net_pnl",
        "return",
        "bars_held",
    ]
    assert trades["entry_time"].iloc[0] == result.trades["entry_time"].iloc[0].strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    np.testing.assert_allclose(trades["net_pnl"], result.trades["net_pnl"], rtol=1e-12)

    equity = pd.read_csv(paths["equity"], index_col="time")
    assert len(equity) == len(bars)
    np.testing.assert_allclose(equity["equity"], result.equity, rtol=1e-12)
    assert set(equity["position"]) <= {-1, 0, 1}


def test_undefined_metrics_are_written_as_null(tmp_path):
    bars = random_walk(50, seed=1)
    result = run(bars, pd.Series(0, index=bars.index), BacktestConfig())
    document = json.loads(result.write(tmp_path)["metrics"].read_text())
    assert document["metrics"]["win_rate"] is None
    assert document["metrics"]["num_trades"] == 0
