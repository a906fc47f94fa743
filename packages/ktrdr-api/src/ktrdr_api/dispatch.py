"""Who gets what: the one place that decides which worker runs which operation.

Rules, in order:

1. A worker gets only the operation kinds its own kind serves (``protocol.SERVED_BY``:
   training workers train; backtest workers backtest and fetch market data), oldest first
   (by creation: a requeued operation goes back to the head of the queue, not the tail).
2. An operation that asks for a device (``training.device: cuda``) goes only to a worker
   with that device.
3. **GPU first**: while a GPU worker of the same kind is long-polling (on any API process: its
   ``polling_until`` in the database), a CPU worker leaves a training operation that asks for
   no device alone for ``GPU_GRACE_S`` after it became pending, so the GPU worker gets it.
   With no GPU worker waiting, a CPU worker takes it at once.

Long polling: a claiming worker waits on an ``asyncio.Event`` that ``notify`` sets as soon as
an operation of its kind is committed as pending, so an idle worker receives a new operation
in milliseconds. One notification wakes one waiter (the longest waiting), plus one GPU waiter
for a training operation, never every waiter of the kind: with hundreds of workers polling,
waking them all for one operation would cost hundreds of claim queries for one claim. With
several API processes the notification comes through PostgreSQL (``LISTEN/NOTIFY``, see
:mod:`ktrdr_api.coordination`): addressed to the creating process when one of its own waiters
will take the operation (:meth:`Dispatcher.addressee`), otherwise to every process, each of
which wakes its own waiter. A slow
periodic re-check (``RECHECK_S``) covers what no notification announces (the end of a grace
period, a wake-up that lost its race): once a period, one waiter per worker kind looks at the
queue, and one that finds work passes the look on to the next waiter, so the re-check costs
a query or two per period whatever the number of waiting workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from ktrdr_api.models import Operation, Worker
from ktrdr_core.protocol import (
    SERVED_BY,
    ClaimResponse,
    Device,
    OperationKind,
    OperationState,
    OperationView,
    WorkerStatus,
    WorkerView,
    served_kinds,
)

GPU_GRACE_S = 2.0
"""Seconds a CPU worker leaves a fresh training operation to a waiting GPU worker."""

RECHECK_S = 1.0
"""Longest wait between two looks at the queue during a long poll, in seconds."""

_CANDIDATES = 16  # queue head looked at per claim; more is only needed with exotic devices


@dataclass(frozen=True)
class WorkerInfo:
    """What dispatch needs to know about a claiming worker."""

    worker_id: str
    kind: OperationKind
    device: Device
    versions: dict[str, str]


class ClaimSource(Protocol):
    """Where claims are made (``Operations``): the long poll only waits between tries."""

    def begin_claim(self, worker_id: str, timeout_s: float) -> WorkerInfo: ...

    def try_claim(self, worker: WorkerInfo) -> ClaimResponse | None: ...

    def hung_up(self, worker_id: str) -> None: ...


def may_take(
    worker_device: Device,
    op: Operation,
    *,
    gpu_waiting: bool,
    now: datetime,
    grace: timedelta,
) -> bool:
    """Whether a worker with ``worker_device`` may claim the pending ``op`` now."""
    if op.device is not None and op.device != worker_device.value:
        return False
    return not (gpu_waiting and in_gpu_grace(worker_device, op, now=now, grace=grace))


def in_gpu_grace(worker_device: Device, op: Operation, *, now: datetime, grace: timedelta) -> bool:
    """Whether ``op`` is a training operation a CPU worker leaves to a waiting GPU worker."""
    return (
        op.kind == OperationKind.TRAINING
        and worker_device == Device.CPU
        and op.device is None
        and op.pending_since is not None
        and now - op.pending_since < grace
    )


def gpu_waiting(session: Session, kind: OperationKind, now: datetime) -> bool:
    """Whether a GPU worker of ``kind`` is long-polling now, on any API process."""
    polling = exists().where(
        Worker.kind == kind.value,
        Worker.device != Device.CPU.value,
        Worker.polling_until > now,
    )
    return bool(session.scalar(select(polling)))


def waiting_reason(view: OperationView, workers: Iterable[WorkerView]) -> str | None:
    """Why the pending operation ``view`` cannot start now, or None when a worker that may
    take it is registered and heard from (idle or busy: a busy one takes it next)."""
    served_by = SERVED_BY.get(view.kind)
    if view.state != OperationState.PENDING or served_by is None:
        return None
    live = [
        w
        for w in workers
        if w.kind == served_by and w.status in (WorkerStatus.IDLE, WorkerStatus.BUSY)
    ]
    if not live:
        return f"waiting: no {served_by.value} worker is registered and reachable"
    if view.device and not any(w.capabilities.device.value == view.device for w in live):
        return f"waiting: no registered {served_by.value} worker offers {view.device}"
    return None


def candidates(
    session: Session,
    worker: WorkerInfo,
    *,
    now: datetime,
    grace: timedelta,
) -> list[str]:
    """Ids of the pending operations ``worker`` may claim, best first. Whether a GPU worker
    waits is asked only when the queue's head holds a training in its grace."""
    query = (
        select(Operation)
        .where(
            Operation.kind.in_([kind.value for kind in served_kinds(worker.kind)]),
            Operation.state == OperationState.PENDING,
        )
        .where(or_(Operation.device.is_(None), Operation.device == worker.device.value))
        .order_by(Operation.created_at, Operation.id)
        .limit(_CANDIDATES)
    )
    ops = session.scalars(query).all()
    held_back = any(in_gpu_grace(worker.device, op, now=now, grace=grace) for op in ops)
    gpu = held_back and gpu_waiting(session, worker.kind, now)
    return [
        op.id for op in ops if may_take(worker.device, op, gpu_waiting=gpu, now=now, grace=grace)
    ]


@dataclass(eq=False)
class _Waiter:
    worker_id: str
    kind: OperationKind
    device: Device
    event: asyncio.Event = field(default_factory=asyncio.Event)
    rechecking: bool = False  # woken by the periodic re-check, not by a notification


class Dispatcher:
    """Long-poll claims on top of ``Operations.try_claim``, woken by ``notify``."""

    def __init__(self, operations: ClaimSource, *, recheck_s: float = RECHECK_S):
        self.operations = operations
        self.recheck_s = recheck_s
        self._waiters: dict[int, _Waiter] = {}
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rechecks: asyncio.Task[None] | None = None
        self.name = secrets.token_hex(6)
        """This process's name in addressed wake-ups (ktrdr_api.coordination.topics_of)."""

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the event loop the app serves on (called from the lifespan)."""
        self._loop = loop

    def waiting(self) -> list[tuple[str, OperationKind, Device]]:
        """(worker id, kind, device) of every worker long-polling this process right now
        (every process's: the workers' ``polling_until``)."""
        return [(w.worker_id, w.kind, w.device) for w in list(self._waiters.values())]

    def notify(self, kind: str, addressee: str | None = None) -> None:
        """An operation of ``kind`` became claimable: wake the longest-waiting worker that
        serves it, and for a training operation also the longest-waiting GPU one (GPU first
        may leave it to that one). A wake-up addressed to another process is not ours to act
        on. Callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed() or addressee not in (None, self.name):
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shut-down
            loop.call_soon_threadsafe(self._wake_one, OperationKind(kind))

    def addressee(self, kind: str) -> str | None:
        """Who must hear of one new operation of ``kind``: this process (its ``name``) when a
        waiter here, not yet woken, takes it (for a training operation, only with a GPU
        waiter among them: GPU first may leave it to a GPU worker polling elsewhere), or
        None: every process. Called from the committing thread."""
        picks = self._picks(OperationKind(kind))
        if not picks:
            return None
        if kind == OperationKind.TRAINING and all(w.device == Device.CPU for w in picks):
            return None
        return self.name

    def _picks(self, kind: OperationKind) -> list[_Waiter]:
        """The waiters one notification for ``kind`` wakes."""
        worker_kind = SERVED_BY.get(kind)
        # Not yet woken: a waiter whose event is set will look at the queue anyway. A copy
        # first: other threads read this while the loop's thread adds and removes waiters.
        waiters = list(self._waiters.values())
        idle = [w for w in waiters if w.kind == worker_kind and not w.event.is_set()]
        picks = idle[:1]
        if kind == OperationKind.TRAINING:
            gpu = [w for w in idle if w.device != Device.CPU]
            if gpu and gpu[0] not in picks:
                picks.append(gpu[0])
        return picks

    def _wake_one(self, kind: OperationKind, *, rechecking: bool = False) -> None:
        for waiter in self._picks(kind):
            waiter.rechecking = rechecking
            waiter.event.set()

    async def _recheck(self) -> None:
        """While anyone waits: every ``recheck_s``, one waiter per kind of work looks."""
        while self._waiters:
            await asyncio.sleep(self.recheck_s)
            for kind in {k for w in list(self._waiters.values()) for k in served_kinds(w.kind)}:
                self._wake_one(kind, rechecking=True)

    async def claim(
        self,
        worker_id: str,
        timeout_s: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> ClaimResponse | None:
        """Wait up to ``timeout_s`` seconds for an operation for ``worker_id``; None if none.
        ``gone``: whether the worker hung up (a killed worker stops counting as waiting within
        a recheck, not at the end of its poll). The worker's ``polling_until`` says to every
        process that it polls, and until when it is heard from: set by ``begin_claim``,
        cleared by the claim (writes they make anyway); a poll that runs to its end writes
        nothing more, one the worker hung up on clears it (``hung_up``).

        Raises WorkerNotFound when the worker is not registered.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        ops = self.operations
        worker = await asyncio.to_thread(ops.begin_claim, worker_id, timeout_s)
        waiter = _Waiter(worker.worker_id, worker.kind, worker.device)
        key = next(self._ids)
        self._waiters[key] = waiter
        if self._rechecks is None or self._rechecks.done():
            self._rechecks = loop.create_task(self._recheck())
        deadline = loop.time() + timeout_s
        try:
            while True:
                waiter.event.clear()  # before looking: a notify during the look is kept
                offer = await asyncio.to_thread(ops.try_claim, worker)
                if offer is not None:
                    if waiter.rechecking:  # more may be waiting unannounced: the next looks
                        self._wake_one(offer.kind, rechecking=True)
                    return offer
                woken = await self._wait(waiter, deadline, gone)
                if not woken:
                    break
        finally:
            del self._waiters[key]
        if woken is None:  # hung up: not heard from since the poll began
            await asyncio.to_thread(ops.hung_up, worker_id)
        return None

    async def _wait(
        self, waiter: _Waiter, deadline: float, gone: Callable[[], Awaitable[bool]] | None
    ) -> bool | None:
        """Until ``waiter`` is woken (True), the poll's ``deadline`` passes (False) or its
        worker hangs up (None; asked every ``recheck_s``)."""
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.event.wait(), min(remaining, self.recheck_s))
                return True
            if gone is not None and await gone():
                return None
        return False
