"""Backend logs: JSON lines off a terminal, text on one, each carrying the operation and worker
it concerns; transitions are logged once committed, refused messages leave no line."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from ktrdr_api.logs import LOGGERS, configure_logging
from ktrdr_core.client import KtrdrClient
from ktrdr_core.examples import read_example
from ktrdr_core.protocol import Heartbeat
from tests.support.api import API, claim, register, training_inputs, upload_artifact
from tests.support.market_data import packaged_csv
from tests.support.stack import start_api


@pytest.fixture
def log_stream():
    """The backend's loggers writing into a buffer; their previous set-up restored after."""
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
               logging.getLogger(name).level)
        for name in LOGGERS
    }  # fmt: skip
    buffer = io.StringIO()
    yield buffer
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_transition_logs_a_json_line_with_its_operation_and_worker(
    client, backend, clock, log_stream
):
    configure_logging(json_lines=True, stream=log_stream)
    data = upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")
    op = backend.operations.create(training_inputs(data), references=[data])
    register(client, "w-logs")
    offer = claim(client, "w-logs")
    assert offer["operation_id"] == op.operation_id

    lines = json_lines(log_stream.getvalue())
    [claimed] = [line for line in lines if line.get("event") == "claim"]
    assert claimed["operation_id"] == op.operation_id and claimed["worker_id"] == "w-logs"
    assert claimed["state"] == "running" and claimed["attempt"] == 1
    assert claimed["kind"] == "training" and claimed["level"] == "info"
    assert claimed["logger"] == "ktrdr_api.operations"
    assert {"time", "message"} <= set(claimed) and op.operation_id in claimed["message"]
    [registered] = [line for line in lines if "registered" in line["message"]]
    assert registered["worker_id"] == "w-logs"

    # A refused message (an attempt that does not hold the operation) writes nothing.
    before = len(json_lines(log_stream.getvalue()))
    stale = client.post(
        f"{API}/workers/w-logs/heartbeat",
        json=Heartbeat(operation_id=op.operation_id, attempt=7).model_dump(mode="json"),
    )
    assert stale.status_code == 409
    assert len(json_lines(log_stream.getvalue())) == before

    # A lost lease is a warning naming the reason, and the requeue is visible.
    clock.advance(backend.operations.lease.total_seconds() + 1)
    backend.operations.expire_leases()
    [expired] = [
        line for line in json_lines(log_stream.getvalue()) if line.get("event") == "expire_lease"
    ]
    assert expired["level"] == "warning" and expired["state"] == "pending"
    assert expired["operation_id"] == op.operation_id and expired["worker_id"] == "w-logs"
    assert "no heartbeat from worker w-logs" in expired["message"]


def test_on_a_terminal_lines_are_text_with_the_ids(client, backend, log_stream):
    configure_logging(json_lines=False, stream=log_stream)
    data = upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")
    op = backend.operations.create(training_inputs(data), references=[data])
    register(client, "w-text")
    claim(client, "w-text")
    [line] = [ln for ln in log_stream.getvalue().splitlines() if " claim: " in ln]
    assert f"[w-text {op.operation_id}]" in line and "pending -> running" in line
    assert not line.startswith("{")


@pytest.mark.slow  # a real `ktrdr-api serve`
def test_the_served_backend_writes_json_lines_when_stderr_is_a_file(tmp_path):
    api = start_api(tmp_path / "home", token="log-secret")
    try:
        with KtrdrClient(api.url, token="log-secret") as kc:
            kc.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
            op = kc.start_training(read_example("rsi_zones"), {"data.symbols": ["GOOG"]})
            worker = {"worker_id": "w-served", "kind": "training", "capabilities": {}}
            headers = {"Authorization": "Bearer log-secret"}
            assert httpx.post(f"{api.url}{API}/workers", json=worker, headers=headers).is_success
            assert kc.claim("w-served", timeout_s=5).operation_id == op.operation_id
    finally:
        api.stop()
    lines = json_lines(api.log.read_text())
    assert any("Application startup complete" in line["message"] for line in lines)  # uvicorn's
    assert any(f"serving on {api.url}" in line["message"] for line in lines)
    events = {line["event"]: line for line in lines if line.get("operation_id") == op.operation_id}
    assert events["create"]["state"] == "pending"
    assert events["claim"]["worker_id"] == "w-served"
    assert all(not line.startswith("INFO:") for line in api.log.read_text().splitlines())
