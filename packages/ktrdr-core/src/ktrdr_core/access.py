"""Who may do what: the roles a backend token carries, and the token and audit views.

| role | may |
| --- | --- |
| ``admin`` | everything: the others' rights, tokens, the audit trail |
| ``researcher`` | run, read, delete (what is in use only with force); run workers |
| ``worker`` | register, claim, heartbeat; download inputs and upload results of its operation |
| ``reader`` | read only (dashboards, monitoring) |

A route declares the roles that may call it; a token's role grants itself and the roles
listed under it in :data:`GRANTS`. The bootstrap ``KTRDR_API_TOKEN`` is an admin token.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    READER = "reader"
    WORKER = "worker"
    RESEARCHER = "researcher"
    ADMIN = "admin"

    def grants(self, needed: Role) -> bool:
        """True when a token of this role may call a route declared for ``needed``."""
        return needed in GRANTS[self]


GRANTS: dict[Role, frozenset[Role]] = {
    Role.READER: frozenset({Role.READER}),
    Role.WORKER: frozenset({Role.WORKER}),
    Role.RESEARCHER: frozenset({Role.READER, Role.WORKER, Role.RESEARCHER}),
    Role.ADMIN: frozenset(Role),
}
"""Each role and the roles whose routes it may call (itself included)."""

TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
TOKEN_ID_PATTERN = r"^tok_[0-9a-f]{12}$"


class TokenRequest(BaseModel):
    """``POST /tokens``: a token for ``name`` (a host, a person, a dashboard) with ``role``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=TOKEN_NAME_PATTERN)]
    role: Role


class TokenView(BaseModel):
    """A token as listed: its id, name and role, never its secret."""

    model_config = ConfigDict(extra="ignore")

    token_id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class TokenCreated(TokenView):
    """The answer to a creation: the only time the secret is shown (the backend keeps a
    keyed hash of it)."""

    secret: str


class AuditOutcome(StrEnum):
    DONE = "done"
    REFUSED = "refused"


class AuditEventView(BaseModel):
    """One line of the audit trail: who (token id and name, role), what, when, from where."""

    model_config = ConfigDict(extra="ignore")

    event_id: int
    at: datetime
    token_id: str
    token_name: str
    role: Role
    action: str
    target: str
    outcome: AuditOutcome
    client: str | None = None
    detail: str | None = None
