"""Model bundles: the zip file of a trained model, read and written with the standard library.

A bundle is a zip archive holding two members:

- ``bundle.json`` — the :class:`BundleManifest` below (UTF-8 JSON): which strategy (its text,
  validated form and hash), the ordered feature names the model expects, the network spec,
  label, decision and backtest settings, which data it was trained on (checksums, ranges of
  the train / validation / test parts), seed, device, package versions, training history,
  test metrics and explanations;
- ``weights.safetensors`` — the network's ``state_dict`` in the safetensors format (a JSON
  header naming each tensor's dtype, shape and byte range, then the raw bytes): no pickle, so
  opening a bundle can never run code, and torch and numpy both read it. Its sha256 is in the
  manifest and checked on every read, and its header is checked here (:func:`check_weights`).

The backend lists and describes bundles with :func:`read_manifest` alone — no torch, no numpy.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import ClassificationMetrics, EpochRecord, ExplanationRow, PartRange

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST_NAME",
    "WEIGHTS_NAME",
    "BundleError",
    "BundleManifest",
    "DataRecord",
    "StrategyRecord",
    "TensorInfo",
    "WeightsRecord",
    "check_weights",
    "read_bundle",
    "read_manifest",
    "write_bundle",
]

BUNDLE_FORMAT = "ktrdr-model-bundle/2"
# Formats this version recognises but no longer reads, with what changed; never converted.
PREVIOUS_FORMATS = {
    "ktrdr-model-bundle/1": "its weights are a torch.save pickle (weights.pt); bundles now "
    "carry safetensors weights, which need no pickle and no torch to read",
}
MANIFEST_NAME = "bundle.json"
WEIGHTS_NAME = "weights.safetensors"
# Refuse absurd members before reading them into memory (a bundle is a few MB at most).
_MAX_MEMBER_BYTES = 1 << 30
# A safetensors header names a handful of tensors here; the format itself caps it at 100 MB.
_MAX_HEADER_BYTES = 100 * 1024 * 1024

BundleSource = str | Path | bytes

# safetensors dtype -> bytes per element (https://github.com/huggingface/safetensors, format).
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class BundleError(KtrdrError, ValueError):
    """A file that is not a usable model bundle; the message says what is wrong with it."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrategyRecord(_Record):
    """The strategy a bundle was trained from."""

    name: str
    hash: str = Field(description="sha256 of the strategy's canonical JSON form.")
    text: str = Field(description="The strategy file as written (YAML), or its JSON form.")
    config: dict[str, Any] = Field(
        description="The validated strategy with defaults filled in (loadable by load_strategy)."
    )


class DataRecord(_Record):
    """One symbol's market data used for training."""

    symbol: str
    timeframe: str
    checksum: str = Field(description="sha256 of the OHLCV values and timestamps used.")
    rows: int = Field(description="Bars of the base timeframe given to training.")
    first: datetime
    last: datetime
    samples: dict[Literal["train", "validation", "test"], int]


class WeightsRecord(_Record):
    file: str = WEIGHTS_NAME
    sha256: str
    bytes: int
    n_features: int
    parameters: int = Field(description="Trainable parameters of the network.")


class BundleManifest(_Record):
    """``bundle.json``: everything known about a trained model except its weights."""

    format: Literal["ktrdr-model-bundle/2"] = BUNDLE_FORMAT
    created_at: datetime
    strategy: StrategyRecord
    feature_names: list[str] = Field(description="Model inputs, in order; checked at inference.")
    model: dict[str, Any] = Field(description="Network spec: type, hidden_layers, ….")
    training: dict[str, Any] = Field(description="Training settings actually used.")
    labels: dict[str, Any] = Field(description="Label settings and per-symbol label reports.")
    decisions: dict[str, Any]
    backtest: dict[str, Any]
    timeframe: str
    extra_timeframes: list[str]
    warmup_bars: int = Field(
        description="Base-timeframe bars before a sample that its features needed (the most "
        "any feature row needed during training); a backtest prepends at least this many."
    )
    data: list[DataRecord]
    splits: dict[Literal["train", "validation", "test"], PartRange]
    seed: int
    device: str
    versions: dict[str, str]
    history: list[EpochRecord]
    best_epoch: int
    test_metrics: ClassificationMetrics
    explanations: list[ExplanationRow]
    weights: WeightsRecord

    @property
    def symbols(self) -> list[str]:
        return [record.symbol for record in self.data]

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready description for listings (no history, no explanations)."""
        top = self.explanations[0].text if self.explanations else None
        return {
            "strategy": self.strategy.name,
            "strategy_hash": self.strategy.hash,
            "created_at": self.created_at.isoformat(),
            "symbols": self.symbols,
            "timeframe": self.timeframe,
            "model": self.model.get("type"),
            "features": len(self.feature_names),
            "device": self.device,
            "test_accuracy": self.test_metrics.accuracy,
            "test_balanced_accuracy": self.test_metrics.balanced_accuracy,
            "baseline_accuracy": self.test_metrics.baseline.accuracy,
            "test_period": [
                _iso(self.splits["test"].start),
                _iso(self.splits["test"].end),
            ],
            "top_explanation": top,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _open_zip(source: BundleSource) -> zipfile.ZipFile:
    where = "bundle bytes" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            return zipfile.ZipFile(io.BytesIO(source))
        return zipfile.ZipFile(Path(source))
    except FileNotFoundError:
        raise BundleError(f"{where}: no such file") from None
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{where}: not a zip archive ({exc}); is this a model bundle?") from None


def _member(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise BundleError(
            f"{where}: missing {name} (members: {', '.join(archive.namelist()) or 'none'})"
        ) from None
    if info.file_size > _MAX_MEMBER_BYTES:
        raise BundleError(f"{where}: {name} is {info.file_size} bytes, larger than allowed")
    return archive.read(info)


def _previous_format(found: str, data: dict[str, Any], where: str) -> BundleError:
    """The refusal of a bundle in an older format: who wrote it and what to do instead."""
    versions = data.get("versions")
    versions = versions if isinstance(versions, dict) else {}
    writer = versions.get("ktrdr-worker") or versions.get("ktrdr-core") or "(version unknown)"
    strategy = data.get("strategy")
    name = strategy.get("name") if isinstance(strategy, dict) else None
    return BundleError(
        f"{where}: bundle format {found!r}, written by ktrdr-worker {writer}: "
        f"{PREVIOUS_FORMATS[found]}. This version reads {BUNDLE_FORMAT!r} only and does not "
        "convert old bundles. Retrain the model with this version: its strategy"
        f"{f' ({name})' if name else ''} is inside the bundle (`unzip -p BUNDLE bundle.json`, "
        "key strategy.text); save it as a YAML file and run `ktrdr train FILE`. To keep using "
        f"the old model as it is, run it with ktrdr {writer}."
    )


def _manifest_from(archive: zipfile.ZipFile, where: str) -> BundleManifest:
    raw = _member(archive, MANIFEST_NAME, where)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: {MANIFEST_NAME} is not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{where}: {MANIFEST_NAME} must hold a JSON object")
    found = data.get("format")
    if found in PREVIOUS_FORMATS:
        raise _previous_format(found, data, where)
    if found != BUNDLE_FORMAT:
        raise BundleError(
            f"{where}: bundle format {found!r} is not {BUNDLE_FORMAT!r}; "
            "retrain the model with this version of ktrdr"
        )
    try:
        return BundleManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise BundleError(
            f"{where}: {MANIFEST_NAME} is invalid at {path}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: dtype name, shape, and byte range in the data part."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"the key {twice!r} appears twice")
    return dict(pairs)


def _read_exactly(source: IO[bytes], count: int, what: str, where: str) -> bytes:
    data = source.read(count)
    if len(data) != count:
        raise BundleError(f"{where}: ends inside its {what} (not a safetensors file?)")
    return data


def check_weights(
    weights: bytes | IO[bytes], where: str, *, size: int | None = None
) -> dict[str, TensorInfo]:
    """Check that ``weights`` is a well-formed safetensors file; return its tensors by name.

    ``weights``: the member's bytes, or a file object positioned at its start together with
    its total ``size`` (only the header is read from it). Checked: the 8-byte header length
    fits the file, the header is a UTF-8 JSON object without repeated keys, every tensor has
    a known dtype, a shape of non-negative integers and a byte range that holds exactly that
    shape, and the ranges tile the data part without gaps or overlaps, as the format requires.
    Raises :class:`BundleError` naming the first problem and the tensor.
    """
    if isinstance(weights, bytes):
        size = len(weights)
        source: IO[bytes] = io.BytesIO(weights)
    elif size is None:
        raise TypeError("check_weights needs size= with a file object")
    else:
        source = weights
    if size < 8:
        raise BundleError(f"{where}: {size} bytes, too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", _read_exactly(source, 8, "header length", where))
    if header_len > min(size - 8, _MAX_HEADER_BYTES):
        raise BundleError(
            f"{where}: its header claims {header_len} bytes but the file has {size - 8} after "
            "the length field: not a safetensors file, or a truncated one"
        )
    raw = _read_exactly(source, header_len, "header", where)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{where}: the safetensors header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise BundleError(f"{where}: the safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BundleError(f"{where}: __metadata__ must map strings to strings")
    data_len = size - 8 - header_len
    tensors = {name: _tensor_info(name, entry, data_len, where) for name, entry in header.items()}
    covered = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if info.start != covered:
            problem = "overlaps another" if info.start < covered else "leaves a gap before it"
            raise BundleError(
                f"{where}: tensor {name!r} starts at byte {info.start} and {problem}: "
                "the data part must be tiled exactly"
            )
        covered = info.end
    if covered != data_len:
        raise BundleError(
            f"{where}: the tensors cover {covered} of the {data_len} data bytes; "
            "the data part must be tiled exactly"
        )
    return tensors


def _tensor_info(name: str, entry: Any, data_len: int, where: str) -> TensorInfo:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise BundleError(
            f"{where}: tensor {name!r} must be an object with exactly dtype, shape and data_offsets"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _DTYPE_BYTES:
        raise BundleError(
            f"{where}: tensor {name!r} has dtype {dtype!r}, not one of {', '.join(_DTYPE_BYTES)}"
        )

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(shape, list) or not all(whole(n) for n in shape):
        raise BundleError(f"{where}: tensor {name!r} has shape {shape!r}, not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(whole(n) for n in offsets)
        or not offsets[0] <= offsets[1] <= data_len
    ):
        raise BundleError(
            f"{where}: tensor {name!r} has data_offsets {offsets!r}, not a range within the "
            f"{data_len} data bytes"
        )
    expected = math.prod(shape) * _DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != expected:
        raise BundleError(
            f"{where}: tensor {name!r} ({dtype} {shape}) needs {expected} bytes, its range "
            f"holds {offsets[1] - offsets[0]}"
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape), start=offsets[0], end=offsets[1])


def read_manifest(source: BundleSource) -> BundleManifest:
    """Read and validate ``bundle.json`` of a bundle (a path or the zip's bytes).

    Does not read the weights; use :func:`read_bundle` to get them verified.
    Raises :class:`BundleError` saying what is wrong and where.
    """
    where = "bundle bytes" if isinstance(source, bytes) else str(source)
    with _open_zip(source) as archive:
        return _manifest_from(archive, where)


def read_bundle(source: BundleSource) -> tuple[BundleManifest, bytes]:
    """The manifest and the weights' bytes, after checking the weights' sha256, size and
    safetensors header."""
    where = "bundle bytes" if isinstance(source, bytes) else str(source)
    with _open_zip(source) as archive:
        manifest = _manifest_from(archive, where)
        weights = _member(archive, manifest.weights.file, where)
    digest = hashlib.sha256(weights).hexdigest()
    if digest != manifest.weights.sha256 or len(weights) != manifest.weights.bytes:
        raise BundleError(
            f"{where}: {manifest.weights.file} does not match bundle.json (sha256 {digest[:12]}… "
            f"vs {manifest.weights.sha256[:12]}…): the bundle is corrupt or was altered"
        )
    check_weights(weights, f"{where}: {manifest.weights.file}")
    return manifest, weights


def write_bundle(manifest: BundleManifest | dict[str, Any], weights: bytes) -> bytes:
    """The bytes of a bundle holding ``manifest`` (checked) and ``weights``.

    ``manifest.weights`` must describe ``weights`` (sha256 and size), else :class:`BundleError`.
    """
    if isinstance(manifest, dict):
        try:
            manifest = BundleManifest.model_validate(manifest)
        except ValidationError as exc:
            raise BundleError(f"bundle manifest is invalid: {exc}") from None
    digest = hashlib.sha256(weights).hexdigest()
    if manifest.weights.sha256 != digest or manifest.weights.bytes != len(weights):
        raise BundleError("manifest.weights must carry the sha256 and size of the weights given")
    check_weights(weights, "the weights given")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, manifest.model_dump_json(indent=2, by_alias=True))
        archive.writestr(manifest.weights.file, weights)
    return buffer.getvalue()
