"""Database tables (SQLAlchemy 2): operations, workers, datasets, symbols, models, artifacts,
tokens and the audit trail.

The schema is created by the migrations under ``migrations/versions``, never by
``create_all``; a test checks that these models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so that SQLite batch migrations can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in and out, whatever the database keeps.

    SQLite has no time zones: values are stored as naive UTC text (which sorts correctly)
    and come back marked UTC. PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: ktrdr stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Operation(Base):
    """One training or backtest run; state changes go through ktrdr_api.operations only."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the operation last became pending: times the GPU grace (see dispatch).
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None: any device; otherwise only a worker with that device may claim it.
    device: Mapped[str | None] = mapped_column(String(8))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    retry_of: Mapped[str | None] = mapped_column(String(32))
    # A walk-forward's children name it and their role in it ("train:3", "backtest:3",
    # "report": ktrdr_core.protocol.ChildRole as text); see ktrdr_api.walkforward.
    parent_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(32))
    # For `ktrdr runs list --strategy NAME` (backtests take it from their model).
    strategy_name: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("parent_id", "role"),
        Index("ix_operations_parent_id", "parent_id"),
        Index("ix_operations_strategy_name", "strategy_name", "created_at"),
        Index("ix_operations_queue", "kind", "state", "created_at"),
        Index("ix_operations_state_lease", "state", "lease_expires_at"),
        Index("ix_operations_created_at", "created_at"),
    )


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(8))
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    versions: Mapped[dict[str, str]] = mapped_column(JSON)
    protocol: Mapped[int] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    current_operation_id: Mapped[str | None] = mapped_column(String(32))
    # The token that registered it: a worker token acts only for the workers it registered.
    token_id: Mapped[str | None] = mapped_column(String(32))
    # The end of the long poll it holds open right now, on whichever API process (None: not
    # polling). Set when the poll begins, cleared when it ends: every process reads the same.
    polling_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Artifact(Base):
    """A content-addressed file in the artifact store."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ArtifactRef(Base):
    """``referrer`` ("operation:op_…", "model:mdl_…", "dataset:AAPL/1h@2") uses artifact."""

    __tablename__ = "artifact_refs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), ForeignKey("artifacts.sha256"))
    referrer: Mapped[str] = mapped_column(String(96))

    __table_args__ = (
        UniqueConstraint("sha256", "referrer", name="uq_artifact_refs_sha256_referrer"),
        Index("ix_artifact_refs_referrer", "referrer"),
    )


class Dataset(Base):
    """One version of the OHLCV file for a symbol and timeframe."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64), ForeignKey("artifacts.sha256"))
    rows: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    gap_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    warnings: Mapped[list[str]] = mapped_column(JSON)
    source_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The exchange whose sessions the exact gap report checks; that report (a worker's
    # ExactGapReport, once its gap_report operation completed) and the operation making it.
    exchange: Mapped[str | None] = mapped_column(String(32))
    exact_gap_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    exact_report_operation_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint(
            "symbol", "timeframe", "version", name="uq_datasets_symbol_timeframe_version"
        ),
    )


class SymbolSetting(Base):
    """What a symbol trades on, for every import and fetch of it that does not say."""

    __tablename__ = "symbols"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    exchange: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Model(Base):
    """A trained model bundle (zip) and what made it."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    bundle_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("artifacts.sha256"))
    training_operation_id: Mapped[str | None] = mapped_column(String(32))
    strategy_hash: Mapped[str | None] = mapped_column(String(80))
    data: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # bundle.json (training history, explanations: tens of kB): loaded only where it is shown,
    # not when a backtest merely needs the model's bundle and data.
    bundle_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token the backend issued; only a keyed hash of its secret is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    # HMAC-SHA256 of the secret under the server's token key, hex.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """A destructive or security-relevant action, done or refused (the audit trail)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    token_id: Mapped[str] = mapped_column(String(32))
    token_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_audit_events_at", "at"),)
