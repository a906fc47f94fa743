"""Content-addressed artifact store: files named by their sha256, under KTRDR_HOME/artifacts.

The interface is small on purpose (put a stream -> sha, open, exists, delete) so that
another backend (an object store) can replace the folder. A file becomes visible only
complete: bytes go to a temporary file in the same folder tree, are flushed to disk, and
are renamed into place atomically, so a reader never sees half a file and a crash leaves
at most an orphaned temporary file (cleared at a later start once it has sat idle for an
hour). Several API processes share one store safely: two that store the same content rename
two complete copies of the same bytes onto the same name, and the last rename wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ktrdr_core.errors import KtrdrError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024  # bytes read at a time when hashing a staged file

LEFTOVER_IDLE_S = 3600.0
"""Seconds without a write after which a temporary upload file counts as abandoned."""


class ArtifactError(KtrdrError):
    """An artifact is missing, too large, or not what its checksum says."""


class ArtifactNotFound(ArtifactError):
    pass


class ArtifactTooLarge(ArtifactError):
    pass


class ChecksumMismatch(ArtifactError):
    pass


class StorageFull(ArtifactError):
    """The disk under the store has no room left (HTTP 503: free space, then send again)."""


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def _reporting_full_disk(root: Path) -> Iterator[None]:
    """Turn "no space left" (or a quota) into StorageFull naming the store; other OS errors
    stay what they are (a bug or a broken disk is not something to retry)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise StorageFull(
            f"the artifact store at {root} is full ({exc.strerror}): nothing was stored; "
            "free space on the backend's disk and send it again"
        ) from exc


@dataclass(frozen=True)
class StoredArtifact:
    sha256: str
    size: int  # bytes


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lower-case hex sha256; ArtifactError otherwise."""
    if not _SHA256.fullmatch(value):
        raise ArtifactError(f"invalid artifact id {value!r}: expected 64 lower-case hex digits")
    return value


class _Writer:
    """One upload in progress: hashes and writes chunks into a temporary file."""

    def __init__(self, store: ArtifactStore, max_bytes: int | None):
        self._store = store
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._path = Path(name)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise ArtifactTooLarge(
                f"upload exceeds the limit of {self._max_bytes} bytes "
                "(KTRDR_MAX_UPLOAD_MB on the backend)"
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self, expected_sha256: str | None) -> StoredArtifact:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha = self._hash.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise ChecksumMismatch(
                f"upload has sha256 {sha} but the sender announced {expected_sha256}: "
                "the transfer was corrupted or the wrong file was sent"
            )
        final = self._store.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Same content, same name: replacing an existing file is harmless and atomic.
        os.replace(self._path, final)
        return StoredArtifact(sha256=sha, size=self.size)

    def abort(self) -> None:
        # Closing flushes what is buffered, which fails again on a full disk: the half-written
        # file must go all the same.
        with contextlib.suppress(OSError):
            self._file.close()
        self._path.unlink(missing_ok=True)


class ArtifactStore:
    """Files under ``root``, each at ``root/ab/abcdef…`` for its sha256 ``abcdef…``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def clear_temporary(self, *, idle_s: float = LEFTOVER_IDLE_S) -> int:
        """Delete temporary files left by interrupted uploads; returns how many.

        Only those untouched for ``idle_s`` seconds: the store is shared by every API process,
        and a process starting must not delete another one's upload in progress (which writes
        to its file all along)."""
        removed = 0
        cutoff = time.time() - idle_s
        for leftover in self.tmp_dir.glob("upload-*"):
            with contextlib.suppress(FileNotFoundError):  # finished meanwhile
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def view_path(self, sha256: str, name: str) -> Path:
        """Where a view derived from artifact ``sha256`` is kept (``name``: which view, such
        as ``prices.json``): content-addressed like the artifact, so it never goes stale."""
        check_sha256(sha256)
        return self.root / "views" / sha256[:2] / f"{sha256}.{name}"

    def size(self, sha256: str) -> int:
        """Size in bytes; ArtifactNotFound when absent."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise ArtifactNotFound(f"artifact {sha256} is not in the store") from None

    def open(self, sha256: str) -> BinaryIO:
        """Open for reading (binary); ArtifactNotFound when absent."""
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(f"artifact {sha256} is not in the store") from None

    def delete(self, sha256: str) -> bool:
        """Remove the file and the views derived from it; True when there was one."""
        path = self.path(sha256)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        for view in self.view_path(sha256, "*").parent.glob(f"{sha256}.*"):
            view.unlink(missing_ok=True)
        return existed

    def put(
        self,
        chunks: Iterable[bytes],
        *,
        max_bytes: int | None = None,
        expected_sha256: str | None = None,
    ) -> StoredArtifact:
        """Store a stream of byte chunks; returns its sha256 and size.

        Raises ArtifactTooLarge past ``max_bytes`` and ChecksumMismatch when the content's
        sha256 is not ``expected_sha256``; in both cases nothing is stored.
        """
        with _reporting_full_disk(self.root):
            writer = _Writer(self, max_bytes)
            try:
                for chunk in chunks:
                    writer.write(chunk)
                return writer.commit(expected_sha256)
            except BaseException:
                writer.abort()
                raise

    async def put_async(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
        expected_sha256: str | None = None,
    ) -> StoredArtifact:
        """`put` for an async stream (an HTTP request body), never holding it whole."""
        with _reporting_full_disk(self.root):
            writer = _Writer(self, max_bytes)
            try:
                async for chunk in chunks:
                    writer.write(chunk)
                # fsync can take tens of milliseconds: keep it off the event loop.
                return await asyncio.to_thread(writer.commit, expected_sha256)
            except BaseException:
                writer.abort()
                raise

    def put_bytes(self, data: bytes, *, expected_sha256: str | None = None) -> StoredArtifact:
        return self.put([data], expected_sha256=expected_sha256)

    def adopt(self, staged: Path, *, expected_sha256: str | None = None) -> StoredArtifact:
        """Move a file written by :meth:`stage` into the store under its sha256.

        The file is hashed (read in chunks), flushed to disk and renamed into place, so it is
        never copied. Raises ChecksumMismatch when its sha256 is not ``expected_sha256``; the
        staged file is then left for the caller to delete.
        """
        digest = hashlib.sha256()
        size = 0
        with staged.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            os.fsync(file.fileno())
        sha = digest.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise ChecksumMismatch(
                f"upload has sha256 {sha} but the sender announced {expected_sha256}: "
                "the transfer was corrupted or the wrong file was sent"
            )
        final = self.path(sha)
        with _reporting_full_disk(self.root):  # a new folder takes room too
            final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        return StoredArtifact(sha256=sha, size=size)

    async def stage(self, chunks: AsyncIterable[bytes], *, max_bytes: int | None) -> Path:
        """Write an async stream to a temporary file (not content-addressed) and return it.

        For uploads that are checked before they are stored (data files); the caller deletes
        the file. Raises ArtifactTooLarge past ``max_bytes``.
        """
        with _reporting_full_disk(self.root):
            fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
            path = Path(name)
            size = 0
            try:
                with os.fdopen(fd, "wb") as file:
                    async for chunk in chunks:
                        size += len(chunk)
                        if max_bytes is not None and size > max_bytes:
                            raise ArtifactTooLarge(
                                f"upload exceeds the limit of {max_bytes} bytes "
                                "(KTRDR_MAX_UPLOAD_MB on the backend)"
                            )
                        file.write(chunk)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        return path
