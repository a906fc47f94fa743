"""POST /data/fetch: refusals name what is wrong; a completed fetch becomes a dataset version."""

from __future__ import annotations

import pytest

from tests.support.api import API, claim, register, upload_artifact


def _fetch(client, **body):
    return client.post(f"{API}/data/fetch", json={"provider": "binance", "symbol": "BTCUSDT",
                                                  "timeframe": "1h", **body})  # fmt: skip


def _csv(hours: range, close: float = 100.0) -> bytes:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"2024-01-01T{h:02d}:00:00Z,100,101,99,{close},5" for h in hours]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"provider": "kraken"}, "unknown provider 'kraken'; known: binance, ib"),
        ({"symbol": "BRK.B"}, "'BRK.B' is not a binance symbol: use the pair without a separator"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "must be before end"),
        ({}, "mode full needs a start"),
        ({"mode": "backfill"}, "mode backfill needs a start"),
        ({"timeframe": "2h"}, "Input should be '1m'"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(client, body, expected):
    response = _fetch(client, **body)
    assert response.status_code == 422
    assert expected in response.text


def test_what_stored_data_allows_is_checked(client):
    for mode in ("tail", "repair"):
        response = _fetch(client, mode=mode)
        assert response.status_code == 422
        assert f"nothing stored for BTCUSDT 1h to {mode}; fetch a range first" in response.text
    future = _fetch(client, start="2030-01-01")
    assert future.status_code == 422 and "is in the future" in future.text
    client.post(f"{API}/data/BTCUSDT/1h", content=_csv(range(5, 10)),
                headers={"Content-Type": "text/csv"})  # fmt: skip
    late = _fetch(client, mode="backfill", start="2024-01-01T07:00")
    assert late.status_code == 422
    assert "is not before the first stored bar (2024-01-01T05:00:00Z, version 1)" in late.text
    repair = _fetch(client, mode="repair")
    assert repair.status_code == 422 and "has no unexpected gaps: nothing to repair" in repair.text


def test_a_completed_fetch_is_catalogued_as_the_next_version(client):
    client.post(f"{API}/data/BTCUSDT/1h", content=_csv(range(5, 10)),
                headers={"Content-Type": "text/csv"})  # fmt: skip
    created = _fetch(client, mode="backfill", start="2024-01-01T00:00")
    assert created.status_code == 201, created.text
    op = created.json()
    assert op["kind"] == "data_fetch" and op["inputs"]["stored"]["version"] == 1
    # A backtest worker claims it: fetching is CPU work.
    register(client, "cpu-1", kind="backtest")
    claimed = claim(client, "cpu-1")
    assert claimed["operation_id"] == op["operation_id"] and claimed["kind"] == "data_fetch"

    merged = upload_artifact(client, _csv(range(0, 10)), "data")
    summary = {"bars_fetched": 5, "bars_added": 5, "conflicts": 0}
    done = client.post(
        f"{API}/workers/cpu-1/operations/{op['operation_id']}/complete",
        json={"attempt": 1, "result": {"kind": "data_fetch", "data_sha256": merged,
                                       "summary": summary}},
    )  # fmt: skip
    assert done.status_code == 200, done.text
    result = done.json()["result"]
    assert result["dataset"]["version"] == 2 and result["dataset"]["created"] is True
    assert result["dataset"]["rows"] == 10 and result["summary"] == summary
    shown = client.get(f"{API}/data/BTCUSDT/1h").json()
    assert shown["version"] == 2 and shown["source_name"] == "binance:BTCUSDT 1h backfill"
    assert shown["checksum"] == result["dataset"]["checksum"]


def test_a_fetch_merged_into_a_superseded_version_is_refused(client):
    client.post(f"{API}/data/BTCUSDT/1h", content=_csv(range(5, 10)),
                headers={"Content-Type": "text/csv"})  # fmt: skip
    op = _fetch(client, mode="tail").json()
    register(client, "cpu-1", kind="backtest")
    claim(client, "cpu-1")
    # Someone imports a new version while the fetch runs.
    client.post(f"{API}/data/BTCUSDT/1h", content=_csv(range(5, 12)),
                headers={"Content-Type": "text/csv"})  # fmt: skip
    merged = upload_artifact(client, _csv(range(5, 15)), "data")
    done = client.post(
        f"{API}/workers/cpu-1/operations/{op['operation_id']}/complete",
        json={"attempt": 1, "result": {"kind": "data_fetch", "data_sha256": merged}},
    )
    assert done.status_code == 422
    assert "BTCUSDT 1h changed while" in done.text and "fetch again" in done.text
    assert client.get(f"{API}/data/BTCUSDT/1h").json()["version"] == 2
