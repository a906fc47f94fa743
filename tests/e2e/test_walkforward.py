"""A walk-forward across several real workers: `ktrdr-api serve`, two training workers and one
backtest worker. Real EURUSD hourly bars; every fold is trained and backtested as its own
child operation, the folds spread over both training workers, and the stitched report and
chart come back; the backtest worker runs as the ktrdr-worker-cpu image does, without torch,
scipy or scikit-learn, so its fold backtests and the stitched report use numpy inference. Then
cancel and retry: a cancelled walk-forward cancels its children, and
its retry reuses what completed and reproduces the same fold results.

Each training worker has its own hold file (KTRDR_WORKER_HOLD_FILE): while it exists, that
worker's training holds after its first epoch. The tests use them to hold a fold where they
need one running — never an epoch count that should be long enough — and remove them before
the runs that must not hold."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest

from ktrdr_core.protocol import OperationKind, OperationState
from tests.support.market_data import eurusd_csv
from tests.support.processes import BIN, process_env
from tests.support.stack import TINY_STRATEGY, ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}


TRAINERS = ("wf-training-1", "wf-training-2")


def _hold_file(folder: Path, n: int) -> Path:
    return folder / f"hold-training-{n}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("walkforward")
    # A long lease: a heartbeat starved on a busy machine must not requeue a fold (the tests
    # read who ran each one); nothing here waits for a lease to run out.
    api = ApiServer(folder / "home", lease_seconds=30.0, token="wf-secret").start()
    workers = [
        WorkerProcess(
            kind,
            api,
            folder / "workers",
            worker_id=f"wf-{kind}-{n}",
            env=env,
            torch_free=kind == "backtest",
        )
        for kind, n, env in (
            ("training", 1, {"KTRDR_WORKER_HOLD_FILE": str(_hold_file(folder, 1))}),
            ("training", 2, {"KTRDR_WORKER_HOLD_FILE": str(_hold_file(folder, 2))}),
            ("backtest", 1, None),
        )
    ]
    for worker in workers:
        worker.wait_registered()
    with api.client() as client:
        client.import_data("EURUSD", "1h", eurusd_csv(folder / "EURUSD_1h.csv"))
    yield api, workers
    for worker in workers:
        worker.stop()
    api.stop()


@pytest.fixture
def holds(stack):
    """Each training worker's hold file (worker id -> path), none present before or after."""
    api, _ = stack
    folder = api.home.parent
    files = {worker_id: _hold_file(folder, n) for n, worker_id in enumerate(TRAINERS, 1)}
    yield files
    for path in files.values():
        path.unlink(missing_ok=True)


def _logs(workers) -> str:
    return "\n".join(worker.logs() for worker in workers)


def _held_folds(client, walkforward: str, count: int):
    """Until ``count`` train children are held (each on its own worker): their views by role."""

    def held():
        view = client.get_walkforward(walkforward)
        assert not view.operation.state.is_terminal, view.operation.error
        found = {
            c.role: c
            for c in view.children
            if c.role.startswith("train:")
            and c.state == OperationState.RUNNING
            and c.progress.message.startswith("held after epoch")
        }
        return found if len(found) == count else None

    return held


def test_a_walkforward_runs_every_fold_across_workers_and_stitches_them(stack, holds, tmp_path):
    api, workers = stack
    with api.client() as client:
        for path in holds.values():
            path.touch()
        started = client.start_walkforward(
            TINY_STRATEGY, {"training.epochs": 2}, folds=3, train_blocks=2
        )
        assert started.kind == OperationKind.WALKFORWARD
        assert started.state == OperationState.RUNNING
        plan = started.inputs.folds
        assert [f.index for f in plan] == [0, 1, 2]
        for before, after in itertools.pairwise(plan):
            # Test windows follow each other; every training window ends before its test.
            assert (after.test_start - before.test_end).days == 1
        for fold in plan:
            assert fold.train_end < fold.test_start

        # A held worker is busy: two folds held means one on each training worker.
        held = wait_until(_held_folds(client, started.operation_id, 2), "two folds held", 300,
                          lambda: _logs(workers))  # fmt: skip
        assert {c.worker_id for c in held.values()} == set(TRAINERS)
        for path in holds.values():
            path.unlink()

        done = wait_for_state(
            api, started.operation_id, DONE, "walk-forward", 600, lambda: _logs(workers)
        )
        assert done.state == OperationState.COMPLETED, done.error
        view = client.get_walkforward(started.operation_id)
        # Finished means stitched: the progress says so, at 100 %.
        assert view.operation.progress.message.endswith("report stitched")
        assert view.operation.progress.percent == 100.0
        roles = {child.role: child for child in view.children}
        assert set(roles) == {f"train:{i}" for i in range(3)} | {
            f"backtest:{i}" for i in range(3)
        } | {"report"}
        assert all(child.state == OperationState.COMPLETED for child in view.children)
        assert all(child.parent_id == started.operation_id for child in view.children)

        trainers = {roles[f"train:{i}"].reproducibility.worker_id for i in range(3)}
        assert trainers == {"wf-training-1", "wf-training-2"}, "folds ran on one worker only"
        # Each fold trained only on its own window.
        for fold in plan:
            training = roles[f"train:{fold.index}"]
            splits = training.result["summary"]["splits"]
            assert splits["train"]["start"][:10] >= fold.train_start.isoformat()
            assert splits["test"]["end"][:10] <= fold.train_end.isoformat()

        report = client.walkforward_report(started.operation_id)
        assert report["format"] == "ktrdr-walkforward-report/1"
        assert [row["fold"] for row in report["folds"]] == [0, 1, 2]
        for row, fold in zip(report["folds"], plan, strict=True):
            backtest = client.backtest_report(roles[f"backtest:{fold.index}"].operation_id)
            assert backtest["start"][:10] >= fold.test_start.isoformat()
            assert backtest["end"][:10] <= fold.test_end.isoformat()
            assert row["total_return"] == backtest["metrics"]["total_return"]
            assert backtest["inference"] == "numpy"  # the torch-free backtest worker ran it
        assert roles["report"].reproducibility.worker_id == "wf-backtest-1"
        (backtester,) = [w for w in client.list_workers() if w.kind == OperationKind.BACKTEST]
        assert "torch" not in backtester.versions and backtester.capabilities.device == "cpu"
        # The stitched account compounds the folds' returns.
        growth = 1.0
        for row in report["folds"]:
            growth *= 1 + row["total_return"]
        assert report["metrics"]["total_return"] == pytest.approx(growth - 1, abs=1e-9)
        assert report["stability"]["folds"] == 3
        assert report["stability"]["features"], "no feature ranking across folds"
        assert done.result["summary"]["metrics"]["total_return"] == pytest.approx(growth - 1)

        html = tmp_path / "wf.html"
        client.download_walkforward_html(started.operation_id, html)
        assert '"format":"ktrdr-walkforward-series/1"' in html.read_text()

        listed = client.list_operations(strategy="tiny_eurusd")
        assert started.operation_id in {op.operation_id for op in listed}


def test_cancel_cancels_the_children_and_retry_reuses_what_completed(stack, holds):
    api, workers = stack
    with api.client() as client:
        for path in holds.values():
            path.touch()
        started = client.start_walkforward(
            TINY_STRATEGY, {"training.epochs": 2, "training.seed": 11}, folds=2, train_blocks=3
        )
        held = wait_until(_held_folds(client, started.operation_id, 2), "both folds held", 300,
                          lambda: _logs(workers))  # fmt: skip
        # Fold 0 goes on to complete; fold 1 stays held, so the walk-forward is still running.
        holds[held["train:0"].worker_id].unlink()

        def first_fold_trained():
            roles = {c.role: c for c in client.get_walkforward(started.operation_id).children}
            return roles["train:0"].state == OperationState.COMPLETED

        wait_until(first_fold_trained, "fold 0 trained", 300, lambda: _logs(workers))
        view = client.get_walkforward(started.operation_id)
        assert view.operation.state == OperationState.RUNNING
        fold_1 = {c.role: c for c in view.children}["train:1"]
        assert fold_1.state == OperationState.RUNNING
        assert fold_1.progress.message.startswith("held after epoch")
        client.cancel_operation(started.operation_id)  # a cancel ends the hold at once
        cancelled = wait_for_state(
            api, started.operation_id, DONE, "cancelled walk-forward", 60, lambda: _logs(workers)
        )
        assert cancelled.state == OperationState.CANCELLED
        children = client.get_walkforward(started.operation_id).children
        assert all(child.state in DONE for child in children)
        assert {c.role: c for c in children}["train:1"].state == OperationState.CANCELLED
        for path in holds.values():  # the retry must not hold
            path.unlink(missing_ok=True)
        first = {c.role: c for c in children}["train:0"]

        retry = client.retry_operation(started.operation_id)
        assert retry.retry_of == started.operation_id
        assert retry.inputs.reuse["train:0"] == first.operation_id
        done = wait_for_state(
            api, retry.operation_id, DONE, "retried walk-forward", 600, lambda: _logs(workers)
        )
        assert done.state == OperationState.COMPLETED, done.error
        own = {c.role for c in client.get_walkforward(retry.operation_id).children}
        assert "train:0" not in own, "the completed fold was trained again"
        assert done.result["children"]["train:0"] == first.operation_id


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The rows (split on blanks) of the table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [header])
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def _ktrdr(api: ApiServer, *args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ktrdr"), "--url", api.url, "--token", api.token, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=process_env({"COLUMNS": "200"}),
    )


def test_the_cli_follows_a_walkforward_then_lists_diffs_and_compares_runs(stack, tmp_path):
    api, workers = stack
    strategy = tmp_path / "tiny.yaml"
    strategy.write_text(TINY_STRATEGY, encoding="utf-8")
    common = ("--folds", "2", "--train-blocks", "2", "--epochs", "2")
    followed = _ktrdr(api, "walkforward", str(strategy), *common, "--follow", cwd=tmp_path)
    assert followed.returncode == 0, followed.stderr + _logs(workers)
    out = followed.stdout
    assert "out of sample (stitched)" in out and "profitable folds:" in out
    assert re.search(r"^page: http://127\.0\.0\.1:\d+/#/walkforwards/op_\w+$", out, re.MULTILINE)

    started = _ktrdr(
        api, "--json", "walkforward", str(strategy), *common, "--seed", "99", cwd=tmp_path
    )
    assert started.returncode == 0, started.stderr
    second = json.loads(started.stdout)["operation_id"]
    with api.client() as client:
        done = wait_for_state(api, second, DONE, "second walk-forward", 600, lambda: _logs(workers))
        assert done.state == OperationState.COMPLETED, done.error
        first = next(
            v.operation_id
            for v in client.list_walkforwards("completed")
            if v.operation_id != second and len(v.inputs.folds) == 2 and v.retry_of is None
        )

    # The same walk-forward again (same seed, same data) reproduces every fold.
    with api.client() as client:
        again = client.start_walkforward(
            TINY_STRATEGY, {"training.epochs": 2}, folds=2, train_blocks=2
        )
        redone = wait_for_state(
            api, again.operation_id, DONE, "repeated walk-forward", 600, lambda: _logs(workers)
        )
        assert redone.state == OperationState.COMPLETED, redone.error
        before = client.walkforward_report(first)
        after = client.walkforward_report(again.operation_id)
    assert [row["total_return"] for row in after["folds"]] == [
        row["total_return"] for row in before["folds"]
    ]
    assert after["metrics"] == before["metrics"]
    assert after["stability"] == before["stability"]

    listed = _ktrdr(api, "runs", "list", "--strategy", "tiny_eurusd", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert first in listed.stdout and second in listed.stdout and "walkforward" in listed.stdout

    diff = _ktrdr(api, "--json", "runs", "diff", first, second, cwd=tmp_path)
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)
    changed = {key: (a, b) for key, a, b in changes["parameters"]}
    assert changed["strategy.training.seed"] == (3, 99)
    assert changes["seed"] == [3, 99]
    assert changes["data"] == [] and changes["versions"] == []
    assert any(key == "total_return" for key, *_ in changes["metrics"])
    human = _ktrdr(api, "runs", "diff", first, second, cwd=tmp_path)
    assert "strategy.training.seed" in human.stdout and "B − A" in human.stdout
    # A walk-forward runs its children on workers: their versions are on record too.
    for side in ("a", "b"):
        assert any(key.startswith("worker ") for key in changes[side]["versions"]), changes[side]
    # The metrics table leads with the period the numbers cover; fractions move in points.
    metrics = _table_rows(human.stdout, "metric")
    assert metrics[0][0] == "period", human.stdout
    [total_return] = [row for row in metrics if row[0] == "total_return"]
    assert total_return[-1] == "pp" and total_return[-2].startswith(("+", "-")), total_return

    compared = _ktrdr(api, "backtests", "compare", first, second, cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "total_return" in compared.stdout and first in compared.stdout
    rows = _table_rows(compared.stdout, "metric")
    assert rows[0][0] == "period" and rows[1][0] == "total_return", compared.stdout

    window = ("--start", "2017-06-01", "--end", "2017-06-05")
    bad = _ktrdr(api, "walkforward", str(strategy), "--folds", "3", *window, cwd=tmp_path)
    assert bad.returncode != 0
    assert "5 days cannot hold 3 folds" in bad.stderr, bad.stderr
