"""Parameter-search scaling and the study driver's own overhead.

Real processes (`ktrdr-api serve` on SQLite, `ktrdr-worker` with KTRDR_WORKER_THREADS=1 so
each worker computes on one core), the simulator's planted market (3,000 daily bars), a
16-trial random search over the RSI period and the learning rate, 2 folds per trial (two
hidden layers of 64, ``--epochs`` epochs, no early stopping), up to 4 trials at once.
"N workers" is N training and N backtest workers, plus one more backtest worker that holds
the study's driver (it holds that worker's slot for the whole study). The time runs from
POST /tunes to the study completing (its holdout runs included).

Targets: 2 workers ≤ 0.6 × the wall time of 1; the driver's overhead — from a trial ending
(its walk-forward's finish time) to the next trial being created, while the budget remains
— p50 ≤ 100 ms.

    .venv/bin/python bench/tune.py [--trials 16] [--epochs 100]
    .venv/bin/python bench/tune.py --trials 8 --epochs 5   # the driver's overhead, quickly

The driver waits for its trials on a long poll (``POST …/tunes/{op}/changes``) that the
commit of a trial's end wakes, so its overhead is the trial's creation, not a polling period.

Timings depend on what else runs on the machine: rerun before trusting a miss.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.6
LAG_TARGET_S = 0.100

# The test helpers (real API and worker processes, tests/support), shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ktrdr_core.protocol import OperationState, TuneRequest  # noqa: E402
from ktrdr_core.simulator import RSI_REVERSION, simulate_csv  # noqa: E402
from tests.e2e.test_tune import STRATEGY  # noqa: E402
from tests.support.stack import ApiServer, WorkerProcess, wait_for_state  # noqa: E402

# Each fold carries a few seconds of real training, as a research strategy's would (the e2e
# settings take milliseconds, which would time the orchestration alone).
WORKLOAD = {
    "training.early_stopping": None,
    "training.batch_size": 32,
    "model.hidden_layers": [64, 64],
}
SPACE = (
    "indicators.rsi_14.params.period: {int: [6, 30]}\n"
    "training.learning_rate: {float: [1.0e-3, 1.0e-2], log: true}\n"
)
DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}


def lags(trials) -> list[float]:
    """Seconds from the trial that ended last before each later trial was created to that
    creation (the first ``parallel`` trials were created at once and have none)."""
    ends = sorted(t.finished_at for t in trials if t.finished_at)
    out = []
    for trial in trials:
        before = [e for e in ends if e <= trial.started_at]
        if before:
            out.append((trial.started_at - before[-1]).total_seconds())
    return out


def run(workers: int, trials: int, epochs: int, work: Path) -> dict:
    api = ApiServer(work / "home", token="bench-secret", lease_seconds=30.0).start()
    kinds = [("training", n) for n in range(workers)] + [
        ("backtest", n) for n in range(workers + 1)
    ]
    procs = [
        WorkerProcess(
            kind,
            api,
            work / "workers",
            worker_id=f"bench-{kind}-{n}",
            torch_free=kind == "backtest",
        )
        for kind, n in kinds
    ]
    try:
        for proc in procs:
            proc.wait_registered()
        data = work / "SIM.csv"
        data.write_text(simulate_csv(3000, "1d", seed=7, planted=RSI_REVERSION))
        with api.client() as client:
            client.import_data("SIM", "1d", data)
            request = TuneRequest(
                strategy=STRATEGY,
                overrides=WORKLOAD | {"training.epochs": epochs},
                space=SPACE,
                trials=trials,
                folds=2,
                sampler="random",
                parallel=4,
                seed=3,
            )
            started = time.perf_counter()
            view = client.start_tune(request)
            done = wait_for_state(api, view.operation_id, DONE, "study", 3600,
                                  lambda: "\n".join(p.logs() for p in procs))  # fmt: skip
            wall = time.perf_counter() - started
            if done.state != OperationState.COMPLETED:
                raise SystemExit(f"study {done.state}: {done.error}")
            study = client.get_tune(view.operation_id)
        workers_used = {w for t in study.trials for w in t.workers}
        return {"wall": wall, "lags": lags(study.trials), "workers": len(workers_used)}
    finally:
        for proc in procs:
            proc.stop()
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-tune-") as tmp:
        for workers in (1, 2):
            results[workers] = run(workers, args.trials, args.epochs, Path(tmp) / f"w{workers}")
            print(f"  {workers} worker(s): {results[workers]['wall']:.1f} s", flush=True)
    print(
        f"\n{args.trials}-trial study, 2 folds a trial, {args.epochs} epochs, one thread a worker"
    )
    print(f"{'workers':>8} {'wall s':>8} {'lag p50 ms':>11} {'lag p90 ms':>11} {'used':>5}")
    for workers, r in results.items():
        p50 = statistics.median(r["lags"]) * 1000 if r["lags"] else float("nan")
        p90 = statistics.quantiles(r["lags"], n=10)[-1] * 1000 if len(r["lags"]) > 1 else p50
        print(f"{workers:>8} {r['wall']:>8.1f} {p50:>11.0f} {p90:>11.0f} {r['workers']:>5}")
    ratio = results[2]["wall"] / results[1]["wall"]
    lag = statistics.median(results[1]["lags"] + results[2]["lags"])
    ok_scale, ok_lag = ratio <= TARGET, lag <= LAG_TARGET_S
    verdict = {True: "PASS", False: "MISS"}
    print(f"\n2 workers / 1 worker: {ratio:.2f}× (target ≤ {TARGET}×) {verdict[ok_scale]}")
    print(
        f"driver overhead p50: {lag * 1000:.0f} ms "
        f"(target ≤ {LAG_TARGET_S * 1000:.0f} ms) {verdict[ok_lag]}"
    )
    return 0 if ok_scale and ok_lag else 1


if __name__ == "__main__":
    sys.exit(main())
