"""A model bundle crafted to run code on load is refused by the backend's import (which
never unpickles, but scans the pickle) and by the worker's loader; its payload never runs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.bundles import BundleError
from ktrdr_core.settings import Settings
from tests.support.bundles import evil_bundle

API = "/api/v1"


@pytest.mark.parametrize(
    ("as_archive", "reason"),
    [(True, "its pickle calls io.open"), (False, "not a torch.save archive")],
    ids=["torch-archive", "bare-pickle"],
)
def test_the_backend_refuses_to_import_it(tmp_path, as_archive, reason):
    marker = tmp_path / "code-ran"
    body = evil_bundle(marker, as_archive=as_archive)
    with TestClient(create_app(Settings(home=tmp_path / "home"))) as client:
        response = client.post(f"{API}/models", content=body)
        assert response.status_code == 422, response.text
        assert reason in response.json()["detail"]
        assert client.get(f"{API}/models").json() == []
        stored = [p for p in (tmp_path / "home" / "artifacts").rglob("*") if p.is_file()]
        assert stored == []
    assert not marker.exists()


@pytest.mark.parametrize("as_archive", [True, False], ids=["torch-archive", "bare-pickle"])
def test_the_worker_loader_refuses_it(tmp_path, as_archive):
    pytest.importorskip("torch")
    from ktrdr_worker.models.bundles import load_network

    marker = tmp_path / "code-ran"
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        load_network(evil_bundle(marker, as_archive=as_archive))
    assert not marker.exists()
