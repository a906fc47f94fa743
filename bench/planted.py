"""What the quickstart's planted effect costs and buys: the rsi_zones example trained and
backtested on the quickstart's synthetic market (4,000 daily bars, seed 7) without the effect
(the reference, measured in the same run), with it at half strength, and with it as the
quickstart plants it (``ktrdr_core.simulator.RSI_REVERSION``).

Columns: epochs run (early stopping decides), training seconds (one torch thread, so other
processes on the machine move it less), test balanced accuracy against the majority baseline,
the points between them, and the backtest's trades. The issue's target: ≥ 10 points and
trades with the effect, ≤ 3 points without it, within about the reference's time.

    python bench/planted.py [--seed 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
from dataclasses import replace

import pandas as pd
import yaml

from ktrdr_core.examples import read_example
from ktrdr_core.simulator import RSI_REVERSION, simulate_csv
from ktrdr_core.strategy.loading import load_strategy
from ktrdr_worker.models.backtest import backtest_model
from ktrdr_worker.models.pipeline import train_strategy


def market(seed: int, planted) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    text = simulate_csv(4000, "1d", seed=seed, planted=planted)
    frame = pd.read_csv(io.StringIO(text), index_col="timestamp")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True)).as_unit("us")
    return frame.astype("float64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = yaml.safe_load(read_example("rsi_zones"))
    config["data"].update(symbols=["SYNTH"], start=None, end=None)
    config["training"].update(device="cpu", seed=args.seed)
    strategy = load_strategy(config)
    rows = [
        ("no effect (reference)", None),
        ("RSI_REVERSION at half strength", replace(RSI_REVERSION, strength=0.5)),
        ("RSI_REVERSION (quickstart)", RSI_REVERSION),
    ]
    header = (
        f"{'market':32} {'epochs':>6} {'train s':>8} {'bal.acc':>8} {'baseline':>8} "
        f"{'points':>7} {'trades':>6} {'time/ref':>8}"
    )
    print(header)
    print("-" * len(header))
    reference = None
    for name, planted in rows:
        bars = market(args.seed, planted)
        result = train_strategy(strategy, {"SYNTH": bars}, threads=args.threads)
        summary = result.result
        seconds = summary["timings"]["training_s"]
        reference = reference or seconds
        test = summary["test_metrics"]
        accuracy, baseline = test["balanced_accuracy"], test["baseline"]["balanced_accuracy"]
        trades = len(backtest_model(result.bundle, bars).report["trades"])
        print(
            f"{name:32} {summary['epochs_run']:>6} {seconds:>8.1f} {accuracy:>8.3f} "
            f"{baseline:>8.3f} {100 * (accuracy - baseline):>+7.1f} {trades:>6} "
            f"{seconds / reference:>7.1f}x"
        )


if __name__ == "__main__":
    main()
