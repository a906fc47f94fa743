"""Who may call what: bearer tokens and their roles, and the protocol-version check.

The token is resolved once per request by plain ASGI middleware (``TokenAuth``: 401 for a
missing, unknown or revoked token; not BaseHTTPMiddleware, so streamed uploads and downloads
pass through untouched). Each route then declares the roles that may call it with
``dependencies=[requires(Role.X)]``; ``_authorize`` is the one role check (403, audited), and
it also keeps a worker token to its own workers and their operations' inputs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import audit
from ktrdr_api.dashboard import is_ui_path
from ktrdr_api.models import ArtifactRef, Operation, Worker
from ktrdr_api.tokens import BOOTSTRAP, LOCAL, Principal, Tokens
from ktrdr_api.workers import protocol_mismatch
from ktrdr_core.access import AuditOutcome, Role
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import PROTOCOL_HEADER, OperationState

log = logging.getLogger("ktrdr_api.auth")

OPEN_PATHS = frozenset({"/api/v1/health"})
"""Paths answered without a token (container and load-balancer health checks); the
dashboard's static files (``ktrdr_api.dashboard.is_ui_path``) hold no data and are open too."""

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


class Forbidden(KtrdrError):
    """The token is valid but its role or scope does not cover the request (HTTP 403)."""


class Access:
    """Who is calling, and whether they may: the one place tokens are resolved and roles and
    worker scopes checked (built by ``create_app``, kept on ``app.state.access``).

    ``bootstrap``: KTRDR_API_TOKEN, an admin token; empty: auth is off and every caller is
    :data:`~ktrdr_api.tokens.LOCAL` (the backend then listens on loopback only).
    ``count_failure(reason)``: called per refused request (``missing``, ``invalid``, ``role``,
    ``scope``), for /metrics.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        tokens: Tokens,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        count_failure: Callable[[str], None],
    ):
        self.enabled = bool(bootstrap)
        self._bootstrap = bootstrap.encode()
        self.tokens = tokens
        self.sessions = sessions
        self.clock = clock
        self.count_failure = count_failure
        self._local_database = sessions.kw["bind"].dialect.name == "sqlite"

    async def authenticate(self, credentials: bytes) -> Principal | None:
        """The principal a bearer token names, or None (unknown or revoked)."""
        if hmac.compare_digest(credentials, self._bootstrap):
            return BOOTSTRAP
        if self._local_database:
            # A primary-key-sized read on SQLite: cheaper than a hand-off to a thread.
            return self._resolve(credentials)
        return await asyncio.to_thread(self._resolve, credentials)

    def _resolve(self, credentials: bytes) -> Principal | None:
        with self.sessions() as session:
            return self.tokens.resolve(session, credentials, self.clock())

    def refuse(self, request: Request, principal: Principal, reason: str, why: str) -> Forbidden:
        """Count and audit a refused request; returns the error to raise (403)."""
        self.count_failure(reason)
        audit.record(
            self.sessions,
            principal,
            "request",
            f"{request.method} {request.url.path}",
            now=self.clock(),
            client=client_address(request),
            outcome=AuditOutcome.REFUSED,
            detail=why,
        )
        return Forbidden(why)

    # --- a worker token's scope: the workers it registered, the operation they hold ---------

    def worker_scope(self, principal: Principal, worker_id: str) -> str | None:
        """Why ``principal`` (a worker token) may not act for ``worker_id``, or None."""
        with self.sessions() as session:
            row = session.get(Worker, worker_id)
            if row is None or row.token_id == principal.token_id:
                return None
        return f"worker {worker_id} was registered with another token than {principal.name}'s"

    def registration_scope(self, principal: Principal, worker_id: str) -> str | None:
        """Why a worker token may not (re-)register ``worker_id``: it holds an operation under
        another token (an idle worker's id may move to a new token: that is a rotation)."""
        with self.sessions() as session:
            row = session.get(Worker, worker_id)
            if row is None or row.token_id == principal.token_id or not row.current_operation_id:
                return None
            return (
                f"worker {worker_id} holds operation {row.current_operation_id} under another "
                "token; register under another id, or wait until it releases the operation"
            )

    def download_scope(self, principal: Principal, sha256: str) -> str | None:
        """Why a worker token may not download artifact ``sha256``: no operation its workers
        hold uses it (as a recorded reference, in its inputs, or as its checkpoint)."""
        with self.sessions() as session:
            held = session.execute(
                select(Operation.id, Operation.inputs, Operation.checkpoint_sha256)
                .join(Worker, Worker.id == Operation.worker_id)
                .where(
                    Worker.token_id == principal.token_id,
                    Operation.state == OperationState.RUNNING.value,
                )
            ).all()
            for operation_id, inputs, checkpoint in held:
                if checkpoint == sha256 or _mentions(inputs, sha256):
                    return None
                used = session.scalar(
                    select(ArtifactRef.id).where(
                        ArtifactRef.referrer == f"operation:{operation_id}",
                        ArtifactRef.sha256 == sha256,
                    )
                )
                if used is not None:
                    return None
        return (
            f"artifact {sha256} is no input of an operation that {principal.name}'s workers "
            "hold: a worker token downloads only the inputs of the operation it runs"
        )

    def upload_scope(
        self, principal: Principal, operation_id: str | None, attempt: int | None
    ) -> str | None:
        """Why a worker token may not upload now: it must name the operation and attempt its
        worker holds."""
        if operation_id is None or attempt is None:
            return (
                "a worker token uploads only for the operation it holds: pass operation_id "
                "and attempt"
            )
        with self.sessions() as session:
            row = session.execute(
                select(Operation.state, Operation.attempt, Worker.token_id)
                .join(Worker, Worker.id == Operation.worker_id, isouter=True)
                .where(Operation.id == operation_id)
            ).first()
        if (
            row is None
            or row.state != OperationState.RUNNING.value
            or row.attempt != attempt
            or row.token_id != principal.token_id
        ):
            return (
                f"operation {operation_id} attempt {attempt} is not held by a worker of "
                f"{principal.name}'s: a worker token uploads only for the attempt it holds"
            )
        return None


REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, unknown or revoked bearer token"},
    403: {"description": "the token's role (or a worker token's scope) does not cover this"},
}
"""The answers every route but health may give before it runs, documented on each."""


def _mentions(value: Any, sha256: str) -> bool:
    """Whether an operation's inputs (JSON) name ``sha256`` anywhere: data checksums, a
    bundle, fold reports. (Some inputs, such as an exact gap report's data, are deliberately
    not recorded as references.)"""
    if isinstance(value, str):
        return value == sha256
    if isinstance(value, dict):
        return any(_mentions(item, sha256) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, sha256) for item in value)
    return False


PRINCIPAL_KEY = "ktrdr.principal"
"""Where TokenAuth leaves the caller's Principal in the ASGI scope."""

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="`Authorization: Bearer <token>`; each operation's scopes name the roles "
    "that may call it (admin, researcher, worker, reader)",
)


async def _authorize(
    request: Request,
    security: SecurityScopes,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The route's role check: the caller's role must grant one of the roles the route
    declares; a worker token acts only for its own workers and downloads only their inputs."""
    access: Access = request.app.state.access
    principal: Principal = request.scope.get(PRINCIPAL_KEY, LOCAL)
    needed = [Role(scope) for scope in security.scopes]
    if not any(principal.role.grants(role) for role in needed):
        why = (
            f"token {principal.name} ({principal.token_id}) has role {principal.role}; "
            f"{request.method} {request.url.path} needs {' or '.join(needed)}"
        )
        raise await run_in_threadpool(access.refuse, request, principal, "role", why)
    if principal.role == Role.WORKER:
        params = request.path_params
        if "worker_id" in params:
            await check_scope(request, principal, "worker", params["worker_id"])
        if "sha256" in params:
            await check_scope(request, principal, "download", params["sha256"])
    return principal


async def check_scope(request: Request, principal: Principal, what: str, *args: Any) -> None:
    """Raise Forbidden (403, counted, audited) when a worker token's scope does not cover
    ``what`` (``worker``, ``registration``, ``download``, ``upload``: the Access method
    ``<what>_scope`` with ``args``)."""
    access: Access = request.app.state.access
    why = await run_in_threadpool(getattr(access, f"{what}_scope"), principal, *args)
    if why is not None:
        raise await run_in_threadpool(access.refuse, request, principal, "scope", why)


def requires(*roles: Role) -> Any:
    """The dependency a route declares: ``dependencies=[requires(Role.READER, Role.WORKER)]``
    (any of the roles; each role also passes the roles it grants, see ktrdr_core.access).
    The roles appear as the scopes of the operation's security requirement in OpenAPI."""
    return Security(_authorize, scopes=[role.value for role in roles])


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


class TokenAuth:
    """Refuse every request but OPEN_PATHS without a valid ``Authorization: Bearer <token>``
    (401); leave the caller's Principal in the scope for the routes' role check."""

    def __init__(self, app: Any, access: Access):
        self.app = app
        self.access = access

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or is_ui_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self.access.enabled:
            scope[PRINCIPAL_KEY] = LOCAL
            await self.app(scope, receive, send)
            return
        scheme, _, credentials = (_header(scope, b"authorization") or b"").partition(b" ")
        credentials = credentials.strip()
        principal = None
        if scheme.lower() == b"bearer" and credentials:
            principal = await self.access.authenticate(credentials)
        if principal is not None:
            scope[PRINCIPAL_KEY] = principal
            await self.app(scope, receive, send)
            return
        reason = "invalid" if credentials else "missing"
        self.access.count_failure(reason)
        client = scope.get("client")
        log.warning(
            "refused %s %s from %s: %s bearer token",
            scope["method"],
            scope["path"],
            client[0] if client else "?",
            reason,
        )
        detail = (
            ("invalid or revoked bearer token" if credentials else "missing bearer token")
            + ": send `Authorization: Bearer <token>` (KTRDR_API_TOKEN, or one made with "
            "`ktrdr tokens create`)"
        )
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
