"""Workers: ``polling_until``, the end of the long poll a worker holds open (on any process).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from ktrdr_api.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("polling_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("polling_until")
