"""Model bundles crafted to run code when their weights are unpickled: the payload, if ever
called, creates a marker file. Built with the standard library (no torch)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import sys
import zipfile
from pathlib import Path


class _OpensMarker:
    """Unpickling this calls ``open(marker, "w")``: the file appears only if code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _api_support():
    """tests/api/api_support.py (the bundle manifest helpers), imported by path."""
    if "api_support" not in sys.modules:
        path = Path(__file__).parent.parent / "api" / "api_support.py"
        spec = importlib.util.spec_from_file_location("api_support", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["api_support"] = module
        spec.loader.exec_module(module)
    return sys.modules["api_support"]


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
    support = _api_support()
    weights = evil_weights(marker, as_archive=as_archive)
    from ktrdr_core.bundles import write_bundle

    manifest = support.bundle_manifest()
    manifest["weights"] |= {"sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    return write_bundle(manifest, weights)
