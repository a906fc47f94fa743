"""`POST /strategies/audits`: a strategy audit is a ``strategy_audit`` operation for a training
worker, recording the strategy, the symbol's data and the model it checks; what it cannot run
is refused before any worker sees it. The worker is played by the test (the checks themselves
are tests/worker/strategy_audit)."""

from __future__ import annotations

import pytest

from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import (
    SERVED_BY,
    OperationKind,
    OperationState,
    StrategyAuditInputs,
    StrategyAuditResult,
    WorkerRegistration,
)
from ktrdr_core.strategy_audit import AuditCheck, CheckStatus, StrategyAuditReport
from tests.support.api import API
from tests.support.market_data import goog_daily_csv

RSI_ZONES = read_example("rsi_zones")
WHOLE = {"data.start": "2004-01-01", "data.end": "2013-12-31"}


@pytest.fixture
def kc(client, tmp_path):
    with KtrdrClient("http://testserver", token="", transport=client._transport) as typed:
        for worker_id, kind in (("gpu", OperationKind.TRAINING), ("cpu", OperationKind.BACKTEST)):
            typed.register_worker(WorkerRegistration(worker_id=worker_id, kind=kind))
        typed.import_data("GOOG", "1d", goog_daily_csv(tmp_path / "goog.csv"))
        yield typed


def _report(passed: bool) -> StrategyAuditReport:
    status = CheckStatus.PASS if passed else CheckStatus.FAIL
    return StrategyAuditReport(
        strategy_name="rsi_zones", strategy_hash="h", symbol="GOOG", timeframe="1d", bars=2148,
        first="2004-08-19T00:00:00+00:00", last="2013-03-01T00:00:00+00:00",
        checks=[AuditCheck(name="lookahead", status=status, hard=True, summary="…")],
        passed=passed,
    )  # fmt: skip


def test_an_audit_is_a_training_workers_operation_and_its_report_is_the_result(kc, client):
    assert SERVED_BY[OperationKind.STRATEGY_AUDIT] == OperationKind.TRAINING
    view = kc.start_strategy_audit(RSI_ZONES, "goog", overrides=WHOLE, checks=["lookahead"])
    assert view.kind == OperationKind.STRATEGY_AUDIT and view.state == OperationState.PENDING

    assert kc.claim("cpu", timeout_s=0) is None  # a backtest worker never gets it
    offer = kc.claim("gpu", timeout_s=0)
    assert offer is not None and offer.operation_id == view.operation_id
    inputs = offer.inputs
    assert isinstance(inputs, StrategyAuditInputs)
    assert inputs.symbol == "GOOG" and inputs.checks == ["lookahead"] and not inputs.train
    assert [(ref.symbol, ref.timeframe.value) for ref in inputs.data] == [("GOOG", "1d")]
    assert "GOOG" in inputs.strategy_yaml  # the effective strategy, overrides applied
    assert inputs.overrides["data.symbols"] == ["GOOG"] and inputs.cuts == 50

    kc.complete_operation("gpu", offer.operation_id, offer.attempt,
                          StrategyAuditResult(report=_report(passed=False)))  # fmt: skip
    done = kc.get_operation(view.operation_id)
    assert done.state == OperationState.COMPLETED
    assert done.result.report.passed is False
    assert done.result.report.check("lookahead").failed_hard

    listed = client.get(f"{API}/strategies/audits").json()
    assert [op["operation_id"] for op in listed] == [view.operation_id]
    one = client.get(f"{API}/strategies/audits/{view.operation_id}")
    assert one.status_code == 200 and one.json()["result"]["report"]["symbol"] == "GOOG"


def test_what_an_audit_cannot_run_is_refused_before_a_worker_sees_it(kc, client):
    with pytest.raises(ApiError) as missing:
        kc.start_strategy_audit(RSI_ZONES, "AAPL", overrides=WHOLE)
    assert missing.value.status == 422 and "AAPL" in str(missing.value)

    with pytest.raises(ApiError) as no_model:
        kc.start_strategy_audit(RSI_ZONES, "GOOG", overrides=WHOLE, model_id="mdl_000000000000")
    assert no_model.value.status == 404 and "mdl_000000000000" in str(no_model.value)

    body = {"strategy": RSI_ZONES, "symbol": "GOOG", "overrides": WHOLE}
    unknown = client.post(f"{API}/strategies/audits", json=body | {"checks": ["lookahed"]})
    assert unknown.status_code == 422 and "unknown checks lookahed" in unknown.text
    both = client.post(
        f"{API}/strategies/audits", json=body | {"model_id": "mdl_000000000000", "train": True}
    )
    assert both.status_code == 422 and "give model_id or train, not both" in both.text
    outside = client.post(
        f"{API}/strategies/audits",
        json=body | {"overrides": {"data.start": "2020-01-01", "data.end": "2021-01-01"}},
    )
    assert outside.status_code == 422 and "select none" in outside.text
    assert kc.claim("gpu", timeout_s=0) is None  # nothing was queued
    assert client.get(f"{API}/strategies/audits").json() == []


def test_a_backtest_is_not_an_audit(kc, client):
    audit = kc.start_strategy_audit(RSI_ZONES, "GOOG", overrides=WHOLE)
    other = kc.start_training(RSI_ZONES, {**WHOLE, "data.symbols": ["GOOG"]})
    response = client.get(f"{API}/strategies/audits/{other.operation_id}")
    assert response.status_code == 404 and "not a strategy audit" in response.text
    assert client.get(f"{API}/strategies/audits/{audit.operation_id}").status_code == 200
