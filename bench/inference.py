"""Inference speed: the numpy forward pass (the torch-free backtest worker) against torch's.

The three examples, as written (MLP [32, 16]; GRU [64, 32] over 24 bars; LSTM [48] over 30
bars), each trained for one epoch on real data (backtesting.test's GOOG daily and EURUSD
hourly bars, 4h resampled), then asked for the probabilities of every bar by both engines
on the CPU, best of ``--repeat`` runs each. Both engines' probabilities are checked to agree
within 1e-5 first, so the table compares equal work.

Prints bars per second and the ratio; exits 1 when a target is missed: the numpy engine
predicts at least 10,000 bars/s on every example (a decade of hourly bars, ~62,000, in ~6 s;
measured 20,000 to 3,900,000 on this 2-core machine) and takes at most 4 × torch's time (the
reference, measured in the same run with the same thread count: 0.8× to 2.7× here).

    .venv/bin/python bench/inference.py [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test helpers: tests/support

TARGET_BARS_PER_S = 10_000
MAX_SLOWER_THAN_TORCH = 4.0


def best_time(predict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        predict()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    import torch
    from backtesting.test import EURUSD, GOOG

    from ktrdr_worker.features import compute_features
    from ktrdr_worker.frames import resample_ohlcv
    from ktrdr_worker.models.inference import BundleModel
    from ktrdr_worker.models.pipeline import train_strategy
    from tests.support.training_data import INFERENCE_EXAMPLES, canonical, example_for

    torch.set_num_threads(args.threads)
    goog, eurusd = canonical(GOOG), canonical(EURUSD)
    bars = {
        "1d": goog,
        "1h": eurusd,
        "4h": resample_ohlcv(eurusd, "1h", "4h", drop_incomplete=True),
    }
    rows, failures = [], []
    for name, (symbol, timeframe, _) in INFERENCE_EXAMPLES.items():
        # The network as the example writes it (the tests shrink it; the bench does not).
        strategy = example_for(name, symbol, training={"epochs": 1, "device": "cpu"})
        data = bars[timeframe]
        outcome = train_strategy(strategy, {symbol: data}, threads=args.threads, explain_repeats=1)
        features = compute_features(strategy, data)
        engines = {engine: BundleModel(outcome.bundle, engine) for engine in ("numpy", "torch")}
        by = {engine: model.predict(features) for engine, model in engines.items()}
        worst = float(np.nanmax(np.abs(by["numpy"].to_numpy() - by["torch"].to_numpy())))
        if not worst <= 1e-5:
            failures.append(f"{name}: the engines differ by {worst:.2e}")
        seconds = {
            engine: best_time(lambda m=model, f=features: m.predict(f), args.repeat)
            for engine, model in engines.items()
        }
        n = len(features)
        rate = {engine: n / s for engine, s in seconds.items()}
        ratio = seconds["numpy"] / seconds["torch"]
        spec = engines["numpy"].manifest.model
        rows.append((name, spec, n, rate["numpy"], rate["torch"], ratio))
        if rate["numpy"] < TARGET_BARS_PER_S:
            failures.append(f"{name}: numpy {rate['numpy']:,.0f} bars/s < {TARGET_BARS_PER_S:,}")
        if ratio > MAX_SLOWER_THAN_TORCH:
            failures.append(f"{name}: numpy takes {ratio:.1f} × torch's time")

    print(f"torch {torch.__version__}, {args.threads} thread(s); best of {args.repeat} runs\n")
    print(f"| {'example':<26} | {'network':<22} | {'bars':>6} | {'numpy bars/s':>12} | "
          f"{'torch bars/s':>12} | {'numpy/torch time':>16} |")  # fmt: skip
    print(f"|{'-' * 28}|{'-' * 24}|{'-' * 8}|{'-' * 14}|{'-' * 14}|{'-' * 18}|")
    for name, spec, n, numpy_rate, torch_rate, ratio in rows:
        network = f"{spec['type']} {spec['hidden_layers']} w{spec['window']}"
        print(f"| {name:<26} | {network:<22} | {n:>6} | {numpy_rate:>12,.0f} | "
              f"{torch_rate:>12,.0f} | {ratio:>15.2f}× |")  # fmt: skip
    print(f"\ntargets: numpy >= {TARGET_BARS_PER_S:,} bars/s, <= {MAX_SLOWER_THAN_TORCH}× torch")
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
