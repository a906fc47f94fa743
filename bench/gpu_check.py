"""The GPU check of issue 18, for a machine with a CUDA device: one short prepared run.

1. ``triton`` is made unimportable before torch loads (the ktrdr-worker-gpu image leaves it
   out; only ``torch.compile`` uses it), and a training worker's check with
   ``require_gpu`` must pass;
2. the three examples are trained briefly on CUDA on real data (GOOG daily, EURUSD hourly and
   4-hourly), as a training worker would;
3. each bundle's probabilities on every bar are computed by the numpy forward pass (CPU,
   float32) and by torch on CUDA; they must agree within 1e-5, and every decision must be the
   same.

Prints a table, writes the figures as JSON (``--out``), exits 1 when a check fails and 2 when
there is no CUDA device. The data folder holds GOOG_1d.csv and EURUSD_1h.csv (canonical
columns timestamp, open, high, low, close, volume), e.g. exported from backtesting.test.

    python bench/gpu_check.py --data DIR [--out gpu_check.json] [--epochs 2]
"""

from __future__ import annotations

import sys

sys.modules["triton"] = None  # type: ignore[assignment]  # import triton now raises ImportError

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the examples' settings live with the tests: tests/support

TOLERANCE = 1e-5


def load_bars(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col="timestamp")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True)).as_unit("us")
    return frame[["open", "high", "low", "close", "volume"]].astype("float64")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--device", default="cuda", help="cuda (the check); cpu only to try the script anywhere"
    )
    args = parser.parse_args()

    import torch

    from ktrdr_worker.features import compute_features
    from ktrdr_worker.models.decisions import DecisionSettings, decide_positions
    from ktrdr_worker.models.dependencies import validate_ml_dependencies
    from ktrdr_worker.models.inference import BundleModel
    from ktrdr_worker.models.pipeline import train_strategy
    from tests.support.training_data import INFERENCE_EXAMPLES, inference_example

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; nothing to check here", file=sys.stderr)
        return 2
    runtime = validate_ml_dependencies("training", require_gpu=args.device == "cuda")
    goog, eurusd = load_bars(args.data / "GOOG_1d.csv"), load_bars(args.data / "EURUSD_1h.csv")
    rows, failures = [], []
    for name in INFERENCE_EXAMPLES:
        strategy, symbol, bars = inference_example(
            name, goog, eurusd, epochs=args.epochs, device=args.device
        )
        started = time.perf_counter()
        outcome = train_strategy(strategy, {symbol: bars}, explain_repeats=1)
        trained_s = time.perf_counter() - started
        features = compute_features(strategy, bars)
        numpy_model = BundleModel(outcome.bundle, "numpy")
        torch_model = BundleModel(outcome.bundle, "torch", device=args.device)
        started = time.perf_counter()
        by_numpy = numpy_model.predict(features)
        numpy_s = time.perf_counter() - started
        started = time.perf_counter()
        by_torch = torch_model.predict(features)
        torch_s = time.perf_counter() - started
        same_rows = bool((by_numpy.isna() == by_torch.isna()).all().all())
        worst = float(np.nanmax(np.abs(by_numpy.to_numpy() - by_torch.to_numpy())))
        settings = DecisionSettings.from_dict(
            {**numpy_model.manifest.decisions, "confidence_threshold": 0.0}
        )
        same_decisions = bool(
            decide_positions(by_numpy, settings)
            .positions.eq(decide_positions(by_torch, settings).positions)
            .all()
        )
        row = {
            "example": name,
            "model": numpy_model.manifest.model["type"],
            "trained_on": numpy_model.manifest.device,
            "train_s": round(trained_s, 2),
            "bars": int(by_torch.notna().all(axis=1).sum()),
            "max_abs_diff": worst,
            "same_decisions": same_decisions,
            "numpy_ms": round(numpy_s * 1000, 1),
            "torch_ms": round(torch_s * 1000, 1),
        }
        rows.append(row)
        if not (same_rows and worst <= TOLERANCE and same_decisions):
            failures.append(name)
        if row["trained_on"] != args.device:
            failures.append(f"{name}: trained on {row['trained_on']}")
    triton_loaded = sys.modules.get("triton") is not None
    if triton_loaded:
        failures.append("triton was imported")
    header = f"{'example':<27} {'model':<5} {'on':<5} {'train s':>8} {'bars':>6} "
    header += f"{'max |diff|':>11} {'decisions':>9} {'numpy ms':>9} {'torch ms':>8}"
    print(f"torch {torch.__version__} on {runtime.device_name}; triton blocked, loaded: "
          f"{triton_loaded}")  # fmt: skip
    print(header)
    for r in rows:
        print(
            f"{r['example']:<27} {r['model']:<5} {r['trained_on']:<5} {r['train_s']:>8.2f} "
            f"{r['bars']:>6} {r['max_abs_diff']:>11.2e} "
            f"{'same' if r['same_decisions'] else 'DIFFER':>9} {r['numpy_ms']:>9.1f} "
            f"{r['torch_ms']:>8.1f}"
        )
    summary = {
        "torch": torch.__version__,
        "device": runtime.device_name,
        "gpu_memory_mb": runtime.gpu_memory_mb,
        "triton_blocked": True,
        "triton_loaded": triton_loaded,
        "tolerance": TOLERANCE,
        "examples": rows,
        "failures": failures,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print("gpu_check:", "FAILED " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
