"""Model import: a bundle trained elsewhere is validated, stored, catalogued and backtestable;
anything that is not a usable bundle is refused with the reason and leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from ktrdr_core.bundles import read_manifest
from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import OperationKind
from tests.support.api import API
from tests.support.bundles import WEIGHTS, bundle_bytes, bundle_manifest
from tests.support.market_data import packaged_csv


@pytest.fixture
def kc(client):
    with KtrdrClient("http://testserver", token="", transport=client._transport) as typed:
        yield typed


def _stored_files(client) -> list:
    root = client.app.state.settings.home / "artifacts"
    return [p for p in root.rglob("*") if p.is_file()]


def test_import_catalogues_the_bundle_and_records_its_data_as_is(kc, tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(bundle_bytes(name="imported_rsi", symbol="EURUSD", timeframe="1h"))

    model = kc.import_model(path)

    assert model.name == "imported_rsi" and model.training_operation_id is None
    assert model.bundle_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.strategy_hash == "ab" * 32
    assert model.metadata == read_manifest(path).model_dump(mode="json", by_alias=True)
    [data] = model.data
    # The backend holds no EURUSD data: the bundle's record is kept as it is, version 0.
    assert (data.symbol, data.timeframe.value, data.version) == ("EURUSD", "1h", 0)
    assert data.checksum == "cd" * 32 and data.rows == 100
    assert kc.list_models() == [model]
    assert kc.download_model(model.model_id, tmp_path / "back.zip") == model.bundle_sha256


def test_importing_the_same_bundle_again_answers_the_existing_model(kc, client, tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(bundle_bytes())
    first = kc.import_model(path)
    again = client.post(f"{API}/models", content=path.read_bytes())
    assert again.status_code == 200 and again.json()["model_id"] == first.model_id
    assert len(kc.list_models()) == 1


def test_the_same_bundle_file_always_gets_the_same_model_id(kc, client, tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(bundle_bytes())
    first = kc.import_model(path)
    assert first.model_id == f"mdl_{first.bundle_sha256[:12]}"
    kc.delete_model(first.model_id)
    assert kc.list_models() == []
    restored = kc.import_model(path)  # a re-import restores it, id and all
    assert restored.model_id == first.model_id
    other = tmp_path / "other.zip"
    other.write_bytes(bundle_bytes(name="another_model"))
    assert kc.import_model(other).model_id != first.model_id


def test_two_imports_of_one_file_at_the_same_moment_make_one_model(
    kc, client, tmp_path, monkeypatch
):
    from ktrdr_api import catalog

    path = tmp_path / "model.zip"
    path.write_bytes(bundle_bytes())
    first = kc.import_model(path)
    # The second import looks before the first one's row is visible, then inserts.
    looked = []
    real = catalog.model_with_bundle

    def not_yet(session, sha):
        looked.append(sha)
        return None if len(looked) == 1 else real(session, sha)

    monkeypatch.setattr(catalog, "model_with_bundle", not_yet)
    again = client.post(f"{API}/models", content=path.read_bytes())
    assert again.status_code == 200, again.text
    assert again.json()["model_id"] == first.model_id
    assert len(looked) == 2  # refused by the primary key, then answered with the row
    assert [m.model_id for m in kc.list_models()] == [first.model_id]


def test_an_imported_model_is_backtested_on_this_backends_data(kc, tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(bundle_bytes(symbol="GOOG", timeframe="1d"))
    model = kc.import_model(path)
    with pytest.raises(ApiError) as caught:
        kc.start_backtest(model.model_id)
    assert caught.value.status == 422 and "ktrdr data import GOOG 1d" in str(caught.value)

    goog = kc.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
    backtest = kc.start_backtest(model.model_id)
    assert backtest.kind == OperationKind.BACKTEST
    assert backtest.inputs.bundle_sha256 == model.bundle_sha256
    assert [d.checksum for d in backtest.inputs.data] == [goog.checksum]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _manifest_json(**changes) -> bytes:
    return json.dumps(bundle_manifest() | changes).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"PK\x03\x04 not really a zip", "not a zip archive"),
        (_zip({"weights.safetensors": WEIGHTS}), "missing bundle.json"),
        (_zip({"bundle.json": b"{", "weights.safetensors": WEIGHTS}), "not UTF-8 JSON"),
        (
            _zip({"bundle.json": _manifest_json(format="other/9"), "weights.safetensors": WEIGHTS}),
            "bundle format 'other/9'",
        ),
        (
            _zip({"bundle.json": _manifest_json(seed="seven"), "weights.safetensors": WEIGHTS}),
            "invalid at seed",
        ),
        (_zip({"bundle.json": _manifest_json()}), "weights.safetensors"),
        (
            _zip({"bundle.json": _manifest_json(), "weights.safetensors": WEIGHTS + b"tampered"}),
            "does not match bundle.json",
        ),
        (
            _zip(
                {
                    "bundle.json": json.dumps(bundle_manifest(symbol="../etc")).encode(),
                    "weights.safetensors": WEIGHTS,
                }
            ),
            "invalid symbol '../etc'",
        ),
        (
            _zip(
                {
                    "bundle.json": json.dumps(bundle_manifest(timeframe="7 fortnights")).encode(),
                    "weights.safetensors": WEIGHTS,
                }
            ),
            "bundle.json data is invalid at timeframe",
        ),
    ],
    ids=[
        "not-zip",
        "no-manifest",
        "bad-json",
        "other-format",
        "schema",
        "no-weights",
        "tampered-weights",
        "bad-symbol",
        "bad-timeframe",
    ],
)
def test_a_bad_bundle_is_refused_with_the_reason_and_leaves_nothing(client, body, reason):
    response = client.post(f"{API}/models", content=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert reason in detail
    assert str(client.app.state.settings.home) not in detail  # no server paths in answers
    assert client.get(f"{API}/models").json() == []
    assert _stored_files(client) == []


def test_a_corrupted_transfer_is_refused(client):
    body = bundle_bytes()
    response = client.post(
        f"{API}/models",
        content=body[:-1],
        headers={"X-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    assert response.status_code == 422 and "announced" in response.json()["detail"]
    assert _stored_files(client) == []


def test_an_import_over_the_size_limit_is_refused_while_streaming(client):
    client.app.state.backend.settings = client.app.state.settings.model_copy(
        update={"max_upload_mb": 1}
    )
    big = bundle_bytes() + b"\0" * (1024 * 1024)

    def chunks():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = client.post(f"{API}/models", content=chunks())
    assert response.status_code == 413 and "KTRDR_MAX_UPLOAD_MB" in response.json()["detail"]
    assert _stored_files(client) == []
