"""Downloads from the backend, verified by sha256 and kept on disk for the next job.

Data files and model bundles are content-addressed on the backend, so a file is named by its
sha256 here too: ``<cache>/artifacts/<first two hex>/<sha256>``. A hit is checked again
against its name before use (a file damaged on disk is fetched anew); a download goes to a
private temporary name first and is renamed into place, so worker replicas sharing one cache
folder never see half a file. Beyond the size limit the least recently used files go first.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from ktrdr_core.checksums import file_sha256
from ktrdr_core.client import ChecksumError, KtrdrClient
from ktrdr_core.errors import KtrdrError

__all__ = ["ArtifactCache", "CacheError"]

log = logging.getLogger("ktrdr_worker.service")
_DOWNLOAD_TRIES = 3  # a checksum mismatch is retried this many times, then reported


class CacheError(KtrdrError):
    """A file could not be fetched intact; the message names the artifact and what was seen."""


class ArtifactCache:
    """A folder of verified downloads, named by sha256, with least-recently-used eviction.

    ``root``: the cache folder (created); ``max_bytes``: size the cached files may reach
    before the oldest-used ones are deleted.
    """

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root) / "artifacts"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise CacheError(f"{sha256!r} is not a sha256 digest (64 lower-case hex digits)")
        return self.root / sha256[:2] / sha256

    def fetch(
        self,
        client: KtrdrClient,
        sha256: str,
        *,
        download: Callable[[Callable[[], Path]], Path] | None = None,
        keep: Iterable[str] = (),
        interrupt: Callable[[], None] | None = None,
    ) -> Path:
        """The local path of artifact ``sha256``, downloading it when it is not cached intact.

        ``download`` wraps the network call (the worker passes its retry loop); ``keep``
        names artifacts the eviction after a download must not delete (the job's other inputs);
        ``interrupt`` is called as the bytes arrive and may raise to abandon the download.
        Raises :class:`CacheError` when the bytes keep arriving with another checksum, and the
        client's ``ApiError`` when the backend refuses (404: the artifact is unknown).
        """
        path = self.path_for(sha256)
        if path.is_file():
            if file_sha256(path) == sha256:
                os.utime(path)  # recently used: the eviction goes by modification time
                return path
            log.warning("cached %s is damaged on disk; downloading it again", path)
            path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _DOWNLOAD_TRIES + 1):
            # A private name per download: replicas sharing the folder cannot collide.
            temporary = path.with_name(f".{sha256}.{os.getpid()}.{secrets.token_hex(4)}")

            def get(temporary: Path = temporary) -> Path:
                return client.download_artifact(sha256, temporary, interrupt=interrupt)

            try:
                got = download(get) if download is not None else get()
            except ChecksumError as exc:
                temporary.unlink(missing_ok=True)
                log.warning("download %d of %s arrived damaged: %s", attempt, sha256, exc)
                if attempt == _DOWNLOAD_TRIES:
                    raise CacheError(
                        f"artifact {sha256} arrived with another checksum {attempt} times in a "
                        f"row ({exc}); the copy on the backend may be damaged"
                    ) from exc
                continue
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            os.replace(got, path)
            break
        self.evict(keep={sha256, *keep})
        return path

    def size(self) -> int:
        """Bytes held by cached artifacts."""
        return sum(entry.stat().st_size for entry in self._entries())

    def evict(self, keep: Iterable[str] = ()) -> list[str]:
        """Delete least recently used artifacts until the cache fits ``max_bytes``; returns the
        sha256 of each deleted file. Files named in ``keep`` stay whatever the size."""
        kept = set(keep)
        entries = []
        for entry in self._entries():
            try:
                stat = entry.stat()
            except FileNotFoundError:  # another replica evicted it a moment ago
                continue
            entries.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, entry in sorted(entries, key=lambda item: item[0]):
            if total <= self.max_bytes:
                break
            if entry.name in kept:
                continue
            entry.unlink(missing_ok=True)
            total -= size
            removed.append(entry.name)
        if removed:
            log.info("cache over %d bytes: evicted %d file(s)", self.max_bytes, len(removed))
        return removed

    def _entries(self) -> list[Path]:
        return [
            entry
            for folder in self.root.iterdir()
            if folder.is_dir()
            for entry in folder.iterdir()
            if not entry.name.startswith(".")
        ]
