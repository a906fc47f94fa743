"""Market data through the API: validated on the way in, catalogued, versioned, guarded."""

from __future__ import annotations

import hashlib

import pytest

from ktrdr_core.settings import Settings
from tests.support.api import API
from tests.support.market_data import packaged_csv

GOOG = packaged_csv("GOOG.csv")  # daily bars 2004-08-19 .. 2013-03-01, pandas-style header
EURUSD = packaged_csv("EURUSD.csv")  # hourly bars


def _upload(client, symbol, timeframe, body, **params):
    return client.post(
        f"{API}/data/{symbol}/{timeframe}",
        content=body,
        params=params,
        headers={"Content-Type": "text/csv"},
    )


def test_real_daily_file_is_normalised_and_catalogued(client):
    response = _upload(client, "goog", "1d", GOOG.read_bytes(), source_name="GOOG.csv")
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["symbol"] == "GOOG"  # symbols are upper-cased
    assert data["version"] == 1
    assert data["rows"] == 2148
    assert data["first"] == "2004-08-19T00:00:00Z"
    assert data["last"] == "2013-03-01T00:00:00Z"
    assert data["gap_report"]["timeframe"] == "1d"
    assert data["source_name"] == "GOOG.csv"

    download = client.get(f"{API}/data/GOOG/1d/csv")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == data["checksum"]
    assert download.headers["x-content-sha256"] == data["checksum"]
    lines = download.text.splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[1] == "2004-08-19T00:00:00Z,100,104.06,95.96,100.34,22351900"


def test_hourly_file_reports_weekend_gaps(client):
    data = _upload(client, "EURUSD", "1h", EURUSD.read_bytes()).json()
    assert data["rows"] == 5000
    assert data["gap_report"]["missing_bars"]["weekend"] > 0


def test_same_file_again_adds_no_version_and_a_changed_one_does(client):
    body = GOOG.read_bytes()
    first = _upload(client, "GOOG", "1d", body)
    again = _upload(client, "GOOG", "1d", body)
    assert again.status_code == 200
    assert again.json()["unchanged"] is True and again.json()["version"] == 1
    shorter = b"\n".join(body.splitlines()[:-10]) + b"\n"
    second = _upload(client, "GOOG", "1d", shorter)
    assert second.status_code == 201 and second.json()["version"] == 2
    assert second.json()["checksum"] != first.json()["checksum"]
    assert [d["version"] for d in client.get(f"{API}/data").json()] == [2]
    versions = client.get(f"{API}/data", params={"all_versions": True}).json()
    assert [d["version"] for d in versions] == [2, 1]
    assert client.get(f"{API}/data/GOOG/1d", params={"version": 1}).json()["rows"] == 2148


def test_bad_file_is_refused_with_the_line_and_rule(client):
    body = (
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02T00:00:00Z,10,11,9,10.5,100\n"
        "2024-01-03T00:00:00Z,10,9,11,10.5,100\n"  # high below low
        "2024-01-03T00:00:00Z,10,11,9,10.5,100\n"  # duplicate
    )
    response = _upload(client, "ABC", "1d", body.encode())
    assert response.status_code == 422
    issues = response.json()["issues"]
    assert {(i["line"], i["rule"]) for i in issues} >= {
        (3, "ohlc_consistency"),
        (4, "duplicate_timestamp"),
    }
    assert "line 3" in response.json()["detail"]
    assert client.get(f"{API}/data").json() == []  # nothing catalogued
    assert not any(p.is_file() for p in (client.app.state.settings.home / "artifacts").rglob("*"))


def test_header_only_file_is_refused(client):
    response = _upload(client, "ABC", "1d", b"timestamp,open,high,low,close,volume\n")
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/data/A$B/1d", "symbol"),
        ("/data/..%2E/1d", "symbol"),
        ("/data/GOOG/2h", "timeframe"),
    ],
)
def test_bad_names_are_refused_with_the_field(client, path, field):
    response = client.post(API + path, content=b"x")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", field]


@pytest.mark.parametrize(
    "path",
    ["/data/..%2F..%2Fetc/1d", "/data/../../etc/passwd/1d", "/data/%2E%2E/1d/csv"],
)
def test_path_traversal_never_reaches_a_file(client, path):
    response = client.get(API + path)
    assert response.status_code in (404, 422)
    assert "root:" not in response.text


def test_unknown_data_is_404_with_advice(client):
    response = client.get(f"{API}/data/NOPE/1d")
    assert response.status_code == 404
    assert "ktrdr data import NOPE 1d" in response.json()["detail"]


def test_upload_over_the_limit_is_refused_and_leaves_nothing(tmp_path, migrated_sqlite, clock):
    import shutil

    from fastapi.testclient import TestClient

    from ktrdr_api.app import create_app

    home = tmp_path / "small"
    home.mkdir()
    shutil.copy(migrated_sqlite, home / "ktrdr.db")
    with TestClient(create_app(Settings(home=home, max_upload_mb=1), clock=clock)) as small:
        big = b"timestamp,open,high,low,close,volume\n" + b"x" * (1024 * 1024 + 10)

        def chunks():  # streamed, no Content-Length: the limit is enforced while reading
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        response = small.post(f"{API}/data/GOOG/1d", content=chunks())
        assert response.status_code == 413
        assert "KTRDR_MAX_UPLOAD_MB" in response.json()["detail"]
        assert not any(p.is_file() for p in (home / "artifacts").rglob("*"))
        declared = small.post(f"{API}/artifacts", params={"kind": "data"}, content=big)
        assert declared.status_code == 413


def test_delete_a_version_and_everything(client):
    body = GOOG.read_bytes()
    _upload(client, "GOOG", "1d", body)
    _upload(client, "GOOG", "1d", b"\n".join(body.splitlines()[:100]) + b"\n")
    deleted = client.delete(f"{API}/data/GOOG/1d", params={"version": 2})
    assert [d["version"] for d in deleted.json()] == [2]
    assert client.get(f"{API}/data/GOOG/1d").json()["version"] == 1
    client.delete(f"{API}/data/GOOG/1d")
    assert client.get(f"{API}/data/GOOG/1d").status_code == 404
    assert not any(p.is_file() for p in (client.app.state.settings.home / "artifacts").rglob("*"))
