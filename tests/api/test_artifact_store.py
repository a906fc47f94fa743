"""The content-addressed store: round trips, atomic writes, limits and checksums."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from ktrdr_api.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
    ChecksumMismatch,
)


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _files(store):
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def test_put_open_exists_delete(store):
    data = b"some bytes" * 1000
    sha = hashlib.sha256(data).hexdigest()
    stored = store.put(iter([data[:7], data[7:]]))
    assert stored.sha256 == sha and stored.size == len(data)
    assert store.exists(sha)
    assert store.path(sha) == store.root / sha[:2] / sha
    with store.open(sha) as file:
        assert file.read() == data
    assert store.put_bytes(data).sha256 == sha  # same content, same file
    assert _files(store) == [store.path(sha)]
    assert store.delete(sha) and not store.exists(sha)
    with pytest.raises(ArtifactNotFound):
        store.open(sha)


def test_stream_that_breaks_midway_leaves_nothing(store):
    def broken():
        yield b"first half"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put(broken())
    assert _files(store) == []


def test_limit_and_checksum_refusals_leave_nothing(store):
    with pytest.raises(ArtifactTooLarge, match="limit of 10 bytes"):
        store.put([b"x" * 6, b"y" * 6], max_bytes=10)
    with pytest.raises(ChecksumMismatch, match="announced"):
        store.put([b"data"], expected_sha256="0" * 64)
    assert _files(store) == []


def test_async_put_and_stage(store):
    async def chunks():
        for part in (b"a" * 100, b"b" * 100):
            yield part

    stored = asyncio.run(store.put_async(chunks()))
    assert stored.sha256 == hashlib.sha256(b"a" * 100 + b"b" * 100).hexdigest()
    staged = asyncio.run(store.stage(chunks(), max_bytes=1000))
    assert staged.read_bytes() == b"a" * 100 + b"b" * 100 and staged.parent == store.tmp_dir
    with pytest.raises(ArtifactTooLarge):
        asyncio.run(store.stage(chunks(), max_bytes=150))


def test_leftovers_of_interrupted_uploads_are_cleared(store):
    abandoned = store.tmp_dir / "upload-abc"
    abandoned.write_bytes(b"half")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    assert store.clear_temporary() == 1
    assert _files(store) == []


def test_an_upload_in_progress_in_another_process_is_left_alone(store):
    """The store is shared by every API process: one starting keeps a sibling's live upload."""
    live = store.tmp_dir / "upload-live"
    live.write_bytes(b"being written")
    assert store.clear_temporary() == 0
    assert live.read_bytes() == b"being written"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64, "0" * 64 + "/x"])
def test_ids_that_are_not_sha256_are_refused(store, bad):
    with pytest.raises(ArtifactError, match="64 lower-case hex"):
        store.path(bad)
