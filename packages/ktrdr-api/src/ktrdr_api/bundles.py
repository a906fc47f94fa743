"""Read a model bundle's metadata without torch: ``bundle.json`` inside a zip file.

Only that one JSON member is read; the weights are never opened here, let alone unpickled.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from ktrdr_core.errors import KtrdrError

BUNDLE_METADATA = "bundle.json"
MAX_METADATA_BYTES = 16 * 1024 * 1024  # a bundle.json beyond this is not metadata


class BundleError(KtrdrError):
    """A file is not a readable model bundle."""


def read_bundle_metadata(path: Path) -> dict[str, Any]:
    """Return the parsed ``bundle.json`` of the zip at ``path``; BundleError says what is wrong."""
    try:
        with zipfile.ZipFile(path) as bundle:
            try:
                info = bundle.getinfo(BUNDLE_METADATA)
            except KeyError:
                raise BundleError(
                    f"model bundle {path.name} has no {BUNDLE_METADATA} at its top level"
                ) from None
            if info.file_size > MAX_METADATA_BYTES:
                raise BundleError(
                    f"{BUNDLE_METADATA} in {path.name} is {info.file_size} bytes; "
                    f"the limit is {MAX_METADATA_BYTES}"
                )
            raw = bundle.read(info)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"model bundle {path.name} is not a zip file: {exc}") from None
    try:
        metadata = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{BUNDLE_METADATA} in {path.name} is not valid JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise BundleError(f"{BUNDLE_METADATA} in {path.name} must hold a JSON object")
    return metadata
