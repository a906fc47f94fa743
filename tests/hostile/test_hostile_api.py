"""The hostile corpus through the API: every file a 4xx naming the line and rule (market
data) or the key path and line (strategies); an upload over the size limit, generated as a
stream, refused while streaming; and the dataset stored before all of it left intact."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from ktrdr_api.app import create_app
from ktrdr_core.settings import Settings
from ktrdr_core.simulator import simulate_csv
from tests.support.hostile_corpus import TIMEFRAME, Expected, market_data_cases, strategy_cases

API = "/api/v1"
TOKEN = "hostile-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPLOAD_LIMIT_MB = 1


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, api_token=TOKEN, max_upload_mb=UPLOAD_LIMIT_MB)
    with TestClient(create_app(settings), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def stored(client):
    """A good hourly dataset uploaded before any bad one: (its view, the full listing)."""
    body = simulate_csv(300, TIMEFRAME, seed=5).encode()
    response = client.post(f"{API}/data/HOSTILE/{TIMEFRAME}", content=body)
    assert response.status_code == 201, response.text
    listing = client.get(f"{API}/data", params={"all_versions": True}).json()
    return response.json(), listing


def _upload(client, body):
    return client.post(
        f"{API}/data/HOSTILE/{TIMEFRAME}", content=body, headers={"Content-Type": "text/csv"}
    )


@pytest.mark.parametrize("case", market_data_cases(), ids=lambda c: c.id)
def test_bad_market_data_is_422_with_line_and_rule(client, stored, case: Expected):
    response = _upload(client, case.file.read_bytes())
    assert response.status_code == 422, response.text
    body = response.json()
    matching = [i for i in body["issues"] if (i["rule"], i["line"]) == (case.rule, case.line)]
    assert matching, body
    assert any(all(text in i["message"] for text in case.contains) for i in matching), matching
    where = f"line {case.line} [{case.rule}]" if case.line else f"file [{case.rule}]"
    assert where in body["detail"]


def test_upload_over_the_limit_is_refused_while_streaming(client, stored):
    """1 MiB limit; the body is generated here in chunks (no Content-Length) and never stored."""
    chunk = b"2024-01-01T00:00:00Z,1,1,1,1,1\n" * 2048

    def chunks():
        yield b"timestamp,open,high,low,close,volume\n"
        for _ in range(UPLOAD_LIMIT_MB * 1024 * 1024 // len(chunk) + 2):
            yield chunk

    response = _upload(client, chunks())
    assert response.status_code == 413
    assert "KTRDR_MAX_UPLOAD_MB" in response.json()["detail"]


def _strategy_body(case: Expected) -> dict | bytes:
    raw = case.file.read_bytes()
    try:
        return {"strategy": raw.decode("utf-8"), "overrides": {}}
    except UnicodeDecodeError:
        # JSON cannot carry it as text: send the bytes where the text would go.
        return b'{"strategy": "' + raw.replace(b"\n", b"\\n") + b'", "overrides": {}}'


@pytest.mark.parametrize("route", ["/strategies/validate", "/training"])
@pytest.mark.parametrize("case", strategy_cases(), ids=lambda c: c.id)
def test_bad_strategy_is_422_with_key_path_and_line(client, case: Expected, route):
    body = _strategy_body(case)
    if isinstance(body, bytes):
        response = client.post(
            API + route, content=body, headers={"Content-Type": "application/json"}
        )
        # Not UTF-8: refused before any strategy check, as a body that does not parse.
        assert response.status_code == 400, response.text
        assert "parsing the body" in response.json()["detail"]
        return
    response = client.post(API + route, json=body)
    assert response.status_code == 422, response.text
    issues = response.json()["issues"]
    suffix = f" (line {case.line})" if case.line is not None else ""
    matching = [
        i
        for i in issues
        if i["path"] == case.path
        and i["message"].endswith(suffix)
        and all(text in i["message"] for text in case.contains)
    ]
    assert matching, issues
    assert client.get(f"{API}/operations").json() == []  # nothing was started


def test_the_stored_dataset_is_intact_after_every_bad_upload(client, stored):
    """Runs after the uploads above (file order): same listing, same bytes."""
    view, listing = stored
    assert client.get(f"{API}/data", params={"all_versions": True}).json() == listing
    download = client.get(f"{API}/data/HOSTILE/{TIMEFRAME}/csv")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == view["checksum"]
    assert download.headers["x-content-sha256"] == view["checksum"]
    # Nothing of the refused uploads is left in the store: only the good file, and the price
    # chart made from it at its import.
    artifacts = client.app.state.settings.home / "artifacts"
    stored_files = [p.relative_to(artifacts) for p in artifacts.rglob("*") if p.is_file()]
    assert sorted(p.name for p in stored_files) == [
        view["checksum"],
        f"{view['checksum']}.prices.json",
    ], stored_files
    assert listing[0]["rows"] == 300
