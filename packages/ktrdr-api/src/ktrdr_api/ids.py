"""Ids and the clock: the leaf every other backend module may import."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC (the default clock; tests inject another)."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short random id such as ``op_3f9c0a1b2d4e`` (48 random bits)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
