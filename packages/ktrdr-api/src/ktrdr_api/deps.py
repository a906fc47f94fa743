"""Objects routes receive by injection: settings, sessions, the state machine, the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api import audit
from ktrdr_api.artifacts import ArtifactStore
from ktrdr_api.auth import PRINCIPAL_KEY, client_address
from ktrdr_api.dispatch import Dispatcher
from ktrdr_api.metrics import Metrics
from ktrdr_api.operations import Operations
from ktrdr_api.tokens import LOCAL, Principal
from ktrdr_api.tunes import Tunes
from ktrdr_api.walkforward import Orchestrator
from ktrdr_core.exchanges import exchange_code
from ktrdr_core.protocol import normalise_symbol
from ktrdr_core.settings import Settings


@dataclass
class Backend:
    """Everything one app instance holds; lives on ``app.state.backend``."""

    settings: Settings
    sessions: sessionmaker[Session]
    operations: Operations
    dispatcher: Dispatcher
    store: ArtifactStore
    metrics: Metrics
    walkforwards: Orchestrator
    tunes: Tunes

    @property
    def local_database(self) -> bool:
        """SQLite: a file on this host, read without waiting on writers (WAL mode)."""
        return self.sessions.kw["bind"].dialect.name == "sqlite"


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
# its thread pool, a hand-off that costs more than the work (a third of a status read).


async def get_backend(request: Request) -> Backend:
    return request.app.state.backend


async def get_principal(request: Request) -> Principal:
    """Who sends the request (TokenAuth resolved it; the route's ``requires`` checked it)."""
    return request.scope.get(PRINCIPAL_KEY, LOCAL)


@dataclass
class Auditor:
    """Records an action done for this request in the audit trail (see ktrdr_api.audit)."""

    backend: Backend
    principal: Principal
    client: str | None

    def __call__(self, action: str, target: str, detail: str | None = None) -> None:
        audit.record(
            self.backend.sessions,
            self.principal,
            action,
            target,
            now=self.backend.operations.clock(),
            client=self.client,
            detail=detail,
        )


async def get_auditor(
    request: Request,
    backend: Annotated[Backend, Depends(get_backend)],
    principal: Annotated[Principal, Depends(get_principal)],
) -> Auditor:
    return Auditor(backend, principal, client_address(request))


def get_session(backend: Annotated[Backend, Depends(get_backend)]) -> Iterator[Session]:
    """A session for reads and catalogue writes; the route commits what it changes."""
    with backend.sessions() as session:
        yield session


def checked_symbol(value: str, where: str = "path") -> str:
    """``value`` upper-cased; a 422 naming ``(where, "symbol")`` when it is no symbol."""
    try:
        return normalise_symbol(value)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": (where, "symbol"), "msg": str(exc), "input": value}]
        ) from None


async def symbol_param(symbol: Annotated[str, Path(max_length=32)]) -> str:
    """The ``{symbol}`` path segment, upper-cased; 422 naming the field when invalid."""
    return checked_symbol(symbol)


async def exchange_param(
    exchange: Annotated[
        str | None,
        Query(max_length=32, description="the exchange the symbol trades on: XNYS, XLON, 24/7"),
    ] = None,
) -> str | None:
    """The ``exchange`` query parameter as its code (``nasdaq`` -> ``XNYS``); a 422 naming
    the close matches when it names no exchange."""
    if exchange is None:
        return None
    try:
        return exchange_code(exchange)
    except ValueError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "exchange"),
                    "msg": str(exc),
                    "input": exchange,
                }
            ]
        ) from None


OperationIdPath = Annotated[str, Path(max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
"""An ``{operation_id}`` segment: an unknown id is a 404, but a NUL, slash or space is refused
(422) before it reaches the database (PostgreSQL text cannot hold a NUL)."""

BackendDep = Annotated[Backend, Depends(get_backend)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AuditDep = Annotated[Auditor, Depends(get_auditor)]
SessionDep = Annotated[Session, Depends(get_session)]
SymbolDep = Annotated[str, Depends(symbol_param)]
ExchangeDep = Annotated[str | None, Depends(exchange_param)]
