"""The load scenario the load drill asserts on and bench/scheduling.py times: many backtests and
a few trainings submitted at once to real workers, and the timing table of how they ran.

Scheduling overhead, per worker kind (the two kinds run side by side, so one figure for both
would count the backtest workers as idle while the trainer finishes): with ``n`` workers of
the kind, ``wall`` from the kind's first submission to its last completion and ``work`` the sum
of its attempts' claim-to-completion times (on the backend's clock),
``overhead = (wall - work / n) / wall``: the share of the workers' time spent neither holding
an operation — claiming, waiting for the next claim, or idle at the end while the other worker
of the kind finishes its last operation.

That figure mixes the scheduler's cost with the end-of-run imbalance of whole jobs (with 25
jobs each, one worker finishes up to a job earlier), which no scheduler removes. The
scheduler's own figure (``scheduling``): for each worker, the gaps between completing one
operation and holding the next (``claimed_at`` of the next minus ``ended_at`` of the
previous), over the time the workers spent working plus those gaps. A timing: printed by the
drill, held to a target only by the bench.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ktrdr_core.protocol import OperationKind, OperationView, WorkerStatus
from tests.support.market_data import eurusd_csv
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess
from tests.support.waiting import wait_until

WORKERS = {OperationKind.BACKTEST: 2, OperationKind.TRAINING: 1}
SMALL_TRAINING = {"training.epochs": 2}
LOAD_TRAINING = {"training.epochs": 15}  # a few seconds each: about the backtests' total
# Long: a heartbeat starved while the machine is saturated must not requeue an operation (the
# drill asserts one attempt each); nothing here waits for a lease to run out.
LEASE_S = 60.0


@dataclass
class LoadRun:
    setup: str  # the training that made the backtests' model
    submitted: list[str]  # the backtests, then the trainings
    views: list[OperationView]  # of ``submitted``, once all ended
    wall_s: float  # from the first submission to the last end, on the test's clock
    listed: list[OperationView] = field(default_factory=list)  # every operation, after


def start_stack(folder: Path, token: str) -> tuple[ApiServer, list[WorkerProcess]]:
    """The backend and the workers of ``WORKERS``, started (not yet waited for)."""
    api = ApiServer(folder / "home", lease_seconds=LEASE_S, token=token).start()
    workers = [
        WorkerProcess(kind.value, api, folder / "workers", worker_id=f"load-{kind.value}-{i}")
        for kind, count in WORKERS.items()
        for i in range(count)
    ]
    return api, workers


def run_load(api: ApiServer, workers: list[WorkerProcess], folder: Path, *, backtests: int,
             trainings: int, logs: Callable[[], str]) -> LoadRun:  # fmt: skip
    """Import the data, wait for the workers, train the model, then submit ``backtests``
    backtests and ``trainings`` trainings at once and wait until every one has ended."""
    with api.client() as client:
        client.import_data("EURUSD", "1h", eurusd_csv(folder / "eurusd.csv"))

        def all_idle() -> bool:
            status = {w.worker_id: w.status for w in client.list_workers()}
            return all(status.get(w.worker_id) == WorkerStatus.IDLE for w in workers)

        wait_until(all_idle, "every worker idle", 120, logs)
        # The model the backtests test (set-up, not part of the load).
        setup = client.start_training(TINY_STRATEGY, SMALL_TRAINING).operation_id
        wait_until(lambda: client.get_operation(setup).state.is_terminal, "the model", 120, logs)
        [model] = client.list_models()

        started = time.monotonic()
        submitted = [client.start_backtest(model.model_id).operation_id for _ in range(backtests)]
        submitted += [
            client.start_training(
                TINY_STRATEGY, LOAD_TRAINING | {"training.seed": seed}
            ).operation_id
            for seed in range(trainings)
        ]

        def all_ended():
            views = [client.get_operation(op) for op in submitted]
            return views if all(v.state.is_terminal for v in views) else None

        views = wait_until(all_ended, "every operation to end", 900, logs)
        wall_s = time.monotonic() - started
        listed = client.list_operations(limit=1000)
    return LoadRun(setup, submitted, views, wall_s, listed)


def _seconds(later, earlier) -> float:
    return (later - earlier).total_seconds()


def timing_table(run: LoadRun) -> tuple[list[str], float]:
    """The lines of the timing table, and the scheduling overhead (0..1) of the run."""
    views = run.views
    by_worker = Counter(v.reproducibility.attempts[0].worker_id for v in views)
    kinds = Counter(v.kind for v in views)
    lines = [
        f"{kinds[OperationKind.BACKTEST]} backtests + {kinds[OperationKind.TRAINING]} trainings "
        f"on {sum(WORKERS.values())} workers: wall {run.wall_s:.1f} s; "
        f"per worker {dict(by_worker)}",
        f"{'kind':<10}{'ops':>5}{'wall s':>9}{'work s':>9}{'wait p50':>10}{'wait max':>10}"
        f"{'overhead':>10}",
    ]
    for kind, count in WORKERS.items():
        ops = [v for v in views if v.kind == kind]
        if not ops:
            continue
        attempts = [v.reproducibility.attempts[0] for v in ops]
        waits = [_seconds(a.claimed_at, v.created_at) for v, a in zip(ops, attempts, strict=True)]
        work = sum(_seconds(a.ended_at, a.claimed_at) for a in attempts)
        # From the kind's own first submission: the backtest requests go first.
        wall = _seconds(max(a.ended_at for a in attempts), min(v.created_at for v in ops))
        overhead = (wall - work / count) / wall
        lines.append(
            f"{kind.value:<10}{len(ops):>5}{wall:>9.1f}{work:>9.1f}"
            f"{statistics.median(waits):>10.2f}{max(waits):>10.2f}{overhead:>10.1%}"
        )
    all_work = sum(
        _seconds(v.reproducibility.attempts[0].ended_at, v.reproducibility.attempts[0].claimed_at)
        for v in views
    )
    workers = sum(WORKERS.values())
    lines.append(
        f"all kinds as one pool: (wall - work / {workers}) / wall = "
        f"{(run.wall_s - all_work / workers) / run.wall_s:.1%} (kinds run side by side: see above)"
    )
    attempts_by_worker: dict[str, list] = {}
    for view in views:
        attempt = view.reproducibility.attempts[0]
        attempts_by_worker.setdefault(attempt.worker_id, []).append(attempt)
    gaps = busy = 0.0
    for attempts in attempts_by_worker.values():
        attempts.sort(key=lambda a: a.claimed_at)
        busy += sum(_seconds(a.ended_at, a.claimed_at) for a in attempts)
        gaps += sum(
            max(0.0, _seconds(after.claimed_at, before.ended_at))
            for before, after in itertools.pairwise(attempts)
        )
    scheduling = gaps / (busy + gaps)
    lines.append(
        f"scheduling overhead (gaps between one operation and the next, over busy time): "
        f"{gaps:.2f} s of {busy + gaps:.1f} s = {scheduling:.1%}"
    )
    return lines, scheduling
