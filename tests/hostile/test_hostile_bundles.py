"""A model bundle crafted to run code on load is refused by the backend's import and by the
worker's loader, neither of which ever unpickles anything: weights are safetensors, and a pickle
in their place (or a bundle of the previous, pickled format) is refused; its payload never runs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.bundles import BundleError
from ktrdr_core.settings import Settings
from ktrdr_worker.models.inference import BundleModel
from tests.support.bundles import evil_bundle, previous_format_bundle

API = "/api/v1"

CASES = {
    "torch-archive": (
        lambda marker: evil_bundle(marker, as_archive=True),
        "not a safetensors file",
    ),
    "bare-pickle": (
        lambda marker: evil_bundle(marker, as_archive=False),
        "not a safetensors file",
    ),
    "previous-format": (previous_format_bundle, "'ktrdr-model-bundle/1', written by ktrdr-worker"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_backend_refuses_to_import_it(tmp_path, case):
    make, reason = CASES[case]
    marker = tmp_path / "code-ran"
    with TestClient(create_app(Settings(home=tmp_path / "home"))) as client:
        response = client.post(f"{API}/models", content=make(marker))
        assert response.status_code == 422, response.text
        assert reason in response.json()["detail"]
        assert client.get(f"{API}/models").json() == []
        stored = [p for p in (tmp_path / "home" / "artifacts").rglob("*") if p.is_file()]
        assert stored == []
    assert not marker.exists()


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_worker_loader_refuses_it(tmp_path, case, engine):
    make, reason = CASES[case]
    marker = tmp_path / "code-ran"
    with pytest.raises(BundleError, match=reason):
        BundleModel(make(marker), engine)
    assert not marker.exists()
