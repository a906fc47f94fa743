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


MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body outside the streamed uploads: a strategy (at most 1 MiB of YAML)
with its overrides, or a worker's completion with its training history, fits many times."""


def streamed_upload(method: str, path: str) -> bool:
    """The routes that stream their body to disk under KTRDR_MAX_UPLOAD_MB themselves: data
    files, artifacts and model bundles. Every other body is read into memory to be parsed."""
    if method != "POST":
        return False
    if path in ("/api/v1/artifacts", "/api/v1/models"):
        return True
    return path.startswith("/api/v1/data/") and path != "/api/v1/data/fetch"


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 to a body over MAX_BODY_BYTES before it is held in memory, whether its
    length is declared or it arrives in chunks (streamed uploads have their own limit)."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    def _detail(self) -> str:
        return (
            f"request body over {self.limit // (1024 * 1024)} MiB: a strategy is at most "
            "1 MiB; data files and bundles go to their upload routes"
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or streamed_upload(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _reply(send, 413, self._detail(), [])
            return
        seen = 0
        too_large = False
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal seen, too_large
            if too_large:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # End the body here; whatever the app answers to the stub is replaced.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def answer(message: dict[str, Any]) -> None:
            nonlocal started
            if too_large:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _reply(send, 413, self._detail(), [])
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await _reply(send, 413, self._detail(), [])
