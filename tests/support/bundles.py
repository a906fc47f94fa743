"""Model bundles for the tests, built with the standard library (no torch, no numpy): honest
ones (a complete manifest, safetensors weights written here byte by byte), and evil ones whose
weights are a pickle that runs code when unpickled (the payload, if ever called, creates a
marker file) — in a bundle of today's format, and in the previous format's torch.save shape."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

from ktrdr_core.bundles import BUNDLE_FORMAT, write_bundle


def safetensors_bytes(
    tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    """A safetensors file: name -> (dtype, shape, raw little-endian bytes), in the order given.

    Written from the format's definition (8-byte header length, JSON header, data), so tests
    can also build files that break it; nothing here checks what it is given.
    """
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + b"".join(data for _, _, data in tensors.values())


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def weights_for(n_features: int = 2, marker: bytes = b"") -> bytes:
    """Honest safetensors weights of a 1-hidden-unit MLP over ``n_features`` inputs; ``marker``
    goes into the metadata, so each marker gives other bytes (another sha256)."""
    return safetensors_bytes(
        {
            "standardise.mean": ("F32", [n_features], f32(*[0.0] * n_features)),
            "standardise.std": ("F32", [n_features], f32(*[1.0] * n_features)),
            "body.0.weight": ("F32", [1, n_features], f32(*[0.5] * n_features)),
            "body.0.bias": ("F32", [1], f32(0.0)),
            "body.2.weight": ("F32", [3, 1], f32(1.0, 0.0, -1.0)),
            "body.2.bias": ("F32", [3], f32(0.0, 0.0, 0.0)),
        },
        metadata={"marker": marker.hex()} if marker else None,
    )


WEIGHTS = weights_for()


def bundle_manifest(
    *,
    name: str = "s1",
    feature_names: list[str] | None = None,
    symbol: str = "GOOG",
    timeframe: str = "1d",
    weights: bytes = WEIGHTS,
    period: tuple[str, str] = ("2012-01-03T00:00:00Z", "2012-06-01T00:00:00Z"),
) -> dict:
    """A complete ``bundle.json`` (the ktrdr-core schema) for a small model on ``symbol``;
    ``period``: its parts' (and so its test period's) first and last time, which must lie
    inside the stored data a backtest of it reads (the backend refuses it otherwise)."""
    features = feature_names or ["1d_rsi_zone_oversold", "1d_rsi_zone_overbought"]
    per_class = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 10}
    # The default lies inside GOOG's daily bars (tests.support.market_data: 2004-08-19 …
    # 2013-03-01).
    part = {
        "start": period[0],
        "end": period[1],
        "samples": 30,
        "class_counts": {"BUY": 10, "HOLD": 10, "SELL": 10},
    }
    return {
        "format": BUNDLE_FORMAT,
        "created_at": "2025-01-06T12:00:00Z",
        "strategy": {"name": name, "hash": "ab" * 32, "text": f"name: {name}\n", "config": {}},
        "feature_names": features,
        "model": {"type": "mlp", "hidden_layers": [1], "dropout": 0.0},
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
                "first": period[0],
                "last": max(period[1], "2012-12-31T00:00:00Z"),
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
            "file": "weights.safetensors",
            "sha256": hashlib.sha256(weights).hexdigest(),
            "bytes": len(weights),
            "n_features": len(features),
            "parameters": 3 * len(features) + 5,
        },
    }


def bundle_bytes(*, weights: bytes | None = None, **manifest_changes) -> bytes:
    """A real model bundle written by ktrdr_core.bundles.write_bundle (manifest checked);
    ``weights``: a marker that gives another bundle (another sha256)."""
    n_features = len(manifest_changes.get("feature_names") or [None, None])
    real = weights_for(n_features, weights or b"")
    return write_bundle(bundle_manifest(weights=real, **manifest_changes), real)


class _OpensMarker:
    """Unpickling this calls ``open(marker, "w")``: the file appears only if code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_weights(marker: Path, *, as_archive: bool) -> bytes:
    """A state dict whose one "tensor" is the payload: inside a torch.save-shaped zip
    (``as_archive``, the previous bundle format's weights) or as a bare pickle."""
    payload = pickle.dumps({"standardise.mean": _OpensMarker(marker)}, protocol=2)
    if not as_archive:
        return payload
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def evil_bundle(marker: Path, *, as_archive: bool) -> bytes:
    """A bundle of today's format whose manifest is valid and records the evil weights' true
    sha256 (written without write_bundle, which refuses weights that are not safetensors)."""
    weights = evil_weights(marker, as_archive=as_archive)
    manifest = bundle_manifest()
    manifest["weights"] |= {"sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    return zip_members(
        {"bundle.json": json.dumps(manifest).encode(), "weights.safetensors": weights}
    )


def previous_format_bundle(marker: Path) -> bytes:
    """A bundle as ktrdr-model-bundle/1 wrote it: torch.save-shaped weights.pt (here the evil
    payload, which must never be unpickled) beside a manifest of that format."""
    weights = evil_weights(marker, as_archive=True)
    manifest = bundle_manifest()
    manifest["format"] = "ktrdr-model-bundle/1"
    manifest["versions"] = {"ktrdr-core": "0.1.0", "ktrdr-worker": "0.1.0"}
    manifest["weights"] |= {
        "file": "weights.pt",
        "sha256": hashlib.sha256(weights).hexdigest(),
        "bytes": len(weights),
    }
    return zip_members({"bundle.json": json.dumps(manifest).encode(), "weights.pt": weights})


def zip_members(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def seed_model(api, folder: Path) -> str:  # type: ignore[no-untyped-def]
    """EURUSD hourly data and an imported model trained on it, on ``api`` (an ApiServer):
    backtests can be created. Returns the model's id."""
    from tests.support.market_data import eurusd_csv

    with api.client() as client:
        client.import_data("EURUSD", "1h", eurusd_csv(folder / "eurusd.csv"))
        bundle = folder / "model.zip"
        # Inside the EURUSD bars (2017-04-19 … 2018-02-07), past the model's warm-up.
        period = ("2017-06-01T00:00:00Z", "2018-01-31T00:00:00Z")
        bundle.write_bytes(bundle_bytes(symbol="EURUSD", timeframe="1h", period=period))
        return client.import_model(bundle).model_id
