"""Backtesting: target positions in, trades, equity curve and metrics out.

    from ktrdr_worker.backtest import BacktestConfig, run

    result = run(ohlcv, positions, BacktestConfig(capital=10_000, commission=0.001))
    result.metrics["sharpe"], result.trades, result.equity
    result.write("reports/run-1")

See ``run`` for the execution rules and ``ktrdr_worker.backtest.metrics`` for the metrics.
"""

from ktrdr_worker.backtest.config import BacktestConfig
from ktrdr_worker.backtest.engine import run
from ktrdr_worker.backtest.metrics import compute_metrics
from ktrdr_worker.backtest.result import BacktestResult

__all__ = ["BacktestConfig", "BacktestResult", "compute_metrics", "run"]
