"""GET /metrics: Prometheus text an operator can scrape — queue depth, operations by state,
workers by status, transitions, and request latencies per route template."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.protocol import OperationState
from tests.support.api import API, claim, register, training_inputs, upload_artifact

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """(metric name, labels) -> value; fails on any line that is not valid exposition text."""
    samples: dict[tuple[str, frozenset], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, _, labels, value = match.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no # TYPE line"
        samples[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "_created" not in response.text  # no per-series creation times: compact
    return parse(response.text)


@pytest.fixture
def data_sha(client) -> str:
    return upload_artifact(client, b"timestamp,open,high,low,close,volume\n", "data")


def test_queue_operations_and_workers_are_counted(client, backend, data_sha):
    for _ in range(3):
        backend.operations.create(training_inputs(data_sha), references=[data_sha])
    register(client, "busy-one")
    register(client, "idle-one")
    register(client, "tester", kind="backtest")
    offer = claim(client, "busy-one")
    waiting = backend.operations.list_operations(state=OperationState.PENDING)
    backend.operations.request_cancel(waiting[0].operation_id)

    samples = scrape(client)

    assert value(samples, "ktrdr_queue_depth", kind="training") == 1
    assert value(samples, "ktrdr_queue_depth", kind="backtest") == 0
    assert value(samples, "ktrdr_operations", kind="training", state="pending") == 1
    assert value(samples, "ktrdr_operations", kind="training", state="running") == 1
    assert value(samples, "ktrdr_operations", kind="training", state="cancelled") == 1
    assert value(samples, "ktrdr_operations", kind="backtest", state="completed") == 0
    assert value(samples, "ktrdr_workers", kind="training", status="busy") == 1
    assert value(samples, "ktrdr_workers", kind="training", status="idle") == 1
    assert value(samples, "ktrdr_workers", kind="backtest", status="idle") == 1
    assert value(samples, "ktrdr_workers", kind="backtest", status="offline") == 0
    transitions = "ktrdr_operation_transitions_total"
    assert value(samples, transitions, kind="training", event="create", state="pending") == 3
    assert value(samples, transitions, kind="training", event="claim", state="running") == 1
    assert value(samples, transitions, kind="training", event="request_cancel", state="cancelled")
    assert offer["operation_id"] not in str(samples)  # ids never become labels


def test_request_latency_is_a_histogram_per_route_template(client, backend, data_sha):
    op = backend.operations.create(training_inputs(data_sha), references=[data_sha])
    for _ in range(3):
        assert client.get(f"{API}/operations/{op.operation_id}").status_code == 200
    assert client.get(f"{API}/operations/op_000000000000").status_code == 404
    assert client.get(f"{API}/no/such/route").status_code == 404

    samples = scrape(client)

    name = "ktrdr_http_request_duration_seconds"
    route = {"method": "GET", "route": "/api/v1/operations/{operation_id}"}
    assert value(samples, f"{name}_count", **route, status="200") == 3
    assert value(samples, f"{name}_count", **route, status="404") == 1
    assert value(samples, f"{name}_count", method="GET", route="(unmatched)", status="404") == 1
    assert value(samples, f"{name}_sum", **route, status="200") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (metric, labels), count in samples.items()
        if metric == f"{name}_bucket" and labels >= frozenset((route | {"status": "200"}).items())
    )
    counts = [count for _, count in buckets]
    assert buckets[-1] == (float("inf"), 3) and counts == sorted(counts)  # cumulative
    assert op.operation_id not in str(samples)


def test_with_a_token_metrics_need_it_like_every_route_but_health(settings):
    secured = settings.model_copy(update={"api_token": "scrape-secret"})
    with TestClient(create_app(secured, sweep_interval_s=3600)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and "KTRDR_API_TOKEN" in refused.json()["detail"]
        samples = scrape(client, Authorization="Bearer scrape-secret")
    name = "ktrdr_http_request_duration_seconds_count"
    # The refused scrape is counted, without a route: routing never saw it.
    assert value(samples, name, method="GET", route="(unmatched)", status="401") == 1
