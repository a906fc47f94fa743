"""The backend tests' side of the protocol: a fake clock, and the calls a worker makes
(register, claim, upload) against an app's TestClient."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from ktrdr_core.protocol import DataRef, TrainingInputs

API = "/api/v1"


class FakeClock:
    """The backend's notion of now; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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


def data_ref(checksum: str, symbol: str = "GOOG", timeframe: str = "1d") -> DataRef:
    """A reference to a stored file, as if catalogued (for operations made directly)."""
    return DataRef(
        symbol=symbol,
        timeframe=timeframe,
        version=1,
        checksum=checksum,
        rows=10,
        first=datetime(2020, 1, 1, tzinfo=UTC),
        last=datetime(2020, 1, 10, tzinfo=UTC),
    )


def training_inputs(data_checksum: str, name: str = "s1") -> TrainingInputs:
    """Inputs of a training operation created straight through the state machine;
    ``data_checksum`` names an uploaded artifact standing in for the data file."""
    return TrainingInputs(
        strategy_name=name,
        strategy_yaml="name: s1\n",
        strategy_hash="a" * 64,
        data=[data_ref(data_checksum)],
        seed=7,
        versions={"ktrdr-api": "0.1.0"},
    )


def upload_artifact(client, data: bytes, kind: str) -> str:
    response = client.post(
        f"{API}/artifacts",
        params={"kind": kind},
        content=data,
        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
    )
    assert response.status_code == 201, response.text
    return response.json()["sha256"]
