"""The research loop through the typed client, with the worker side played by the test:
import → validate → train → model → backtest → report, then the guards on deleting."""

from __future__ import annotations

import hashlib
import json

import pytest

from ktrdr_core.bundles import read_manifest
from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import (
    ArtifactKind,
    BacktestInputs,
    BacktestResult,
    OperationKind,
    OperationState,
    Progress,
    TrainingInputs,
    TrainingResult,
    WorkerCapabilities,
    WorkerRegistration,
)
from tests.support.api import API
from tests.support.bundles import bundle_bytes
from tests.support.market_data import packaged_csv

STRATEGY = read_example("rsi_zones")
ON_GOOG = {"data.symbols": ["GOOG"]}  # the example trades AAPL; the test data is GOOG


@pytest.fixture
def kc(client):
    """The real client, talking to the in-process app."""
    with KtrdrClient("http://testserver", token="", transport=client._transport) as typed:
        yield typed


@pytest.fixture
def goog(kc):
    return kc.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))


def test_strategy_validation_names_every_issue_with_its_path(kc):
    valid = kc.validate_strategy(STRATEGY, ON_GOOG)
    assert valid.valid and valid.name == "rsi_zones" and valid.features
    with pytest.raises(ApiError) as caught:
        kc.validate_strategy(
            STRATEGY, {"training.epochz": 5, "model.dropout": 2.0, "data.symbols": ["GOOG"]}
        )
    assert caught.value.status == 422
    paths = {issue["path"] for issue in caught.value.body["issues"]}
    assert {"training.epochz", "model.dropout"} <= paths


def test_strategy_text_is_never_read_as_a_server_path(kc):
    with pytest.raises(ApiError) as caught:
        kc.validate_strategy("/etc/passwd")
    assert caught.value.status == 422
    assert "root:" not in str(caught.value)


def test_training_needs_its_data_and_says_which(kc, goog):
    with pytest.raises(ApiError) as caught:
        kc.start_training(STRATEGY, {"data.symbols": ["GOOG", "MSFT", "aapl"]})
    assert caught.value.status == 422
    assert caught.value.body["missing"] == [
        {"symbol": "MSFT", "timeframe": "1d"},
        {"symbol": "AAPL", "timeframe": "1d"},
    ]
    assert "ktrdr data import MSFT 1d" in str(caught.value)


def test_training_whose_dates_select_none_of_the_data_is_refused_at_once(kc, goog):
    late = {**ON_GOOG, "data.start": "2019-01-01", "data.end": "2024-12-31"}
    with pytest.raises(ApiError) as caught:
        kc.start_training(STRATEGY, late)
    assert caught.value.status == 422
    [issue] = caught.value.body["issues"]
    assert issue["path"] == "data.start"
    assert issue["message"] == (
        f"GOOG 1d covers {goog.first.date()} … {goog.last.date()}; data.start/data.end "
        "(2019-01-01 … 2024-12-31) select none of it"
    )
    assert kc.list_operations(kind="training") == []  # nothing was queued


def test_full_loop(kc, goog, tmp_path):
    validation = kc.validate_strategy(STRATEGY, ON_GOOG)
    training = kc.start_training(STRATEGY, ON_GOOG)
    assert training.state == OperationState.PENDING
    inputs = training.inputs
    assert isinstance(inputs, TrainingInputs)
    assert inputs.strategy_hash == validation.strategy_hash
    assert inputs.seed == 7 and inputs.overrides == ON_GOOG
    assert inputs.data[0].checksum == goog.checksum
    assert training.reproducibility.data_checksums == {"GOOG/1d@1": goog.checksum}
    assert "ktrdr-api" in training.reproducibility.versions

    # --- a training worker ---
    kc.register_worker(
        WorkerRegistration(
            worker_id="trainer-1",
            kind=OperationKind.TRAINING,
            capabilities=WorkerCapabilities(cpu_count=2),
            versions={"ktrdr-worker": "0.1.0", "torch": "2.13.0"},
        )
    )
    offer = kc.claim("trainer-1", timeout_s=5)
    assert offer is not None and offer.operation_id == training.operation_id
    data_file = kc.download_artifact(offer.inputs.data[0].checksum, tmp_path / "goog.csv")
    assert data_file.read_bytes().startswith(b"timestamp,open,high,low,close,volume\n")
    beat = kc.heartbeat(
        "trainer-1", offer.operation_id, offer.attempt, progress=Progress(percent=50, step=100)
    )
    assert beat.cancel is False
    bundle_path = tmp_path / "bundle.zip"
    bundle_path.write_bytes(bundle_bytes(feature_names=validation.features))
    bundle = kc.upload_artifact(bundle_path, ArtifactKind.BUNDLE)
    done = kc.complete_operation(
        "trainer-1",
        offer.operation_id,
        offer.attempt,
        TrainingResult(bundle_sha256=bundle.sha256, summary={"test_accuracy": 0.41}),
    )
    assert done.state == OperationState.COMPLETED and done.progress.percent == 100
    assert done.reproducibility.attempts[0].worker_versions["torch"] == "2.13.0"

    [model] = kc.list_models()
    assert model.metadata == read_manifest(bundle_path).model_dump(mode="json", by_alias=True)
    assert model.metadata["feature_names"] == validation.features
    assert model.training_operation_id == training.operation_id
    assert model.data[0].checksum == goog.checksum
    assert kc.download_model(model.model_id, tmp_path / "m.zip") == bundle.sha256

    # --- a backtest worker ---
    backtest = kc.start_backtest(model.model_id, settings={"capital": 50_000})
    assert isinstance(backtest.inputs, BacktestInputs)
    assert backtest.inputs.bundle_sha256 == bundle.sha256
    kc.register_worker(WorkerRegistration(worker_id="tester-1", kind=OperationKind.BACKTEST))
    job = kc.claim("tester-1", timeout_s=5)
    assert job.operation_id == backtest.operation_id
    report = {"metrics": {"sharpe": 0.8}, "trades": []}
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "series.json").write_text(json.dumps({"format": "ktrdr-backtest-series/1"}))
    report_sha = kc.upload_artifact(tmp_path / "report.json", ArtifactKind.REPORT).sha256
    series_sha = kc.upload_artifact(tmp_path / "series.json", ArtifactKind.SERIES).sha256
    kc.complete_operation(
        "tester-1",
        job.operation_id,
        job.attempt,
        BacktestResult(report_sha256=report_sha, series_sha256=series_sha),
    )
    assert kc.backtest_report(backtest.operation_id) == report
    assert kc.backtest_series(backtest.operation_id) == {"format": "ktrdr-backtest-series/1"}
    assert [b.operation_id for b in kc.list_backtests()] == [backtest.operation_id]

    # --- deleting: the model guards its data ---
    with pytest.raises(ApiError) as caught:
        kc.delete_data("GOOG", "1d")
    assert caught.value.status == 409 and f"model:{model.model_id}" in str(caught.value)
    kc.delete_model(model.model_id)
    assert kc.list_models() == []
    assert not kc.artifact_exists(bundle.sha256)
    kc.delete_data("GOOG", "1d")
    assert kc.list_data() == []


def _trained_model(kc, tmp_path):
    """A training of the example on GOOG, completed by the test as worker "t" with the test
    bundle (its test period: 2012-01-03 … 2012-06-01); the model it made."""
    bundle_path = tmp_path / "b.zip"
    bundle_path.write_bytes(bundle_bytes())
    kc.start_training(STRATEGY, ON_GOOG)
    kc.register_worker(WorkerRegistration(worker_id="t", kind=OperationKind.TRAINING))
    offer = kc.claim("t", timeout_s=0)
    sha = kc.upload_artifact(bundle_path, ArtifactKind.BUNDLE).sha256
    kc.complete_operation("t", offer.operation_id, offer.attempt, TrainingResult(bundle_sha256=sha))
    [model] = kc.list_models()
    return model


def test_live_backtest_guards_its_model(kc, client, goog, tmp_path):
    model = _trained_model(kc, tmp_path)
    sha = model.bundle_sha256
    backtest = kc.start_backtest(model.model_id)
    with pytest.raises(ApiError) as caught:
        kc.delete_model(model.model_id)
    assert caught.value.status == 409 and backtest.operation_id in str(caught.value)
    kc.delete_model(model.model_id, force=True)
    # Forced: the model is gone, but the pending backtest can still fetch its bundle.
    assert kc.artifact_exists(sha)
    response = client.get(f"{API}/backtests/{backtest.operation_id}/report")
    assert response.status_code == 409  # no report before it completes


def test_completion_naming_an_unknown_artifact_is_refused(kc, goog):
    training = kc.start_training(STRATEGY, ON_GOOG)
    kc.register_worker(WorkerRegistration(worker_id="t", kind=OperationKind.TRAINING))
    offer = kc.claim("t", timeout_s=0)
    with pytest.raises(ApiError) as caught:
        kc.complete_operation(
            "t", offer.operation_id, offer.attempt, TrainingResult(bundle_sha256="e" * 64)
        )
    assert caught.value.status == 422 and "never uploaded" in str(caught.value)
    assert kc.get_operation(training.operation_id).state == OperationState.RUNNING


def test_bundle_without_metadata_is_refused(kc, goog, tmp_path):
    kc.start_training(STRATEGY, ON_GOOG)
    kc.register_worker(WorkerRegistration(worker_id="t", kind=OperationKind.TRAINING))
    offer = kc.claim("t", timeout_s=0)
    (tmp_path / "weights.bin").write_bytes(b"not a zip")
    sha = kc.upload_artifact(tmp_path / "weights.bin", ArtifactKind.BUNDLE).sha256
    not_a_bundle = TrainingResult(bundle_sha256=sha)
    with pytest.raises(ApiError) as caught:
        kc.complete_operation("t", offer.operation_id, offer.attempt, not_a_bundle)
    assert caught.value.status == 422 and "not a zip archive" in str(caught.value)
    assert str(tmp_path) not in str(caught.value) and "/artifacts/" not in str(caught.value)
    assert kc.list_models() == []


def test_backtest_settings_are_checked(kc, goog):
    with pytest.raises(ApiError) as caught:
        kc.start_backtest("mdl_000000000000", settings={"capitol": 1})
    assert caught.value.status == 422
    assert caught.value.body["issues"][0]["path"] == "settings.capitol"
    with pytest.raises(ApiError) as missing:
        kc.start_backtest("mdl_000000000000")
    assert missing.value.status == 404


def test_artifact_upload_round_trip_and_corruption(kc, client, tmp_path):
    payload = bytes(range(256)) * 5000
    (tmp_path / "ckpt").write_bytes(payload)
    view = kc.upload_artifact(tmp_path / "ckpt", ArtifactKind.CHECKPOINT)
    assert view.sha256 == hashlib.sha256(payload).hexdigest() and view.size == len(payload)
    assert kc.artifact_exists(view.sha256)
    assert kc.download_artifact(view.sha256, tmp_path / "back").read_bytes() == payload
    corrupted = client.post(
        f"{API}/artifacts",
        params={"kind": "checkpoint"},
        content=payload[:-1],
        headers={"X-Content-SHA256": view.sha256},
    )
    assert corrupted.status_code == 422 and "announced" in corrupted.json()["detail"]
    assert client.get(f"{API}/artifacts/{'0' * 64}").status_code == 404
    assert client.get(f"{API}/artifacts/..%2F..%2Fktrdr.db").status_code in (404, 422)


def test_training_lists_every_symbol_short_of_the_range(kc, goog, tmp_path):
    from tests.support.market_data import sp500_daily_csv

    # Asked for 2005 … 2015: the data reaches 2013-12-31 (the S&P 500's, from 2008 only);
    # GOOG ends 2013-03-01, and MSFT was never imported. One refusal names all three.
    sp500 = sp500_daily_csv(tmp_path / "sp500.csv", first="2008-01-01", last="2013-12-31")
    kc.import_data("SP500", "1d", sp500)
    both = {"data.symbols": ["GOOG", "SP500", "MSFT"], "data.start": "2005-01-01",
            "data.end": "2015-12-31"}  # fmt: skip
    with pytest.raises(ApiError) as caught:
        kc.start_training(STRATEGY, both)
    assert caught.value.status == 422
    missing = caught.value.body["missing"]
    assert {"symbol": "MSFT", "timeframe": "1d"} in missing
    goog_gap = {"symbol": "GOOG", "timeframe": "1d", "start": "2013-03-02", "end": "2013-12-31"}
    assert goog_gap in missing
    assert {"symbol": "SP500", "timeframe": "1d", "start": "2005-01-01", "end": "2008-01-01"} in (
        missing
    )
    message = str(caught.value)
    assert "MSFT 1d" in message and "SP500 1d from 2005-01-01 to 2008-01-01" in message
    assert "or ask for a period every symbol covers" in message
    assert kc.list_operations(kind="training") == []


def test_backtest_refuses_data_short_of_the_test_period(kc, client, goog, tmp_path):
    model = _trained_model(kc, tmp_path)
    # A newer GOOG version that stops at the end of 2011: the test period is not in it.
    lines = packaged_csv("GOOG.csv").read_text().splitlines(keepends=True)
    short = tmp_path / "GOOG.csv"
    short.write_text("".join(line for line in lines if line[:4] < "2012"))
    kc.import_data("GOOG", "1d", short)
    with pytest.raises(ApiError) as caught:
        kc.start_backtest(model.model_id)
    assert caught.value.status == 422
    assert caught.value.body["missing"] == [
        {"symbol": "GOOG", "timeframe": "1d", "start": "2012-01-03", "end": "2012-06-01"}
    ]
    assert kc.list_operations(kind="backtest") == []
