"""Issued bearer tokens: created, listed, revoked, and resolved to the principal calling.

A token is ``ktrdr_`` and 43 random URL-safe characters (256 bits), shown once when created.
The database keeps only HMAC-SHA256(server key, token): a copy of the database alone does not
let anyone in, and since a token is random and long, a fast keyed hash is as strong as a slow
password hash would be. The server key is KTRDR_TOKEN_SECRET, else a random key kept in
``$KTRDR_HOME/token-secret`` (created, mode 0600, at the first start): every backend process
sharing a database must share it (the homelab keeps the home on one volume).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ktrdr_api.catalog import NotFound
from ktrdr_api.ids import new_id
from ktrdr_api.models import ApiToken
from ktrdr_core.access import Role, TokenCreated, TokenView
from ktrdr_core.settings import Settings

TOKEN_PREFIX = "ktrdr_"
KEY_FILE = "token-secret"
LAST_USED_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token (not on every request)."""


@dataclass(frozen=True)
class Principal:
    """Who sends a request: a token's id, name and role."""

    token_id: str
    name: str
    role: Role


BOOTSTRAP = Principal("bootstrap", "KTRDR_API_TOKEN", Role.ADMIN)
"""The holder of the backend's own KTRDR_API_TOKEN."""

LOCAL = Principal("local", "auth off", Role.ADMIN)
"""Every caller while the backend runs without a token (loopback only)."""


def server_key(settings: Settings) -> bytes:
    """The key token hashes are made with: KTRDR_TOKEN_SECRET, else the home's key file
    (made on first use)."""
    if settings.token_secret:
        return settings.token_secret.encode()
    path = settings.home / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    settings.home.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    # Written whole under a name of its own, then linked into place: API processes starting
    # together never read a half-written key, and the first link wins for all of them.
    fd, staged = tempfile.mkstemp(dir=settings.home, prefix=f".{KEY_FILE}-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(staged, path)
        except FileExistsError:  # another backend process made it first
            return Path(path).read_bytes().strip()
    finally:
        os.unlink(staged)
    return key


class Tokens:
    """The token table behind a server key."""

    def __init__(self, key: bytes):
        self._key = key

    def digest(self, secret: str | bytes) -> str:
        raw = secret.encode() if isinstance(secret, str) else secret
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    def create(
        self, session: Session, name: str, role: Role, *, now: datetime, created_by: str
    ) -> TokenCreated:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            id=new_id("tok"),
            name=name,
            role=role.value,
            secret_hash=self.digest(secret),
            created_at=now,
            created_by=created_by,
        )
        session.add(row)
        session.flush()
        return TokenCreated(**view(row).model_dump(), secret=secret)

    def resolve(self, session: Session, secret: bytes, now: datetime) -> Principal | None:
        """The principal of a live (not revoked) token with this secret, else None."""
        if not secret.startswith(TOKEN_PREFIX.encode()):
            return None
        row = session.scalar(select(ApiToken).where(ApiToken.secret_hash == self.digest(secret)))
        if row is None or row.revoked_at is not None:
            return None
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            row.last_used_at = now
            session.commit()
        return Principal(row.id, row.name, Role(row.role))


def view(row: ApiToken) -> TokenView:
    return TokenView(
        token_id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def listed(session: Session, *, include_revoked: bool = False) -> list[TokenView]:
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [view(row) for row in session.scalars(query)]


def revoke(session: Session, token_id: str, now: datetime) -> TokenView:
    """Revoke at once (the next request with it is refused); revoking twice keeps the first
    time. NotFound names the id."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}: `ktrdr tokens list` shows the ids")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return view(row)
