"""Model bundles read with the standard library: the backend lists models without torch."""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import subprocess
import sys
import zipfile

import pytest

from ktrdr_core.bundles import (
    BUNDLE_FORMAT,
    BundleError,
    TensorInfo,
    check_weights,
    read_bundle,
    read_manifest,
    write_bundle,
)
from tests.support.bundles import f32, previous_format_bundle, safetensors_bytes, weights_for

WEIGHTS = weights_for()


def _metrics() -> dict:
    per_class = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 10}
    return {
        "samples": 30,
        "accuracy": 0.5,
        "balanced_accuracy": 0.5,
        "per_class": {"BUY": per_class, "HOLD": per_class, "SELL": per_class},
        "confusion_matrix": [[5, 5, 0], [0, 5, 5], [5, 0, 5]],
        "baseline": {"class": "HOLD", "accuracy": 0.34, "balanced_accuracy": 1 / 3},
    }


def _manifest(weights: bytes = WEIGHTS) -> dict:
    part = {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-02-01T00:00:00Z",
        "samples": 30,
        "class_counts": {"BUY": 10, "HOLD": 10, "SELL": 10},
    }
    return {
        "created_at": "2024-03-01T12:00:00Z",
        "strategy": {"name": "demo", "hash": "ab" * 32, "text": "name: demo\n", "config": {}},
        "feature_names": ["1h_rsi_zone_oversold", "1h_rsi_zone_overbought"],
        "model": {
            "type": "mlp",
            "hidden_layers": [8],
            "activation": "relu",
            "dropout": 0.0,
            "window": 1,
        },
        "training": {"epochs": 3},
        "labels": {"method": "zigzag"},
        "decisions": {"confidence_threshold": 0.5},
        "backtest": {"capital": 1000.0},
        "timeframe": "1h",
        "extra_timeframes": [],
        "warmup_bars": 14,
        "data": [
            {
                "symbol": "EURUSD",
                "timeframe": "1h",
                "checksum": "cd" * 32,
                "rows": 100,
                "first": "2024-01-01T00:00:00Z",
                "last": "2024-03-01T00:00:00Z",
                "samples": {"train": 30, "validation": 30, "test": 30},
            }
        ],
        "splits": {"train": part, "validation": part, "test": part},
        "seed": 7,
        "device": "cpu",
        "versions": {"ktrdr-core": "0.1.0"},
        "history": [],
        "best_epoch": 1,
        "test_metrics": _metrics(),
        "explanations": [
            {
                "rank": 1,
                "feature": "1h_rsi_zone_oversold",
                "importance": 0.2,
                "importance_std": 0.01,
                "balanced_accuracy_drop": 0.1,
                "gradients": {"BUY": 0.2, "HOLD": 0.0, "SELL": -0.2},
                "pushes_towards": "BUY",
                "direction": "high",
                "text": "`1h_rsi_zone_oversold` high → BUY",
            }
        ],
        "weights": {
            "file": "weights.safetensors",
            "sha256": hashlib.sha256(weights).hexdigest(),
            "bytes": len(weights),
            "n_features": 2,
            "parameters": 51,
        },
    }


def test_a_bundle_round_trips_and_describes_itself(tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(write_bundle(_manifest(), WEIGHTS))
    manifest, weights = read_bundle(path)
    assert weights == WEIGHTS
    assert manifest.feature_names == ["1h_rsi_zone_oversold", "1h_rsi_zone_overbought"]
    summary = read_manifest(path.read_bytes()).summary()
    assert summary["symbols"] == ["EURUSD"]
    assert summary["top_explanation"] == "`1h_rsi_zone_oversold` high → BUY"
    assert summary["baseline_accuracy"] == 0.34
    # bundle.json is plain JSON that any zip tool can read.
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("bundle.json"))["seed"] == 7


def test_reading_a_bundle_needs_no_numeric_library(tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(write_bundle(_manifest(), WEIGHTS))
    code = (
        "import sys\n"
        "for name in ('numpy', 'pandas', 'torch', 'sklearn'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "from ktrdr_core.bundles import read_bundle\n"
        f"manifest, _ = read_bundle({str(path)!r})\n"
        "print(manifest.strategy.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "demo"


def test_weights_that_do_not_match_the_manifest_are_refused():
    bundle = write_bundle(_manifest(), WEIGHTS)
    source = zipfile.ZipFile(io.BytesIO(bundle))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("bundle.json", source.read("bundle.json"))
        target.writestr("weights.safetensors", WEIGHTS.replace(b"F32", b"I32"))
    with pytest.raises(BundleError, match="corrupt or was altered"):
        read_bundle(out.getvalue())
    with pytest.raises(BundleError, match="sha256 and size"):
        write_bundle(_manifest(), WEIGHTS + b"!")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"plain text", "not a zip archive"),
        ({"weights.safetensors": WEIGHTS}, "missing bundle.json"),
        ({"bundle.json": b"{nope"}, "not UTF-8 JSON"),
        ({"bundle.json": json.dumps({"format": "other/9"}).encode()}, "retrain the model"),
        (
            {"bundle.json": json.dumps({**_manifest(), "format": BUNDLE_FORMAT, "seed": "x"})},
            "invalid at seed",
        ),
    ],
)
def test_broken_bundles_say_what_is_wrong(content, message):
    if isinstance(content, dict):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, data in content.items():
                archive.writestr(name, data)  # str members are written as UTF-8
        content = out.getvalue()
    with pytest.raises(BundleError, match=message):
        read_manifest(content)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        read_manifest(tmp_path / "absent.zip")


def test_weights_written_by_the_safetensors_library_pass_the_standard_library_check():
    numpy = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    data = safetensors_numpy.save(
        {
            "head.weight": numpy.arange(6, dtype=numpy.float32).reshape(3, 2),
            "head.bias": numpy.zeros(3, dtype=numpy.float32),
            "steps": numpy.array([7], dtype=numpy.int64),
        }
    )
    tensors = check_weights(data, "w")
    assert tensors["head.weight"].dtype == "F32" and tensors["head.weight"].shape == (3, 2)
    assert tensors["steps"] == TensorInfo("I64", (1,), tensors["steps"].start, tensors["steps"].end)
    assert sum(info.end - info.start for info in tensors.values()) == 24 + 12 + 8


def _with_header(header: dict | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


TWO_F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (b"PK\x03", "too short for a safetensors file"),
        (struct.pack("<Q", 1 << 40) + b"{}", "header claims 1099511627776 bytes"),
        (_with_header(b"\xff\xfe"), "not UTF-8 JSON"),
        (_with_header(b"[1, 2]"), "must be a JSON object"),
        (_with_header(b'{"a": {}, "a": {}}'), "the key 'a' appears twice"),
        (_with_header({"__metadata__": {"k": 1}}), "__metadata__ must map strings to strings"),
        (_with_header({"w": {"dtype": "F32", "shape": [2]}}, f32(1, 2)), "tensor 'w' must be"),
        (
            _with_header({"w": {**TWO_F32, "dtype": "complex64"}}, f32(1, 2)),
            "tensor 'w' has dtype 'complex64'",
        ),
        (_with_header({"w": {**TWO_F32, "shape": [-2]}}, f32(1, 2)), "shape [-2]"),
        (
            _with_header({"w": {**TWO_F32, "data_offsets": [0, 16]}}, f32(1, 2)),
            "not a range within the 8 data bytes",
        ),
        (_with_header({"w": {**TWO_F32, "shape": [3]}}, f32(1, 2)), "needs 12 bytes"),
        (
            _with_header({"a": TWO_F32, "b": {**TWO_F32, "data_offsets": [4, 12]}}, f32(1, 2, 3)),
            "overlaps another",
        ),
        (
            _with_header({"w": {**TWO_F32, "data_offsets": [4, 12]}}, f32(1, 2, 3)),
            "leaves a gap before it",
        ),
        (_with_header({"w": TWO_F32}, f32(1, 2, 3)), "cover 8 of the 12 data bytes"),
    ],
    ids=[
        "short",
        "header-beyond-file",
        "not-utf8",
        "not-object",
        "duplicate-key",
        "bad-metadata",
        "missing-field",
        "unknown-dtype",
        "negative-shape",
        "offsets-beyond-data",
        "size-mismatch",
        "overlap",
        "gap",
        "trailing-bytes",
    ],
)
def test_malformed_safetensors_weights_are_refused_naming_the_problem(weights, message):
    with pytest.raises(BundleError, match=re.escape(message)):
        check_weights(weights, "w")
    with pytest.raises(BundleError, match=re.escape(message)):
        check_weights(io.BytesIO(weights), "w", size=len(weights))
    manifest = _manifest(weights)
    with pytest.raises(BundleError, match=re.escape(message)):
        write_bundle(manifest, weights)


def test_the_standard_library_writer_here_makes_valid_files():
    data = safetensors_bytes({"x": ("F32", [2], f32(1, 2)), "y": ("U8", [0], b"")})
    assert set(check_weights(data, "w")) == {"x", "y"}


def test_a_bundle_in_the_previous_format_names_its_writer_and_what_to_do(tmp_path):
    marker = tmp_path / "code-ran"
    with pytest.raises(BundleError) as caught:
        read_bundle(previous_format_bundle(marker))
    message = str(caught.value)
    assert "'ktrdr-model-bundle/1', written by ktrdr-worker 0.1.0" in message
    assert "torch.save pickle" in message and "does not convert" in message
    assert "ktrdr train FILE" in message and "strategy.text" in message
    assert not marker.exists()
