"""Walk-forward scaling: the wall time of one 8-fold walk-forward with 1 and with 2 workers.

Real processes (`ktrdr-api serve` on SQLite, `ktrdr-worker` with KTRDR_WORKER_THREADS=1 so
each worker computes on one core), real EURUSD hourly bars (5,000), the small e2e strategy
trained for ``--epochs`` epochs per fold
with no early stopping and a wider network (two hidden layers of 64), so that each fold
carries a few seconds of real training, as a research strategy's would, rather than the
milliseconds the tiny e2e settings take. "N workers" is N training and N backtest workers,
started and registered before the clock starts; the time runs from POST /walkforwards to the
walk-forward completing (every fold trained and backtested, the report stitched). Both runs
happen in this process, one after the other, on fresh backends with the same seed.

Target: 2 workers ≤ 0.6 × the time of 1. Also shown: the summed run time of the child
operations (the work) and work / wall (how many workers were busy on average).

    .venv/bin/python bench/walkforward.py [--folds 8] [--epochs 30]

Timings depend on what else runs on the machine: rerun before trusting a miss.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.6


# The test helpers (real API and worker processes, tests/support), shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ktrdr_core.protocol import OperationState  # noqa: E402
from tests.support.market_data import eurusd_csv  # noqa: E402
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state  # noqa: E402

WORKLOAD = {
    "training.early_stopping": None,
    "training.batch_size": 32,
    "model.hidden_layers": [64, 64],
}
DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}


def run(workers: int, folds: int, epochs: int, work: Path) -> dict[str, float]:
    """One walk-forward on a fresh backend with ``workers`` of each kind."""
    api = ApiServer(work / "home", token="bench-secret").start()
    procs = [
        WorkerProcess(kind, api, work / "workers", worker_id=f"bench-{kind}-{n}")
        for kind in ("training", "backtest")
        for n in range(workers)
    ]
    try:
        for proc in procs:
            proc.wait_registered()
        with api.client() as client:
            client.import_data("EURUSD", "1h", eurusd_csv(work / "EURUSD_1h.csv"))
            started = time.perf_counter()
            view = client.start_walkforward(
                TINY_STRATEGY,
                WORKLOAD | {"training.epochs": epochs},
                folds=folds,
                train_blocks=2,
            )
            done = wait_for_state(
                api,
                view.operation_id,
                DONE,
                "walk-forward",
                1800,
                lambda: "\n".join(p.logs() for p in procs),
            )
            wall = time.perf_counter() - started
            if done.state != OperationState.COMPLETED:
                raise SystemExit(f"walk-forward {done.state}: {done.error}")
            children = client.get_walkforward(view.operation_id).children
            busy = sum(
                (c.finished_at - c.started_at).total_seconds()
                for c in children
                if c.started_at and c.finished_at
            )
            trainers = {c.reproducibility.worker_id for c in children if c.kind == "training"}
            return_ = done.result["summary"]["metrics"]["total_return"]
        return {"wall": wall, "work": busy, "trainers": len(trainers), "return": return_}
    finally:
        for proc in procs:
            proc.stop()
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-wf-") as tmp:
        for workers in (1, 2):
            results[workers] = run(workers, args.folds, args.epochs, Path(tmp) / f"w{workers}")
            print(f"  {workers} worker(s): {results[workers]['wall']:.1f} s", flush=True)
    one, two = results[1], results[2]
    ratio = two["wall"] / one["wall"]
    ok = ratio <= TARGET
    same = one["return"] == two["return"]
    print(
        f"\n{args.folds}-fold walk-forward, EURUSD 1h, {args.epochs} epochs per fold, "
        "one thread per worker"
    )
    print(f"{'workers':>8} {'wall s':>8} {'work s':>8} {'work/wall':>10} {'trainers':>9}")
    for workers, r in results.items():
        print(
            f"{workers:>8} {r['wall']:>8.1f} {r['work']:>8.1f} "
            f"{r['work'] / r['wall']:>10.2f} {r['trainers']:>9}"
        )
    print(f"\n2 workers / 1 worker: {ratio:.2f}× (target ≤ {TARGET}×) {'PASS' if ok else 'MISS'}")
    print(
        f"out-of-sample return {one['return']:+.4%} with 1 worker, {two['return']:+.4%} with 2: "
        + ("identical" if same else "DIFFERENT")
    )
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
