"""Model bundles: the zip file of a trained model, read and written with the standard library.

A bundle is a zip archive holding two members:

- ``bundle.json`` — the :class:`BundleManifest` below (UTF-8 JSON): which strategy (its text,
  validated form and hash), the ordered feature names the model expects, the network spec,
  label, decision and backtest settings, which data it was trained on (checksums, ranges of
  the train / validation / test parts), seed, device, package versions, training history,
  test metrics and explanations;
- ``weights.pt`` — the network's ``state_dict`` written by ``torch.save``; the worker loads it
  with ``weights_only=True`` (tensors only, never arbitrary pickles). Its sha256 is in the
  manifest and checked on every read.

The backend lists and describes bundles with :func:`read_manifest` alone — no torch, no numpy.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickletools
import zipfile
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
    "WeightsRecord",
    "check_weights",
    "read_bundle",
    "read_manifest",
    "write_bundle",
]

BUNDLE_FORMAT = "ktrdr-model-bundle/1"
MANIFEST_NAME = "bundle.json"
WEIGHTS_NAME = "weights.pt"
# Refuse absurd members before reading them into memory (a bundle is a few MB at most).
_MAX_MEMBER_BYTES = 1 << 30

BundleSource = str | Path | bytes

# What a torch.save'd state dict of tensors may name in its pickle; anything else (os.system,
# builtins.eval, …) is code that would run on an unrestricted load. The worker loads with
# weights_only=True anyway; this lets the backend, which has no torch, refuse such a file.
_TENSOR_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte")
_ALLOWED_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "BoolStorage"),
        *(("torch", f"{kind}Storage") for kind in _TENSOR_STORAGES),
    }
)
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_MEMO_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"})


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

    format: Literal["ktrdr-model-bundle/1"] = BUNDLE_FORMAT
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


def _manifest_from(archive: zipfile.ZipFile, where: str) -> BundleManifest:
    raw = _member(archive, MANIFEST_NAME, where)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: {MANIFEST_NAME} is not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{where}: {MANIFEST_NAME} must hold a JSON object")
    found = data.get("format")
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


def check_weights(weights: bytes | IO[bytes], where: str) -> None:
    """Refuse weights that are not a ``torch.save`` archive of plain tensors.

    ``weights``: the member's bytes or a seekable file object. Every pickle in the archive is
    scanned (``pickletools``, nothing is unpickled) and may only name the tensor-rebuilding
    globals of a state dict. Raises :class:`BundleError` naming the first offending global.
    """
    source = io.BytesIO(weights) if isinstance(weights, bytes) else weights
    try:
        with zipfile.ZipFile(source) as archive:
            pickles = [name for name in archive.namelist() if name.endswith(".pkl")]
            if not pickles:
                raise BundleError(f"{where}: holds no data.pkl; it was not written by torch.save")
            for name in pickles:
                with archive.open(name) as member:
                    _check_pickle(member.read(), f"{where} ({name})")
    except zipfile.BadZipFile:
        raise BundleError(
            f"{where}: not a torch.save archive (a zip holding data.pkl); refusing to load it"
        ) from None


def _check_pickle(data: bytes, where: str) -> None:
    strings: list[str] = []  # string constants just pushed: STACK_GLOBAL's module and name
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attribute = str(arg).partition(" ")
                found = (module, attribute)
            elif name == "STACK_GLOBAL":
                if len(strings) < 2:
                    raise BundleError(f"{where}: names a global indirectly; refusing to load it")
                found = (strings[-2], strings[-1])
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise BundleError(f"{where}: uses the pickle extension registry; refusing it")
            else:
                if name in _STRING_OPS:
                    strings.append(str(arg))
                elif name not in _MEMO_OPS:
                    strings.clear()
                continue
            if found not in _ALLOWED_GLOBALS:
                raise BundleError(
                    f"{where}: its pickle calls {found[0]}.{found[1]}, which a state dict of "
                    "tensors never does: the file may run code when loaded; refusing it"
                )
    except BundleError:
        raise
    except ValueError as exc:  # pickletools on a truncated or corrupt stream
        raise BundleError(f"{where}: not a readable pickle ({exc})") from None


def read_manifest(source: BundleSource) -> BundleManifest:
    """Read and validate ``bundle.json`` of a bundle (a path or the zip's bytes).

    Does not read the weights; use :func:`read_bundle` to get them verified.
    Raises :class:`BundleError` saying what is wrong and where.
    """
    where = "bundle bytes" if isinstance(source, bytes) else str(source)
    with _open_zip(source) as archive:
        return _manifest_from(archive, where)


def read_bundle(source: BundleSource) -> tuple[BundleManifest, bytes]:
    """The manifest and the weights' bytes, after checking the weights' sha256 and size."""
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
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, manifest.model_dump_json(indent=2, by_alias=True))
        archive.writestr(manifest.weights.file, weights)
    return buffer.getvalue()
