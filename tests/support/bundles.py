"""Model bundles for the tests, built with the standard library (no torch): honest ones (a
complete manifest, torch.save-shaped weights the backend scans but never unpickles), and evil
ones whose weights run code when unpickled (the payload, if ever called, creates a marker
file)."""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

from ktrdr_core.bundles import BUNDLE_FORMAT, write_bundle


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


class _OpensMarker:
    """Unpickling this calls ``open(marker, "w")``: the file appears only if code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_weights(marker: Path, *, as_archive: bool) -> bytes:
    """A state dict whose one "tensor" is the payload: inside a torch.save-shaped zip
    (``as_archive``) or as a bare pickle (torch's legacy format)."""
    payload = pickle.dumps({"standardise.mean": _OpensMarker(marker)}, protocol=2)
    if not as_archive:
        return payload
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def evil_bundle(marker: Path, *, as_archive: bool) -> bytes:
    """A bundle whose manifest is valid and records the evil weights' true sha256."""
    weights = evil_weights(marker, as_archive=as_archive)
    manifest = bundle_manifest()
    manifest["weights"] |= {"sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    return write_bundle(manifest, weights)
