"""Runs: walk-forward children know their parent and role; every operation its strategy.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("role", sa.String(32), nullable=True))
        batch.add_column(sa.Column("strategy_name", sa.String(128), nullable=True))
        # One child per role and parent: two racing orchestrator passes cannot both add it.
        batch.create_unique_constraint("uq_operations_parent_id", ["parent_id", "role"])
        batch.create_index("ix_operations_parent_id", ["parent_id"])
        batch.create_index("ix_operations_strategy_name", ["strategy_name", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_index("ix_operations_strategy_name")
        batch.drop_index("ix_operations_parent_id")
        batch.drop_constraint("uq_operations_parent_id", type_="unique")
        batch.drop_column("strategy_name")
        batch.drop_column("role")
        batch.drop_column("parent_id")
