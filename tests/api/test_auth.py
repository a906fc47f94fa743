"""Token auth on every route but health; protocol versions checked; no open listening."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from ktrdr_api import cli
from ktrdr_api.app import create_app
from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import OperationKind, WorkerRegistration
from ktrdr_core.version import PROTOCOL_VERSION
from tests.support.stack import ApiServer
from tests.support.tls import make_pki

API = "/api/v1"
TOKEN = "s3cret-token"


@pytest.fixture
def secured(settings):
    with TestClient(create_app(settings.model_copy(update={"api_token": TOKEN}))) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/version"),
        ("GET", "/operations"),
        ("GET", "/workers"),
        ("POST", "/workers/w1/claim"),
        ("GET", "/data"),
        ("POST", "/data/GOOG/1d"),
        ("GET", "/models"),
        ("POST", "/strategies/validate"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
    ],
)
def test_every_route_but_health_needs_the_token(secured, method, path):
    missing = secured.request(method, API + path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "KTRDR_API_TOKEN" in missing.json()["detail"]
    wrong = secured.request(method, API + path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_health_is_open_and_the_right_token_works(secured):
    assert secured.get(f"{API}/health").status_code == 200
    ok = secured.get(f"{API}/version", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_typed_client_sends_the_token(secured):
    with KtrdrClient("http://testserver", token=TOKEN, transport=secured._transport) as kc:
        assert kc.list_workers() == []
    with KtrdrClient("http://testserver", token="", transport=secured._transport) as anon:
        with pytest.raises(ApiError) as caught:
            anon.list_workers()
        assert caught.value.status == 401


@pytest.mark.parametrize(
    ("protocol", "upgrade"),
    [
        (1, "upgrade the worker"),  # protocol 1: one report per backtest, before portfolios
        (PROTOCOL_VERSION + 1, "upgrade the backend"),
    ],
)
def test_worker_with_another_protocol_is_told_which_side_to_upgrade(client, protocol, upgrade):
    body = WorkerRegistration(worker_id="w1", kind=OperationKind.TRAINING, protocol=protocol)
    response = client.post(f"{API}/workers", json=body.model_dump(mode="json"))
    assert response.status_code == 426
    assert upgrade in response.json()["detail"]
    assert client.get(f"{API}/workers").json() == []


@pytest.mark.parametrize(
    ("header", "upgrade"), [("1", "upgrade the client"), ("7", "upgrade the backend")]
)
def test_client_with_another_protocol_is_told_which_side_to_upgrade(client, header, upgrade):
    response = client.get(f"{API}/operations", headers={"X-Ktrdr-Protocol": header})
    assert response.status_code == 426
    assert upgrade in response.json()["detail"]
    assert (
        client.get(
            f"{API}/operations", headers={"X-Ktrdr-Protocol": str(PROTOCOL_VERSION)}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "ktrdr.example.org"])
def test_serve_refuses_a_non_loopback_address_without_a_token(monkeypatch, capsys, tmp_path, host):
    monkeypatch.setenv("KTRDR_HOME", str(tmp_path))
    monkeypatch.delenv("KTRDR_API_TOKEN", raising=False)
    assert cli.main(["serve", "--host", host, "--insecure-http"]) == 2
    assert "refusing to listen" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serve_refuses_plain_http_beyond_loopback(monkeypatch, capsys, tmp_path, host):
    monkeypatch.setenv("KTRDR_HOME", str(tmp_path))
    monkeypatch.setenv("KTRDR_API_TOKEN", TOKEN)
    assert cli.main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert f"refusing to listen on {host} without TLS" in err
    assert "--tls-cert" in err and "--insecure-http" in err


def test_serve_names_what_is_wrong_with_its_tls_files(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KTRDR_HOME", str(tmp_path))
    pki = make_pki(tmp_path / "pki")
    assert cli.main(["serve", "--tls-cert", str(pki.cert)]) == 2
    assert "needs both --tls-cert and --tls-key" in capsys.readouterr().err
    missing = tmp_path / "nope.key"
    assert cli.main(["serve", "--tls-cert", str(pki.cert), "--tls-key", str(missing)]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
    # The key of another certificate (the wrong CA's).
    other_key = pki.wrong_ca.with_suffix(".key")
    assert cli.main(["serve", "--tls-cert", str(pki.cert), "--tls-key", str(other_key)]) == 2
    assert f"cannot use certificate {pki.cert} with key {other_key}" in capsys.readouterr().err


def test_insecure_http_beyond_loopback_is_logged_at_every_start(tmp_path):
    everywhere = {"KTRDR_API_HOST": "0.0.0.0", "KTRDR_INSECURE_HTTP": "1"}
    api = ApiServer(tmp_path / "home", token=TOKEN, extra_env=everywhere)
    try:
        api.start()
        api.stop()
        api.start()
    finally:
        api.stop()
    warnings = [line for line in api.log.read_text().splitlines() if "INSECURE" in line]
    assert len(warnings) == 2
    assert json.loads(warnings[0])["level"] == "warning"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("10.0.0.1", False)],
)
def test_loopback_detection(host, loopback):
    assert cli.is_loopback(host) is loopback
