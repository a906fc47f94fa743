"""Bearer-token auth and the protocol-version check, as plain ASGI middleware.

Plain ASGI (not BaseHTTPMiddleware) so that streamed uploads and downloads pass through
untouched and a request costs one header lookup.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from ktrdr_api.workers import protocol_mismatch
from ktrdr_core.protocol import PROTOCOL_HEADER

OPEN_PATHS = frozenset({"/api/v1/health"})
"""Paths answered without a token (container and load-balancer health checks)."""

_PROTOCOL_HEADER = PROTOCOL_HEADER.lower().encode()


async def _reply(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class TokenAuth:
    """Refuse every request but OPEN_PATHS without ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        scheme, _, credentials = (_header(scope, b"authorization") or b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token):
            await self.app(scope, receive, send)
            return
        detail = (
            "invalid bearer token" if credentials else "missing bearer token"
        ) + ": send `Authorization: Bearer <KTRDR_API_TOKEN>` (the backend's token)"
        await _reply(send, 401, detail, [(b"www-authenticate", b"Bearer")])


class ProtocolCheck:
    """Answer 426 when a request declares (X-Ktrdr-Protocol) a protocol we do not speak."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            declared = _header(scope, _PROTOCOL_HEADER)
            if declared is not None:
                try:
                    peer = int(declared)
                except ValueError:
                    await _reply(
                        send, 400, f"{PROTOCOL_HEADER} must be an integer, got {declared!r}", []
                    )
                    return
                mismatch = protocol_mismatch(peer, "client")
                if mismatch is not None:
                    await _reply(send, 426, str(mismatch), [])
                    return
        await self.app(scope, receive, send)
