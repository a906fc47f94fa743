"""Drills: the disk under the artifact store fills up, PostgreSQL stops. Requests answer 503
with a message that says what is wrong, nothing half-written becomes visible, and the backend
recovers by itself once the fault is gone — no restart."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess

import httpx
import pytest

from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import ArtifactKind
from tests.support.ci import unavailable
from tests.support.market_data import eurusd_csv
from tests.support.postgres import start_postgres
from tests.support.stack import ApiServer

TOKEN = "fault-secret"


@contextlib.contextmanager
def small_tmpfs(folder, size: str):
    """A real tmpfs of ``size`` mounted at ``folder`` (root only: a read-only folder would
    give EACCES, not the ENOSPC of a full disk)."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs at {folder}: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder, leave_bytes: int) -> os.PathLike:
    """Fill the file system under ``folder`` up to ``leave_bytes`` of free space."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    filler = folder / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))
    return filler


def _files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_full_artifact_store_answers_503_keeps_nothing_and_recovers(tmp_path):
    home = tmp_path / "home"
    csv_path = eurusd_csv(tmp_path / "eurusd.csv")  # ~300 KB of canonical CSV
    small = tmp_path / "small.csv"
    small.write_text("".join(csv_path.read_text().splitlines(keepends=True)[:200]))
    bundle_like = os.urandom(200_000)

    with small_tmpfs(home / "artifacts", "2m") as store:
        api = ApiServer(home, token=TOKEN).start()
        try:
            with api.client() as client:
                first = client.import_data("EURUSD", "1h", small)
                filler = _fill(store, leave_bytes=64 * 1024)
                before = _files(store)

                # A data import (staged, validated, stored) over a full disk.
                with pytest.raises(ApiError) as refused:
                    client.import_data("EURUSD", "1h", csv_path)
                assert refused.value.status == 503, refused.value
                assert "artifact store" in str(refused.value) and "full" in str(refused.value)
                # A worker's artifact upload over a full disk.
                blob = tmp_path / "result.bin"
                blob.write_bytes(bundle_like)
                with pytest.raises(ApiError) as refused_upload:
                    client.upload_artifact(blob, ArtifactKind.REPORT)
                assert refused_upload.value.status == 503, refused_upload.value
                assert "free space" in str(refused_upload.value)

                # Nothing half-written: no new version, no artifact row, no file left.
                versions = client.request("GET", "/data", params={"all_versions": True}).json()
                assert [v["version"] for v in versions] == [first.version]
                assert not client.artifact_exists(hashlib.sha256(bundle_like).hexdigest())
                assert _files(store) == before

                # Space again: the same requests succeed, without restarting anything.
                filler.unlink()
                second = client.import_data("EURUSD", "1h", csv_path)
                assert second.version == first.version + 1 and second.rows == 5000
                stored = client.upload_artifact(blob, ArtifactKind.REPORT)
                assert client.artifact_exists(stored.sha256)
            assert api.process.poll() is None and api.starts == 1
        finally:
            api.stop()
    assert "Traceback" not in api.log.read_text()  # answered, not crashed


def test_postgres_stopped_answers_503_and_the_api_recovers_when_it_returns(tmp_path):
    server = start_postgres(tmp_path / "pg")  # this test's own server: it is stopped below
    api = ApiServer(
        tmp_path / "home", database_url=server.create_database("faults"), token=TOKEN
    ).start()
    running = True
    try:
        with api.client() as client:
            data = client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))
            server.ctl("stop")
            running = False
            # Reads, writes and the health check: each a 503 naming the database.
            for method, path in (
                ("GET", "/operations"),
                ("GET", "/data"),
                ("GET", "/data/EURUSD/1h"),
                ("GET", "/workers"),
            ):
                response = httpx.request(method, f"{api.url}/api/v1{path}",
                                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                assert response.status_code == 503, (path, response.text)
                assert "database is unavailable" in response.json()["detail"], response.text
            with pytest.raises(ApiError) as refused:
                client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "again.csv"))
            assert refused.value.status == 503 and "database" in str(refused.value)
            health = httpx.get(f"{api.url}/api/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "unavailable"

            server.ctl("start")
            running = True
            # The pool notices the new server by itself (pre-ping): no API restart.
            assert client.health()["database"] == "ok"
            assert client.get_data("EURUSD", "1h").checksum == data.checksum
            assert client.list_operations() == []
        assert api.process.poll() is None and api.starts == 1
    finally:
        api.stop()
        if running:
            server.ctl("stop")
