"""A walk-forward whose next step cannot be made (its data was force-deleted, a fold's model
is gone) fails at once with the reason and a log line naming it; the background passes go
on for every other walk-forward, cancel still works, and a restart changes nothing.

The transcript this reproduces: `ktrdr walkforward` then `ktrdr data delete EURUSD 1h --force`
while it trained; before the fix the pass raised MissingData out of the sweep, which stopped
every walk-forward at "0/3 folds trained" until shutdown printed the traceback."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.client import KtrdrClient
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import (
    ArtifactKind,
    OperationKind,
    OperationState,
    TrainingResult,
    WorkerRegistration,
)
from tests.support.bundles import bundle_bytes
from tests.support.market_data import packaged_csv

STRATEGY = read_example("rsi_zones")
ON_GOOG = {"data.symbols": ["GOOG"], "training.epochs": 2}


def _typed(client) -> KtrdrClient:
    return KtrdrClient("http://testserver", token="", transport=client._transport)


def _train_one(kc, tmp_path, features: list[str]) -> str:
    """Claim the oldest training as worker t1 and complete it; its operation id."""
    offer = kc.claim("t1", timeout_s=0)
    assert offer is not None, "no training operation to claim"
    path = tmp_path / f"{offer.operation_id}.zip"
    path.write_bytes(bundle_bytes(feature_names=features, weights=offer.operation_id.encode()))
    sha = kc.upload_artifact(path, ArtifactKind.BUNDLE).sha256
    kc.complete_operation(
        "t1", offer.operation_id, offer.attempt, TrainingResult(bundle_sha256=sha)
    )
    return offer.operation_id


def _state(kc, operation_id: str) -> OperationState:
    return kc.get_operation(operation_id).state


def test_a_walkforward_whose_data_was_deleted_fails_within_one_sweep_and_the_rest_go_on(
    client, backend, settings, clock, tmp_path, caplog
):
    caplog.set_level(logging.ERROR, logger="ktrdr_api.walkforward")
    with _typed(client) as kc:
        kc.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
        kc.register_worker(WorkerRegistration(worker_id="t1", kind=OperationKind.TRAINING))
        features = kc.validate_strategy(STRATEGY, ON_GOOG).features
        broken = kc.start_walkforward(STRATEGY, ON_GOOG, folds=2, train_blocks=2).operation_id

        # The data goes while fold 0 trains; fold 0's training still completes.
        kc.delete_data("GOOG", "1d", force=True)
        trained = _train_one(kc, tmp_path, features)
        assert _state(kc, trained) == OperationState.COMPLETED
        backend.walkforwards.sweep()

        ended = kc.get_operation(broken)
        assert ended.state == OperationState.FAILED
        assert "no data for GOOG 1d" in ended.error
        assert f"ktrdr ops retry {broken}" in ended.error
        others = [c for c in kc.get_walkforward(broken).children if c.operation_id != trained]
        assert [c.state for c in others] == [OperationState.CANCELLED], "nothing left running"
        logged = [r for r in caplog.records if getattr(r, "operation_id", None) == broken]
        assert logged and "no data for GOOG 1d" in logged[0].getMessage()

        # Another walk-forward, on the data imported again, trains every fold and gets its
        # backtests: the passes outlived the broken one.
        kc.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
        healthy = kc.start_walkforward(STRATEGY, ON_GOOG, folds=2, train_blocks=2).operation_id
        for _ in range(2):
            _train_one(kc, tmp_path, features)
        backend.walkforwards.sweep()
        roles = {c.role: c for c in kc.get_walkforward(healthy).children}
        assert {"backtest:0", "backtest:1"} <= set(roles)
        assert kc.get_operation(healthy).progress.message.startswith("2/2 folds trained")

        # Cancel works on it while the broken one stays as it ended.
        kc.cancel_operation(healthy)
        backend.walkforwards.sweep()
        assert _state(kc, healthy) == OperationState.CANCELLED

    # A restart on the same home: its first sweep changes nothing.
    with TestClient(create_app(settings, clock=clock, sweep_interval_s=3600)) as again:
        again.app.state.backend.walkforwards.sweep()
        with _typed(again) as kc:
            assert _state(kc, broken) == OperationState.FAILED
            assert _state(kc, healthy) == OperationState.CANCELLED


def test_a_walkforward_whose_fold_model_was_deleted_fails_with_the_reason(
    client, backend, tmp_path, caplog
):
    # What a user can do: cancel a walk-forward after its first fold trained, delete that
    # fold's model, retry. The retry reuses the completed training, so its first pass has to
    # backtest a model that is gone.
    caplog.set_level(logging.ERROR, logger="ktrdr_api.walkforward")
    with _typed(client) as kc:
        kc.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
        kc.register_worker(WorkerRegistration(worker_id="t1", kind=OperationKind.TRAINING))
        features = kc.validate_strategy(STRATEGY, ON_GOOG).features
        started = kc.start_walkforward(STRATEGY, ON_GOOG, folds=2, train_blocks=2).operation_id
        trained = _train_one(kc, tmp_path, features)
        kc.cancel_operation(started)
        backend.walkforwards.sweep()
        assert _state(kc, started) == OperationState.CANCELLED

        role = {c.operation_id: c.role for c in kc.get_walkforward(started).children}[trained]
        model_id = kc.get_operation(trained).result["model_id"]
        kc.delete_model(model_id, force=True)
        retry = kc.retry_operation(started)
        assert retry.inputs.reuse == {role: trained}
        backend.walkforwards.sweep()

        ended = kc.get_operation(retry.operation_id)
        assert ended.state == OperationState.FAILED
        assert model_id in ended.error
        assert f"ktrdr ops retry {retry.operation_id}" in ended.error
        logged = [
            r for r in caplog.records if getattr(r, "operation_id", None) == retry.operation_id
        ]
        assert logged and model_id in logged[0].getMessage()
        # Nothing of the retry is left running.
        assert all(c.state.is_terminal for c in kc.get_walkforward(retry.operation_id).children)
