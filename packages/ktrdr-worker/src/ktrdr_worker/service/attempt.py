"""One claimed attempt as both threads see it, and the ways a job ends early.

The job runs in the main thread; the heartbeat thread learns from the backend that the
operation was cancelled or that this attempt no longer holds it, and the main thread's
cancellation checks read those flags here.
"""

from __future__ import annotations

import threading

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import ClaimResponse, Progress

__all__ = [
    "Attempt",
    "AttemptLost",
    "CancelRequested",
    "JobInterrupted",
    "StopRequested",
]


class JobInterrupted(KtrdrError):
    """A job stopped before its end; the subclass says why and what the worker must report."""


class AttemptLost(JobInterrupted):
    """The backend says this attempt no longer holds the operation (409), or no longer knows
    the worker or the operation (404, ``forgotten``): drop the job and report nothing."""

    def __init__(self, reason: str, *, forgotten: bool = False):
        super().__init__(reason)
        self.forgotten = forgotten


class CancelRequested(JobInterrupted):
    """Someone cancelled the operation: stop and acknowledge."""


class StopRequested(JobInterrupted):
    """The worker is shutting down (SIGTERM/SIGINT): save what can be resumed, then release."""


class Attempt:
    """Shared, thread-safe state of one claimed attempt.

    ``claim``: what the backend handed out; ``stopping``: the worker-wide shutdown flag.
    """

    def __init__(self, claim: ClaimResponse, stopping: threading.Event):
        self.claim = claim
        self.stopping = stopping
        self.cancel_requested = threading.Event()
        self._lost = threading.Event()
        self._lost_reason = ""
        self._forgotten = False
        self._lock = threading.Lock()
        self._progress = Progress(message="claimed")

    @property
    def operation_id(self) -> str:
        return self.claim.operation_id

    @property
    def number(self) -> int:
        return self.claim.attempt

    # --- progress ---------------------------------------------------------------------

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def set_progress(self, progress: Progress) -> None:
        with self._lock:
            self._progress = progress

    # --- early ends -------------------------------------------------------------------

    def mark_lost(self, reason: str, *, forgotten: bool = False) -> None:
        with self._lock:
            if not self._lost.is_set():
                self._lost_reason = reason
                self._forgotten = forgotten
                self._lost.set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def interrupted(self) -> bool:
        """True when the job should stop now (lost, cancelled or shutting down): cheap enough
        to poll before every training batch."""
        return self._lost.is_set() or self.cancel_requested.is_set() or self.stopping.is_set()

    def check(self, *, finishing: bool = False) -> None:
        """Raise the :class:`JobInterrupted` that applies, most binding first: lost, then
        cancelled, then stopping. ``finishing``: the work is done and only needs reporting, so
        a shutdown does not stop it (a cancel still does)."""
        if self._lost.is_set():
            raise AttemptLost(self._lost_reason, forgotten=self._forgotten)
        if self.cancel_requested.is_set():
            raise CancelRequested(f"operation {self.operation_id} was cancelled")
        if self.stopping.is_set() and not finishing:
            raise StopRequested(f"worker stopping during operation {self.operation_id}")

    def raise_if_lost(self) -> None:
        """For retry loops: give up once the attempt is lost (nothing left to report)."""
        if self._lost.is_set():
            raise AttemptLost(self._lost_reason, forgotten=self._forgotten)
