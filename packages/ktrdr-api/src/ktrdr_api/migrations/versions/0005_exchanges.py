"""Exchanges: a symbol's setting, and each dataset version's exact gap report.

A dataset version records the exchange whose sessions it is checked against, the exact gap
report a worker made against them, and the operation making it. The ``symbols`` table holds
each symbol's exchange for the imports and fetches that name none.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from ktrdr_api.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("exchange", sa.String(32), nullable=True))
        batch.add_column(sa.Column("exact_gap_report", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("exact_report_operation_id", sa.String(32), nullable=True))
    op.create_table(
        "symbols",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name="pk_symbols"),
    )


def downgrade() -> None:
    op.drop_table("symbols")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("exact_report_operation_id")
        batch.drop_column("exact_gap_report")
        batch.drop_column("exchange")
