"""Tokens and the audit trail (admin only): create, list and revoke tokens; list audit events.

A token's secret is answered once, at creation; the backend keeps only a keyed hash of it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from ktrdr_api import audit, tokens
from ktrdr_api.auth import requires
from ktrdr_api.deps import AuditDep, BackendDep, PrincipalDep, SessionDep
from ktrdr_core.access import (
    TOKEN_ID_PATTERN,
    AuditEventView,
    AuditOutcome,
    Role,
    TokenCreated,
    TokenRequest,
    TokenView,
)

router = APIRouter(tags=["access"])


@router.get("/me", dependencies=[requires(Role.READER, Role.WORKER)])
def me(principal: PrincipalDep) -> dict[str, str]:
    """The caller's token name and role: what the dashboard may offer (a reader's page shows
    cancel and retry as unavailable instead of failing on them)."""
    return {"name": principal.name, "role": principal.role.value}


TokenIdPath = Annotated[str, Path(pattern=TOKEN_ID_PATTERN)]


@router.post("/tokens", status_code=201, dependencies=[requires(Role.ADMIN)])
def create_token(
    body: TokenRequest, request: Request, backend: BackendDep, auditor: AuditDep
) -> TokenCreated:
    """A new token for ``name`` with ``role``; ``secret`` is shown this once."""
    access = request.app.state.access
    with backend.sessions.begin() as session:
        created = access.tokens.create(
            session,
            body.name,
            body.role,
            now=backend.operations.clock(),
            created_by=auditor.principal.name,
        )
    auditor("token.create", f"{created.token_id} {created.name}", detail=f"role {created.role}")
    return created


@router.get("/tokens", dependencies=[requires(Role.ADMIN)])
def list_tokens(session: SessionDep, include_revoked: bool = False) -> list[TokenView]:
    """Ids, names and roles (never secrets), oldest first."""
    return tokens.listed(session, include_revoked=include_revoked)


@router.delete("/tokens/{token_id}", responses={404: {}}, dependencies=[requires(Role.ADMIN)])
def revoke_token(token_id: TokenIdPath, backend: BackendDep, auditor: AuditDep) -> TokenView:
    """Revoke at once: the next request carrying it is refused (401)."""
    with backend.sessions.begin() as session:
        revoked = tokens.revoke(session, token_id, backend.operations.clock())
    auditor("token.revoke", f"{revoked.token_id} {revoked.name}", detail=f"role {revoked.role}")
    return revoked


@router.get("/audit", dependencies=[requires(Role.ADMIN)])
def list_audit(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    token_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_]{1,32}$")] = None,
    action: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z.]+$")] = None,
    outcome: AuditOutcome | None = None,
) -> list[AuditEventView]:
    """Audit events, newest first, filtered by token, action and outcome."""
    return audit.events(session, limit=limit, token_id=token_id, action=action, outcome=outcome)
