"""sha256 of files: the one content checksum backend, workers and clients agree on."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1024 * 1024  # read piece: constant memory whatever the file size


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the bytes of the file at `path`, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
