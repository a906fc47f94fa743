"""The walk-forward fault of issue 16, as a user met it, on real processes: `ktrdr-api serve`,
one training worker that holds at an epoch boundary while a hold file exists, and one
backtest worker.

The transcript: `ktrdr walkforward` on EURUSD 1h, then `ktrdr data delete EURUSD 1h --force`
while it trained. Its fold trained, then it froze at "0/3 folds trained"; a second
walk-forward on other data froze too; `ktrdr ops cancel` left it "running (cancel
requested)"; an API restart changed nothing; the traceback (MissingData) showed only at
shutdown. Here the broken walk-forward fails with the reason after its one pass, a second
one completes, a cancel ends the one it is given, and a restart leaves every state as it was.
The same for a fold's model deleted before the pass that backtests it (a retry that reuses
the fold's training).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from ktrdr_core.protocol import OperationState, OperationView
from tests.support.market_data import eurusd_csv
from tests.support.processes import BIN, process_env
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two worker processes that import torch

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
SHORT = {"training.epochs": 2}
ON_GBPUSD = SHORT | {"data.symbols": ["GBPUSD"]}
# The orchestrator's periodic sweep is 2 s and a pass also runs on every child's end; a
# broken walk-forward must end on that pass, long before a worker's next operation would.
ONE_SWEEP_S = 15


@pytest.fixture
def stack(tmp_path):
    hold = tmp_path / "hold"
    api = ApiServer(tmp_path / "home", token="wf-fault").start()
    trainer = WorkerProcess(
        "training", api, tmp_path / "workers", worker_id="wf-trainer",
        env={"KTRDR_WORKER_HOLD_FILE": str(hold)},
    )  # fmt: skip
    tester = WorkerProcess("backtest", api, tmp_path / "workers", worker_id="wf-tester")
    for worker in (trainer, tester):
        worker.wait_registered()
    bars = eurusd_csv(tmp_path / "EURUSD_1h.csv")
    with api.client() as client:
        client.import_data("EURUSD", "1h", bars)
        client.import_data("GBPUSD", "1h", bars)  # the other data the second run uses
    yield api, (trainer, tester), hold
    for worker in (trainer, tester):
        worker.stop()
    api.stop()


def _ktrdr(api: ApiServer, *args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ktrdr"), "--url", api.url, "--token", api.token, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=process_env({"COLUMNS": "200"}),
    )


def _children(api: ApiServer, operation_id: str) -> dict[str, OperationView]:
    with api.client() as client:
        return {c.role: c for c in client.get_walkforward(operation_id).children}


def _held_training(api: ApiServer, operation_id: str, logs) -> OperationView:
    """Until one of the walk-forward's fold trainings is held at an epoch boundary (lease
    kept, checkpoint taken); that training."""

    def held() -> OperationView | None:
        for role, child in _children(api, operation_id).items():
            if role.startswith("train:"):
                assert not child.state.is_terminal, child.error
                if child.progress.message.startswith("held"):
                    return child
        return None

    return wait_until(held, "a fold's training held", 180, logs)


def _all_children_end(api: ApiServer, operation_id: str, logs) -> None:
    def ended() -> bool:
        return all(c.state in DONE for c in _children(api, operation_id).values())

    wait_until(ended, f"every child of {operation_id} ended", 60, logs)


def test_deleting_the_data_mid_walkforward_fails_that_one_and_no_other(stack, tmp_path):
    api, workers, hold = stack

    def logs() -> str:
        return "\n".join(w.logs() for w in workers)

    with api.client() as client:
        hold.touch()
        broken = client.start_walkforward(TINY_STRATEGY, SHORT, folds=3, train_blocks=2)
        broken_id = broken.operation_id
        held = _held_training(api, broken_id, logs)
        deleted = _ktrdr(api, "data", "delete", "EURUSD", "1h", "--force", cwd=tmp_path)
        assert deleted.returncode == 0, deleted.stderr
        hold.unlink()

        # Fold 0's training still completes; the pass that follows cannot backtest it.
        ended = wait_for_state(api, broken_id, DONE, "the broken walk-forward", 180, logs)
        trained = client.get_operation(held.operation_id)
        assert trained.state == OperationState.COMPLETED, trained.error
        assert ended.state == OperationState.FAILED
        assert "no data for EURUSD 1h" in ended.error
        assert f"ktrdr ops retry {broken_id}" in ended.error
        # Its other folds were cancelled; one a worker already runs ends at its next heartbeat.
        _all_children_end(api, broken_id, logs)
        # Logged at once with its id, not at shutdown.
        assert f"walk-forward {broken_id} cannot go on: no data for EURUSD 1h" in (
            api.log.read_text(encoding="utf-8", errors="replace")
        )
        # A cancel on it now answers that it ended, instead of "cancel requested" for ever.
        cancelled = _ktrdr(api, "ops", "cancel", broken_id, cwd=tmp_path)
        assert client.get_operation(broken_id).state == OperationState.FAILED, cancelled.stdout

        # A second walk-forward, on other data, trains, backtests and stitches every fold.
        healthy = client.start_walkforward(TINY_STRATEGY, ON_GBPUSD, folds=2, train_blocks=2)
        done = wait_for_state(api, healthy.operation_id, DONE, "the second one", 600, logs)
        assert done.state == OperationState.COMPLETED, done.error
        assert done.progress.message.startswith("2/2 folds trained, 2/2 backtested")

        # Cancel works on a walk-forward whose next pass would fail: its data goes too while
        # a fold is held, and `ktrdr ops cancel` ends it (never "running (cancel requested)").
        hold.touch()
        third = client.start_walkforward(TINY_STRATEGY, ON_GBPUSD, folds=2, train_blocks=2)
        _held_training(api, third.operation_id, logs)
        assert (
            _ktrdr(api, "data", "delete", "GBPUSD", "1h", "--force", cwd=tmp_path).returncode == 0
        )
        asked = _ktrdr(api, "ops", "cancel", third.operation_id, cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        stopped = wait_for_state(api, third.operation_id, DONE, "cancelled", 60, logs)
        hold.unlink()
        assert stopped.state == OperationState.CANCELLED, stopped.error
        _all_children_end(api, third.operation_id, logs)

        before = {
            op_id: client.get_operation(op_id)
            for op_id in (broken_id, healthy.operation_id, third.operation_id)
        }

    # A restart on the same home: its passes find nothing to change.
    api.stop()
    api.start()
    time.sleep(3 * 2.0)  # a few periodic sweeps (2 s each) of the restarted backend
    with api.client() as client:
        for op_id, was in before.items():
            now = client.get_operation(op_id)
            assert (now.state, now.error, now.result) == (was.state, was.error, was.result)


def test_a_fold_model_deleted_before_its_backtest_fails_the_walkforward_with_the_reason(
    stack, tmp_path
):
    api, workers, hold = stack

    def logs() -> str:
        return "\n".join(w.logs() for w in workers)

    tester = workers[1]
    tester.stop()  # until the end: the fold's backtest stays pending, so a cancel ends it
    with api.client() as client:
        hold.touch()
        started = client.start_walkforward(TINY_STRATEGY, SHORT, folds=2, train_blocks=2)
        first = started.operation_id
        held = _held_training(api, first, logs)
        hold.unlink()
        wait_for_state(api, held.operation_id, {OperationState.COMPLETED}, "trained", 180, logs)
        hold.touch()  # the other fold's training holds at its first epoch until cancelled
        client.cancel_operation(first)
        assert wait_for_state(api, first, DONE, "cancelled", 120, logs).state == (
            OperationState.CANCELLED
        )
        hold.unlink()
        trained = client.get_operation(held.operation_id)

        # The model goes; the retry reuses the completed training and has to backtest it.
        model_id = trained.result["model_id"]
        gone = _ktrdr(api, "models", "delete", model_id, "--force", cwd=tmp_path)
        assert gone.returncode == 0, gone.stderr
        retry = client.retry_operation(first)
        assert retry.inputs.reuse == {held.role: trained.operation_id}
        ended = wait_for_state(api, retry.operation_id, DONE, "the retry", ONE_SWEEP_S, logs)
        assert ended.state == OperationState.FAILED
        assert model_id in ended.error
        assert f"ktrdr ops retry {retry.operation_id}" in ended.error
        _all_children_end(api, retry.operation_id, logs)

        # The passes go on: another walk-forward completes.
        backtester = WorkerProcess("backtest", api, tmp_path / "workers", worker_id="wf-tester-2")
        try:
            backtester.wait_registered()
            again = client.start_walkforward(TINY_STRATEGY, ON_GBPUSD, folds=2, train_blocks=2)
            done = wait_for_state(api, again.operation_id, DONE, "another one", 600, logs)
            assert done.state == OperationState.COMPLETED, done.error
        finally:
            backtester.stop()
