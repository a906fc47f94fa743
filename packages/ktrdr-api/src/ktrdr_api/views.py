"""What the API shows of a stored operation: its row read back as protocol models."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row, bindparam, select

from ktrdr_api.models import Operation
from ktrdr_core.protocol import (
    AttemptRecord,
    OperationInputs,
    OperationKind,
    OperationState,
    OperationView,
    Progress,
    Reproducibility,
)

_INPUTS: TypeAdapter[Any] = TypeAdapter(OperationInputs)

BY_ID = select(Operation.__table__).where(Operation.__table__.c.id == bindparam("id"))
"""One operation's row by ``id``: a Core select, for reads that skip the ORM session."""


def stored_inputs(op: Operation | Row[Any]) -> Any:
    """The operation's inputs as their protocol model (chosen by their ``kind``)."""
    return _INPUTS.validate_python(op.inputs)


def to_view(op: Operation | Row[Any]) -> OperationView:
    """The API's picture of one operation (an ORM object or a row of its table), with its
    reproducibility record."""
    inputs = stored_inputs(op)
    return OperationView(
        operation_id=op.id,
        kind=OperationKind(op.kind),
        state=OperationState(op.state),
        progress=Progress.model_validate(op.progress or {}),
        created_at=op.created_at,
        updated_at=op.updated_at,
        started_at=op.started_at,
        finished_at=op.finished_at,
        cancel_requested=op.cancel_requested,
        attempt=op.attempt,
        worker_id=op.worker_id,
        lease_expires_at=op.lease_expires_at,
        inputs=inputs,
        reproducibility=Reproducibility(
            # Not every kind has a strategy, data or a seed (a data fetch has none of them).
            strategy_hash=getattr(inputs, "strategy_hash", None),
            data_checksums={
                f"{d.symbol}/{d.timeframe}@{d.version}": d.checksum
                for d in getattr(inputs, "data", ())
            },
            seed=getattr(inputs, "seed", None),
            versions=inputs.versions,
            worker_id=op.attempts[-1]["worker_id"] if op.attempts else None,
            attempts=[AttemptRecord.model_validate(a) for a in op.attempts],
        ),
        error=op.error,
        result=op.result,
        checkpoint_sha256=op.checkpoint_sha256,
        retry_of=op.retry_of,
        strategy_name=op.strategy_name,
        parent_id=op.parent_id,
        role=op.role,
        device=op.device,
    )
