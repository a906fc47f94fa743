"""Fixtures for the backend tests: an app on a fresh KTRDR_HOME, a fake clock, workers."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_api.deps import Backend
from ktrdr_core.protocol import DataRef, TrainingInputs
from ktrdr_core.settings import Settings

API = "/api/v1"


class FakeClock:
    """The backend's notion of now; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", lease_seconds=30, max_attempts=3)


@pytest.fixture
def client(settings, clock):
    """A TestClient with the lifespan running; leases are swept only when a test says so."""
    app = create_app(settings, clock=clock, sweep_interval_s=3600)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def backend(client) -> Backend:
    return client.app.state.backend


def register(client, worker_id: str, kind: str = "training", device: str = "cpu") -> dict:
    capabilities = {"device": device}
    if device != "cpu":
        capabilities |= {"gpu_name": "Test GPU", "gpu_memory_mb": 8192}
    response = client.post(
        f"{API}/workers",
        json={"worker_id": worker_id, "kind": kind, "capabilities": capabilities},
    )
    assert response.status_code == 200, response.text
    return response.json()


def claim(client, worker_id: str, timeout_s: float = 0.0):
    """The claim response body, or None for 204."""
    response = client.post(f"{API}/workers/{worker_id}/claim", json={"timeout_s": timeout_s})
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else None


def wait_until(condition, what: str, limit_s: float = 10.0) -> None:
    """Poll ``condition`` (a bounded wait for threads to get going; not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


def fake_data_ref(symbol: str = "GOOG", timeframe: str = "1d") -> DataRef:
    return DataRef(
        symbol=symbol,
        timeframe=timeframe,
        version=1,
        checksum="0" * 64,
        rows=10,
        first=datetime(2020, 1, 1, tzinfo=UTC),
        last=datetime(2020, 1, 10, tzinfo=UTC),
    )


def training_inputs(name: str = "s1") -> TrainingInputs:
    """Inputs of a training operation created straight through the state machine."""
    return TrainingInputs(
        strategy_name=name,
        strategy_yaml="name: s1\n",
        strategy_hash="a" * 64,
        data=[fake_data_ref()],
        seed=7,
        versions={"ktrdr-api": "0.1.0"},
    )


def bundle_bytes(metadata: dict | None = None) -> bytes:
    """A minimal model bundle: a zip holding bundle.json (and some weights bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("bundle.json", json.dumps(metadata or {"format": "test", "features": []}))
        bundle.writestr("weights.bin", b"\x00" * 64)
    return buffer.getvalue()


def upload_artifact(client, data: bytes, kind: str) -> str:
    response = client.post(
        f"{API}/artifacts",
        params={"kind": kind},
        content=data,
        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
    )
    assert response.status_code == 201, response.text
    return response.json()["sha256"]


def packaged_csv(name: str) -> Path:
    """A real OHLCV file shipped inside the `backtesting` wheel (found without importing it:
    its package imports pandas)."""
    spec = importlib.util.find_spec("backtesting")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "test" / name
