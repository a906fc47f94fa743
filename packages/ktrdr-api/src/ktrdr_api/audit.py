"""The audit trail: every destructive or security-relevant action, done or refused.

Each event is a row of ``audit_events`` (``ktrdr audit`` lists them) and a line of the JSON
log (logger ``ktrdr_api.audit``, the event under ``audit``). Recorded: deletes (with
``force`` in the detail), model imports, cancels, token creation and revocation, and every
request refused for its token's role or scope (403). Requests without a valid token (401)
are counted in /metrics and logged, not stored: an unauthenticated caller cannot fill the
table.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ktrdr_api.models import AuditEvent
from ktrdr_api.tokens import Principal
from ktrdr_core.access import AuditEventView, AuditOutcome, Role

log = logging.getLogger("ktrdr_api.audit")


def record(
    sessions: sessionmaker[Session],
    principal: Principal,
    action: str,
    target: str,
    *,
    now: datetime,
    client: str | None,
    outcome: AuditOutcome = AuditOutcome.DONE,
    detail: str | None = None,
) -> AuditEventView:
    """Store the event and write its log line; returns it as listed."""
    with sessions.begin() as session:
        row = AuditEvent(
            at=now,
            token_id=principal.token_id,
            token_name=principal.name,
            role=principal.role.value,
            action=action,
            target=target[:255],
            outcome=outcome.value,
            client=client,
            detail=detail,
        )
        session.add(row)
        session.flush()
        event = view(row)
    log.log(
        logging.WARNING if outcome == AuditOutcome.REFUSED else logging.INFO,
        "audit: %s %s %s by %s (%s, %s) from %s",
        action,
        target,
        outcome.value,
        principal.name,
        principal.token_id,
        principal.role.value,
        client or "?",
        extra={"audit": event.model_dump(mode="json")},
    )
    return event


def view(row: AuditEvent) -> AuditEventView:
    return AuditEventView(
        event_id=row.id,
        at=row.at,
        token_id=row.token_id,
        token_name=row.token_name,
        role=Role(row.role),
        action=row.action,
        target=row.target,
        outcome=AuditOutcome(row.outcome),
        client=row.client,
        detail=row.detail,
    )


def events(
    session: Session,
    *,
    limit: int = 100,
    token_id: str | None = None,
    action: str | None = None,
    outcome: AuditOutcome | None = None,
) -> list[AuditEventView]:
    """Newest first."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if token_id:
        query = query.where(AuditEvent.token_id == token_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome.value)
    return [view(row) for row in session.scalars(query)]
