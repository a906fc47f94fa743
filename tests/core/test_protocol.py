"""Protocol models: what a worker or the CLI can and cannot send."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktrdr_core.protocol import (
    BacktestRequest,
    ClaimRequest,
    ClaimResponse,
    Heartbeat,
    TrainingInputs,
    WorkerRegistration,
    normalise_symbol,
)


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [("aapl", "AAPL"), (" brk.b ", "BRK.B"), ("^gspc", "^GSPC"), ("ES=F", "ES=F")],
)
def test_symbols_are_upper_cased(raw, symbol):
    assert normalise_symbol(raw) == symbol


@pytest.mark.parametrize("raw", ["", "../etc", "A/B", "A..B", ".hidden", "X" * 33, "A B", "A\\B"])
def test_symbols_that_could_be_paths_are_refused(raw):
    with pytest.raises(ValueError, match="invalid symbol"):
        normalise_symbol(raw)


def test_heartbeat_needs_operation_and_attempt_together():
    Heartbeat()  # idle
    Heartbeat(operation_id="op_000000000000", attempt=1)
    with pytest.raises(ValidationError, match="go together"):
        Heartbeat(operation_id="op_000000000000")
    with pytest.raises(ValidationError, match="need an operation_id"):
        Heartbeat(progress={"percent": 3})
    with pytest.raises(ValidationError):
        Heartbeat(operation_id="op_000000000000", attempt=1, progress={"percent": 101})


def test_requests_reject_unknown_fields_and_bad_ids():
    with pytest.raises(ValidationError, match="Extra inputs"):
        WorkerRegistration(worker_id="w1", kind="training", colour="blue")
    with pytest.raises(ValidationError):
        WorkerRegistration(worker_id="../w1", kind="training")
    with pytest.raises(ValidationError):
        ClaimRequest(timeout_s=3600)
    with pytest.raises(ValidationError, match="before end"):
        BacktestRequest(model_id="mdl_0123456789ab", start="2024-02-01", end="2024-01-01")


def test_claim_response_picks_the_inputs_by_kind():
    inputs = TrainingInputs(
        strategy_name="s", strategy_yaml="name: s\n", strategy_hash="a" * 64, data=[]
    )
    response = ClaimResponse.model_validate(
        {
            "operation_id": "op_0123456789ab",
            "kind": "training",
            "attempt": 1,
            "lease_expires_at": "2025-01-01T00:00:00Z",
            "lease_seconds": 30,
            "inputs": inputs.model_dump(mode="json"),
        }
    )
    assert isinstance(response.inputs, TrainingInputs)
