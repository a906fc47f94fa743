"""The operation lifecycle: the transition table, its one gate, its errors and its log.

States: ``pending → running → completed | failed | cancelled``, plus ``running → pending``
when a lease is lost or given back. ``TRANSITIONS`` is the whole table; ``check_transition``
is the only gate; :mod:`ktrdr_api.store` applies a change only through it.

Every committed change is logged (logger ``ktrdr_api.operations``, with ``operation_id``,
``worker_id``, ``event``, ``state``, ``attempt``, ``kind``) by :meth:`Transition.log`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import OperationState

P = OperationState.PENDING
R = OperationState.RUNNING
C = OperationState.COMPLETED
F = OperationState.FAILED
X = OperationState.CANCELLED

# The name operators filter on since the state machine lived in ktrdr_api.operations.
log = logging.getLogger("ktrdr_api.operations")


class Event(StrEnum):
    """Everything that can happen to an operation."""

    CLAIM = "claim"  # a worker takes it
    HEARTBEAT = "heartbeat"  # the holder reports progress and renews the lease
    COMPLETE = "complete"
    FAIL = "fail"
    REQUEST_CANCEL = "request_cancel"  # a user asks; a running one gets a flag
    ACK_CANCEL = "ack_cancel"  # the holder confirms it stopped
    EXPIRE_LEASE = "expire_lease"  # no heartbeat in time, or the holder moved on
    RELEASE = "release"  # the holder gives it back (shutting down)


TRANSITIONS: Mapping[tuple[OperationState, Event], frozenset[OperationState]] = {
    (P, Event.CLAIM): frozenset({R}),
    (P, Event.REQUEST_CANCEL): frozenset({X}),
    (R, Event.HEARTBEAT): frozenset({R}),
    # Cancelled when a cancel was asked for while the result was on its way.
    (R, Event.COMPLETE): frozenset({C, X}),
    (R, Event.FAIL): frozenset({F}),
    (R, Event.REQUEST_CANCEL): frozenset({R}),
    (R, Event.ACK_CANCEL): frozenset({X}),
    # Requeued; failed after too many lost leases; cancelled when a cancel was pending.
    (R, Event.EXPIRE_LEASE): frozenset({P, F, X}),
    (R, Event.RELEASE): frozenset({P, X}),
}
"""(state, event) → the states it may lead to. A pair not listed is forbidden."""


class OperationError(KtrdrError):
    pass


class OperationNotFound(OperationError):
    """No such operation (HTTP 404)."""


class WorkerNotFound(OperationError):
    """The worker never registered, or its record was lost (HTTP 404: register again)."""


class OperationConflict(OperationError):
    """The message does not fit the operation's current state (HTTP 409); nothing changed."""


class InvalidOutcome(OperationError):
    """A completion is malformed: wrong kind, or names artifacts never uploaded (HTTP 422)."""


def check_transition(state: OperationState, event: Event, target: OperationState) -> None:
    """Raise OperationConflict unless ``event`` may take an operation from ``state`` to
    ``target``."""
    allowed = TRANSITIONS.get((state, event), frozenset())
    if target not in allowed:
        if not allowed:
            raise OperationConflict(f"cannot {event.value.replace('_', ' ')}: it is {state}")
        raise OperationConflict(
            f"{event.value} leads from {state} to {sorted(allowed)}, not {target}"
        )


@dataclass(frozen=True)
class Transition:
    """One committed change of one operation (``source`` is None for a creation)."""

    operation_id: str
    kind: str
    event: str
    source: OperationState | None
    target: OperationState
    attempt: int
    worker_id: str | None
    reason: str | None = None
    parent_id: str | None = None  # the walk-forward or study it is a child of

    @property
    def ended_child_of(self) -> str | None:
        """The parent whose child this transition ended (None: no child, or not an end)."""
        return self.parent_id if self.parent_id and self.target.is_terminal else None

    def log(self) -> None:
        level = _LOG_LEVELS.get(self.event, logging.INFO)
        if not log.isEnabledFor(level):
            return
        change = f"{self.source} -> {self.target}" if self.source else str(self.target)
        by = f" (worker {self.worker_id}, attempt {self.attempt})" if self.worker_id else ""
        why = f": {self.reason}" if self.reason else ""
        log.log(
            level,
            f"operation {self.operation_id} {self.event}: {change}{by}{why}",
            extra={
                "operation_id": self.operation_id,
                "worker_id": self.worker_id,
                "attempt": self.attempt,
                "kind": self.kind,
                "event": self.event,
                "state": self.target.value,
            },
        )


_LOG_LEVELS: dict[str, int] = {
    Event.EXPIRE_LEASE: logging.WARNING,  # a worker vanished or stalled
    Event.FAIL: logging.WARNING,
    Event.HEARTBEAT: logging.DEBUG,  # every few seconds per running operation
}
