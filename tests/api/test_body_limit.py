"""Bodies outside the streamed uploads are capped before they are held in memory."""

from __future__ import annotations

import hashlib

from ktrdr_api.auth import MAX_BODY_BYTES
from tests.support.api import API

TOO_BIG = MAX_BODY_BYTES + 1024


def test_a_declared_oversized_json_body_is_refused_with_413(client):
    response = client.post(
        f"{API}/strategies/validate",
        content=b"{" + b" " * TOO_BIG + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "request body over 8 MiB" in response.json()["detail"]


def test_a_chunked_oversized_body_is_refused_as_it_arrives(client):
    def chunks():
        yield b'{"strategy": "'
        for _ in range(TOO_BIG // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(
        f"{API}/training", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_body_under_the_limit_reaches_its_route(client):
    response = client.post(f"{API}/strategies/validate", json={"strategy": "name: x\n"})
    # The route itself answered: the strategy's problems, by key path.
    assert response.status_code == 422 and response.json()["issues"], response.text


def test_streamed_uploads_keep_their_own_larger_limit(client):
    data = b"\x00checkpoint" * (TOO_BIG // 11 + 1)
    response = client.post(
        f"{API}/artifacts",
        params={"kind": "checkpoint"},
        content=data,
        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data) > MAX_BODY_BYTES
