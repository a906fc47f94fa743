"""Helpers for the backend tests: a fake clock, worker calls, bundles, real OHLCV files."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import time
import zipfile
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ktrdr_core.bundles import BUNDLE_FORMAT, write_bundle
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


def wait_until(condition, what: str, limit_s: float = 10.0) -> None:
    """Poll ``condition`` (a bounded wait for threads to get going; not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


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


def torch_like_weights(marker: bytes) -> bytes:
    """A weights file shaped like torch.save's (a zip holding data.pkl, here an empty state
    dict pickled by the standard library), carrying ``marker`` so each gives other bytes.
    The backend scans the pickle but never unpickles it, so no torch is needed."""
    if marker.startswith(b"PK\x03\x04"):
        return marker  # an archive already
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in (
            ("archive/data.pkl", pickle.dumps(OrderedDict(), protocol=2)),
            ("archive/marker", marker),
        ):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 6, 12, 0, 0)), data)
    return buffer.getvalue()


WEIGHTS = torch_like_weights(b"\x00weights: bytes the backend never unpickles\x00" * 4)


def bundle_manifest(
    *,
    name: str = "s1",
    feature_names: list[str] | None = None,
    symbol: str = "GOOG",
    timeframe: str = "1d",
    weights: bytes = WEIGHTS,
) -> dict:
    """A complete ``bundle.json`` (the ktrdr-core schema) for a small model on ``symbol``."""
    features = feature_names or ["1d_rsi_zone_oversold", "1d_rsi_zone_overbought"]
    weights = torch_like_weights(weights)
    per_class = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 10}
    part = {
        "start": "2020-01-01T00:00:00Z",
        "end": "2020-06-01T00:00:00Z",
        "samples": 30,
        "class_counts": {"BUY": 10, "HOLD": 10, "SELL": 10},
    }
    return {
        "format": BUNDLE_FORMAT,
        "created_at": "2025-01-06T12:00:00Z",
        "strategy": {"name": name, "hash": "ab" * 32, "text": f"name: {name}\n", "config": {}},
        "feature_names": features,
        "model": {"type": "mlp", "hidden_layers": [8], "dropout": 0.0},
        "training": {"epochs": 3},
        "labels": {"method": "forward_return"},
        "decisions": {"confidence_threshold": 0.5},
        "backtest": {"capital": 10_000.0},
        "timeframe": timeframe,
        "extra_timeframes": [],
        "warmup_bars": 14,
        "data": [
            {
                "symbol": symbol,
                "timeframe": timeframe,
                "checksum": "cd" * 32,
                "rows": 100,
                "first": "2020-01-01T00:00:00Z",
                "last": "2020-12-31T00:00:00Z",
                "samples": {"train": 30, "validation": 30, "test": 30},
            }
        ],
        "splits": {"train": part, "validation": part, "test": part},
        "seed": 7,
        "device": "cpu",
        "versions": {"ktrdr-core": "0.1.0"},
        "history": [],
        "best_epoch": 1,
        "test_metrics": {
            "samples": 30,
            "accuracy": 0.5,
            "balanced_accuracy": 0.5,
            "per_class": {"BUY": per_class, "HOLD": per_class, "SELL": per_class},
            "confusion_matrix": [[5, 5, 0], [0, 5, 5], [5, 0, 5]],
            "baseline": {"class": "HOLD", "accuracy": 0.34, "balanced_accuracy": 1 / 3},
        },
        "explanations": [],
        "weights": {
            "file": "weights.pt",
            "sha256": hashlib.sha256(weights).hexdigest(),
            "bytes": len(weights),
            "n_features": len(features),
            "parameters": 51,
        },
    }


def bundle_bytes(*, weights: bytes = WEIGHTS, **manifest_changes) -> bytes:
    """A real model bundle written by ktrdr_core.bundles.write_bundle (manifest checked);
    other ``weights`` give another bundle (another sha256)."""
    weights = torch_like_weights(weights)
    return write_bundle(bundle_manifest(weights=weights, **manifest_changes), weights)


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
