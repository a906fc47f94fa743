"""Scheduling overhead under load: the load drill's scenario (tests/e2e/test_drills_load.py),
timed.

Real processes (`ktrdr-api serve` on SQLite, 2 backtest workers and 1 training worker), real
EURUSD hourly bars: ``--backtests`` backtests of one model and ``--trainings`` trainings
submitted at once. Prints the drill's table (wall time, queue waits, overhead per kind) and
the scheduler's own figure: for each worker, the gaps between completing one operation and
holding the next, over the time the workers spent working plus those gaps (the computation is
tests/support/load.py's, shared with the drill). Target: < 10 %.

    .venv/bin/python bench/scheduling.py [--backtests 50] [--trainings 5]

Timings depend on what else runs on the machine: rerun before trusting a miss.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

TARGET = 0.10

# The test helpers (real API and worker processes, tests/support), shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.load import run_load, start_stack, timing_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backtests", type=int, default=50)
    parser.add_argument("--trainings", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-sched-") as tmp:
        folder = Path(tmp)
        api, workers = start_stack(folder, "bench-secret")
        try:
            run = run_load(api, workers, folder, backtests=args.backtests,
                           trainings=args.trainings,
                           logs=lambda: "\n".join(w.logs() for w in workers))  # fmt: skip
        finally:
            for worker in workers:
                worker.stop()
            api.stop()
    failed = [(v.operation_id, v.state, v.error) for v in run.views if v.state != "completed"]
    lines, scheduling = timing_table(run)
    print("\n".join(lines))
    ok = scheduling < TARGET and not failed
    print(f"\nscheduling overhead {scheduling:.1%} (target < {TARGET:.0%}) "
          f"{'PASS' if ok else 'MISS'}")  # fmt: skip
    if failed:
        print(f"operations that did not complete: {failed}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
