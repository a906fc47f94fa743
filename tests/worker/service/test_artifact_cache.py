"""The worker's download cache against a real backend: verified, reused, repaired, bounded."""

from __future__ import annotations

import hashlib

import pytest

from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import ArtifactKind
from ktrdr_worker.service.cache import ArtifactCache


def _upload(client, tmp_path, payload: bytes) -> str:
    path = tmp_path / hashlib.sha256(payload).hexdigest()[:8]
    path.write_bytes(payload)
    return client.upload_artifact(path, ArtifactKind.CHECKPOINT).sha256


def test_a_download_is_verified_cached_and_repaired(api, tmp_path):
    cache = ArtifactCache(tmp_path / "cache", max_bytes=10**9)
    with api.client() as client:
        sha = _upload(client, tmp_path, b"weights " * 1000)
        path = cache.fetch(client, sha)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha

        path.write_bytes(b"bit rot")  # damaged on disk: fetched anew
        assert cache.fetch(client, sha).read_bytes() == b"weights " * 1000

    api.kill()  # an intact file is served from the cache without asking the backend
    with api.client() as client:
        assert cache.fetch(client, sha).read_bytes() == b"weights " * 1000


def test_an_unknown_artifact_is_a_404_and_leaves_nothing_behind(api, tmp_path):
    cache = ArtifactCache(tmp_path / "cache", max_bytes=10**9)
    with api.client() as client, pytest.raises(ApiError) as caught:
        cache.fetch(client, "0" * 64)
    assert caught.value.status == 404
    assert cache.size() == 0
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_least_recently_used_files_are_evicted_but_kept_ones_stay(api, tmp_path):
    cache = ArtifactCache(tmp_path / "cache", max_bytes=2500)
    with api.client() as client:
        old, kept, new = (_upload(client, tmp_path, bytes([n]) * 1000) for n in (1, 2, 3))
        cache.fetch(client, old)
        cache.fetch(client, kept)
        cache.fetch(client, new, keep=(kept,))
    assert not cache.path_for(old).exists()
    assert cache.path_for(kept).exists() and cache.path_for(new).exists()
    assert cache.size() == 2000
