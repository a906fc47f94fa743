"""Typed results: a completed walk-forward's result says it is a walk-forward's.

Until now a walk-forward's result was its report job's result (``kind: wf_report``) plus
``report_operation_id`` and ``children``. Read back typed, each kind has its own result model
chosen by ``kind`` (``ktrdr_core.protocol.OperationResultView``), so the stored walk-forward
results become ``kind: walkforward``; every other key stays as it was. Roles keep their
stored text (``train:3``, ``backtest:3``, ``report``), read by ``ChildRole.parse``.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_operations = sa.table(
    "operations",
    sa.column("id", sa.String(32)),
    sa.column("kind", sa.String(16)),
    sa.column("result", sa.JSON),
)


def _relabel(old: str, new: str) -> None:
    """Walk-forward results whose ``kind`` is ``old`` get ``new``, nothing else changes."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_operations.c.id, _operations.c.result).where(_operations.c.kind == "walkforward")
    ).all()
    for operation_id, result in rows:
        # A JSON null and SQL NULL both read as None: nothing was stored.
        if isinstance(result, dict) and result.get("kind") == old:
            connection.execute(
                sa.update(_operations)
                .where(_operations.c.id == operation_id)
                .values(result=result | {"kind": new})
            )


def upgrade() -> None:
    _relabel("wf_report", "walkforward")


def downgrade() -> None:
    _relabel("walkforward", "wf_report")
