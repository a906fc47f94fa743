"""Writing and opening model bundles on the worker (the format lives in ``ktrdr_core.bundles``).

Weights travel as numpy arrays: a bundle is written from a ``state_dict`` converted to arrays
(``ktrdr_worker.models.networks.state_arrays``) and opened back into arrays, with safetensors.
Nothing here imports torch, so a backtest worker without torch opens bundles too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from ktrdr_core.bundles import (
    WEIGHTS_NAME,
    BundleError,
    BundleManifest,
    BundleSource,
    read_bundle,
    read_manifest,
    write_bundle,
)
from ktrdr_worker.models.spec import ModelSpecError, NetworkSpec

__all__ = ["bundle_bytes", "describe_bundle", "open_bundle", "save_bundle"]

# The tensor whose length is the number of inputs (the training set's per-feature means).
_INPUT_TENSOR = "standardise.mean"


def bundle_bytes(
    manifest: dict[str, Any], state: Mapping[str, np.ndarray], parameters: int
) -> bytes:
    """The zip bytes of a bundle: ``manifest`` (every :class:`BundleManifest` field but
    ``weights``, which is filled in here) beside ``state``, the network's tensors by
    ``state_dict`` name, written as safetensors; ``parameters`` counts the trainable ones."""
    arrays = {key: np.ascontiguousarray(value) for key, value in state.items()}
    weights = safetensors.numpy.save(arrays)
    mean = arrays.get(_INPUT_TENSOR)
    record = {
        "file": WEIGHTS_NAME,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "bytes": len(weights),
        "n_features": int(mean.shape[0]) if mean is not None else 0,
        "parameters": int(parameters),
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


def open_bundle(
    source: BundleSource,
) -> tuple[BundleManifest, NetworkSpec, dict[str, np.ndarray]]:
    """A bundle's manifest, network spec and weights (numpy arrays by ``state_dict`` name).

    The weights' checksum and safetensors header are verified by ``ktrdr_core.bundles``; a
    spec that cannot be built, or weights for another number of features than the manifest
    lists, raise :class:`~ktrdr_core.bundles.BundleError`.
    """
    manifest, weights = read_bundle(source)
    where = "bundle bytes" if isinstance(source, bytes) else str(source)
    try:
        spec = NetworkSpec.from_dict(manifest.model)
    except ModelSpecError as exc:
        raise BundleError(f"{where}: bundle.json {exc}") from None
    try:
        state = safetensors.numpy.load(weights)
    except Exception as exc:  # the library's own parse error: the bytes are unusable
        raise BundleError(f"{where}: {manifest.weights.file} cannot be read ({exc})") from None
    mean = state.get(_INPUT_TENSOR)
    n_features = len(manifest.feature_names)
    if mean is None or mean.shape != (n_features,):
        found = "missing" if mean is None else f"of shape {list(mean.shape)}"
        raise BundleError(
            f"{where}: weights do not fit the model in bundle.json: {_INPUT_TENSOR} is "
            f"{found}, expected [{n_features}] for its {n_features} features"
        )
    return manifest, spec, state
