"""State core: operations, workers, artifacts and their references, datasets, models.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from ktrdr_api.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("pending_since", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("device", sa.String(8), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("checkpoint_sha256", sa.String(64), nullable=True),
        sa.Column("retry_of", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
    )
    op.create_index("ix_operations_queue", "operations", ["kind", "state", "created_at"])
    op.create_index("ix_operations_state_lease", "operations", ["state", "lease_expires_at"])
    op.create_index("ix_operations_created_at", "operations", ["created_at"])

    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("device", sa.String(8), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("protocol", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("registered_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("current_operation_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )

    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_artifacts"),
    )

    op.create_table(
        "artifact_refs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("referrer", sa.String(96), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["artifacts.sha256"], name="fk_artifact_refs_sha256_artifacts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_refs"),
        sa.UniqueConstraint("sha256", "referrer", name="uq_artifact_refs_sha256_referrer"),
    )
    op.create_index("ix_artifact_refs_referrer", "artifact_refs", ["referrer"])

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("gap_report", sa.JSON(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("source_name", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["checksum"], ["artifacts.sha256"], name="fk_datasets_checksum_artifacts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint(
            "symbol", "timeframe", "version", name="uq_datasets_symbol_timeframe_version"
        ),
    )

    op.create_table(
        "models",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("bundle_sha256", sa.String(64), nullable=False),
        sa.Column("training_operation_id", sa.String(32), nullable=True),
        sa.Column("strategy_hash", sa.String(80), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("bundle_metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_sha256"], ["artifacts.sha256"], name="fk_models_bundle_sha256_artifacts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
    )


def downgrade() -> None:
    op.drop_table("models")
    op.drop_table("datasets")
    op.drop_index("ix_artifact_refs_referrer", table_name="artifact_refs")
    op.drop_table("artifact_refs")
    op.drop_table("artifacts")
    op.drop_table("workers")
    op.drop_index("ix_operations_created_at", table_name="operations")
    op.drop_index("ix_operations_state_lease", table_name="operations")
    op.drop_index("ix_operations_queue", table_name="operations")
    op.drop_table("operations")
