"""Writing and opening model bundles on the worker (the format lives in ``ktrdr_core.bundles``).

The public functions take and return paths, bytes and plain dicts; torch objects stay inside
this package. Weights are a ``state_dict`` saved with ``torch.save`` and loaded back with
``weights_only=True``, so opening a bundle never runs pickled code.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ktrdr_core.bundles import (
    WEIGHTS_NAME,
    BundleError,
    BundleManifest,
    BundleSource,
    read_bundle,
    read_manifest,
    write_bundle,
)
from ktrdr_worker.models.networks import NetworkSpec, build_network

__all__ = ["bundle_bytes", "describe_bundle", "load_network", "save_bundle"]


def _weights_bytes(network: nn.Module) -> bytes:
    buffer = io.BytesIO()
    state = {
        key: value.detach().to("cpu").contiguous() for key, value in network.state_dict().items()
    }
    torch.save(state, buffer)
    return buffer.getvalue()


def bundle_bytes(manifest: dict[str, Any], network: nn.Module) -> bytes:
    """The zip bytes of a bundle: ``manifest`` (every :class:`BundleManifest` field but
    ``weights``, which is filled in here) beside the network's weights."""
    weights = _weights_bytes(network)
    first = next(iter(network.state_dict().values()), None)
    n_features = int(network.standardise.mean.shape[0]) if first is not None else 0
    record = {
        "file": WEIGHTS_NAME,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "bytes": len(weights),
        "n_features": n_features,
        "parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
    }
    return write_bundle({**manifest, "weights": record}, weights)


def save_bundle(data: bytes, path: str | Path) -> Path:
    """Write bundle bytes to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def describe_bundle(source: BundleSource) -> dict[str, Any]:
    """The bundle's ``bundle.json`` as a plain dict (JSON types)."""
    return read_manifest(source).model_dump(mode="json", by_alias=True)


def load_network(source: BundleSource) -> tuple[BundleManifest, NetworkSpec, nn.Module]:
    """Open a bundle: its manifest, network spec and network (CPU, eval mode).

    The weights' checksum is verified and they are loaded with ``weights_only=True``; a state
    dict that does not fit the spec raises :class:`~ktrdr_core.bundles.BundleError`.
    """
    manifest, weights = read_bundle(source)
    spec = NetworkSpec.from_dict(manifest.model)
    where = "bundle bytes" if isinstance(source, bytes) else str(source)
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling refusal or a corrupt stream: both mean unusable
        raise BundleError(f"{where}: weights cannot be loaded safely ({exc})") from None
    network = build_network(spec, len(manifest.feature_names))
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise BundleError(f"{where}: weights do not fit the model in bundle.json ({exc})") from None
    network.eval()
    return manifest, spec, network
