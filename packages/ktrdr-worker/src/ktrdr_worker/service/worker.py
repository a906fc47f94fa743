"""The worker loop: register, claim, run, report — until asked to stop.

A worker holds no state the backend needs: when the backend restarts, the worker's calls
fail, it retries with a short capped backoff, registers again (a backend on a fresh database
answers 404 for an unknown worker; one on the old database simply welcomes it back) and goes
on claiming. One job runs at a time, in the thread that called :meth:`Worker.run`; the
heartbeat thread keeps its lease alive.

How an attempt ends, and what the backend hears:

| the job ... | the worker sends |
| --- | --- |
| returns a result | ``complete`` (422, e.g. an unreadable bundle: ``fail`` with the reason) |
| raises an error | ``fail`` with the error (and a traceback when it is not a ktrdr error) |
| saw ``cancel`` in a heartbeat | ``cancelled`` |
| saw the worker stopping | ``release`` (training uploads a checkpoint first) |
| lost the attempt (409/404) | nothing: the operation is no longer this worker's |
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ktrdr_core.client import CertificateRefused, KtrdrClient
from ktrdr_core.errors import ApiError, KtrdrError
from ktrdr_core.protocol import (
    BacktestResult,
    ClaimResponse,
    OperationKind,
    TrainingResult,
    WorkerRegistration,
    heartbeat_interval,
)
from ktrdr_worker.runtime import TorchRuntime
from ktrdr_worker.service import host
from ktrdr_worker.service.attempt import (
    Attempt,
    AttemptLost,
    CancelRequested,
    JobInterrupted,
    StopRequested,
)
from ktrdr_worker.service.cache import ArtifactCache
from ktrdr_worker.service.config import WorkerConfig
from ktrdr_worker.service.heartbeat import Heartbeater
from ktrdr_worker.service.job import Job
from ktrdr_worker.service.logs import log_context
from ktrdr_worker.service.retry import is_transient, retry
from ktrdr_worker.service.runners import RUNNERS, Runner

__all__ = ["Worker", "WorkerFatalError", "WorkerHealth"]

T = TypeVar("T")
log = logging.getLogger("ktrdr_worker.service")

_MAX_ERROR_CHARS = 19_000  # the protocol takes up to 20 000 characters of error text


class WorkerFatalError(KtrdrError):
    """The backend refuses this worker for a reason retrying cannot fix (wrong token,
    protocol mismatch, an id already used by a worker of another kind)."""


class _Stopping(Exception):
    """Internal: the worker was asked to stop while waiting for the backend."""


@dataclass
class WorkerHealth:
    """What this process's ``/health`` shows (not the backend's ``WorkerStatus``, what it last
    heard): ``state`` is starting, idle, busy, reconnecting or stopped."""

    worker_id: str
    kind: str
    state: str = "starting"
    operation_id: str | None = None
    attempt: int | None = None
    started_at: float = field(default_factory=time.time)
    jobs_done: int = 0
    api_reachable: bool = False


class Worker:
    """One worker process's loop.

    ``config``: settings (see :mod:`ktrdr_worker.service.config`); ``runtime``: what torch
    offers here (from ``validate_ml_dependencies``); ``runners``: kind -> job function
    (tests may swap one in).
    """

    def __init__(
        self,
        config: WorkerConfig,
        runtime: TorchRuntime,
        *,
        runners: Mapping[OperationKind, Runner] | None = None,
    ):
        self.config = config
        self.runtime = runtime
        self.runners = runners or RUNNERS
        self.stopping = threading.Event()
        self.status = WorkerHealth(worker_id=config.worker_id, kind=config.kind.value)
        self._status_lock = threading.Lock()
        self._current: Attempt | None = None
        self._needs_registration = True
        self.cache = ArtifactCache(config.cache_dir, config.cache_max_mb * 1024 * 1024)
        self.client = self._new_client()

    # --- public -----------------------------------------------------------------------

    def request_stop(self, reason: str = "asked to stop") -> None:
        """Stop after the current poll (idle) or at the job's next check (busy)."""
        if not self.stopping.is_set():
            log.info("stopping: %s", reason)
        self.stopping.set()

    def snapshot(self) -> dict[str, Any]:
        """The status as a JSON-ready dict, with the current job's progress."""
        with self._status_lock:
            status = self.status
            current = self._current
            data = {
                "status": status.state,
                "worker_id": status.worker_id,
                "kind": status.kind,
                "operation_id": status.operation_id,
                "attempt": status.attempt,
                "jobs_done": status.jobs_done,
                "api_reachable": status.api_reachable,
                "uptime_s": round(time.time() - status.started_at, 3),
            }
        if current is not None:
            data["progress"] = current.progress.model_dump(mode="json")
        return data

    def run(self) -> int:
        """Serve until :meth:`request_stop`; returns the exit status (0).

        Raises :class:`WorkerFatalError` when the backend refuses the worker for good.
        """
        log_context.update(worker_id=self.config.worker_id)
        log.info(
            "%s worker %s on %s (%s), backend %s",
            self.config.kind.value,
            self.config.worker_id,
            self.runtime.device_name,
            self.runtime.summary,
            self.config.api_url,
        )
        try:
            while not self.stopping.is_set():
                try:
                    claim = self._next_claim()
                except _Stopping:
                    break
                if claim is None:
                    continue
                if self.stopping.is_set():
                    self._release_unstarted(claim)
                    break
                self._run_job(claim)
        finally:
            self._set_state("stopped")
            self.client.close()
        log.info("worker %s stopped", self.config.worker_id)
        return 0

    # --- idle: registering and claiming -----------------------------------------------

    def registration(self) -> WorkerRegistration:
        return host.registration(self.config.worker_id, self.config.kind, self.runtime)

    def _new_client(self, timeout: float = 30.0) -> KtrdrClient:
        return KtrdrClient(
            self.config.api_url,
            token=self.config.api_token,
            timeout=timeout,
            ca_bundle=self.config.ca_bundle,
        )

    def _set_state(self, state: str, attempt: Attempt | None = None, **changes: Any) -> None:
        with self._status_lock:
            self.status.state = state
            self._current = attempt
            self.status.operation_id = attempt.operation_id if attempt else None
            self.status.attempt = attempt.number if attempt else None
            for key, value in changes.items():
                setattr(self.status, key, value)

    def _idle_call(self, call: Callable[[], T], what: str) -> T:
        """Retry ``call`` while the backend is away (state ``reconnecting``); afterwards the
        worker registers again before its next claim."""

        def abort() -> None:
            if self.status.state not in ("reconnecting", "starting"):
                self._set_state("reconnecting", api_reachable=False)
            else:
                with self._status_lock:
                    self.status.api_reachable = False
            self._needs_registration = True
            if self.stopping.is_set():
                raise _Stopping

        try:
            return retry(call, what=what, cap=self.config.backoff_max_seconds, abort=abort)
        except ApiError as exc:
            if isinstance(exc, CertificateRefused):
                raise WorkerFatalError(str(exc)) from exc
            if exc.status in (401, 403, 426):
                raise WorkerFatalError(f"the backend refuses this worker: {exc}") from exc
            raise

    def _register_now(self) -> None:
        """One registration call; a refusal retrying cannot fix is fatal."""
        try:
            view = self.client.register_worker(self.registration())
        except ApiError as exc:
            if exc.status in (409, 422):
                raise WorkerFatalError(f"registration refused: {exc}") from exc
            raise
        self._needs_registration = False
        log.info(
            "registered as %s (%s, device %s)",
            view.worker_id,
            view.kind.value,
            view.capabilities.device.value,
        )

    def _next_claim(self) -> ClaimResponse | None:
        """(Re-)register when needed, then one long poll; None when nothing came (or on a
        404, after which the worker registers again)."""

        def register_and_claim() -> ClaimResponse | None:
            # Inside the retried call: the moment the backend answers again, the worker
            # registers, instead of after a long poll on a backend that may have forgotten it.
            if self._needs_registration:
                self._register_now()
                self._set_state("idle", api_reachable=True)
            return self.client.claim(self.config.worker_id, self.config.poll_seconds)

        try:
            return self._idle_call(register_and_claim, "claim")
        except ApiError as exc:
            if exc.status == 404:
                log.warning("the backend does not know this worker (%s); registering again", exc)
                self._needs_registration = True
                return None
            raise

    def _release_unstarted(self, claim: ClaimResponse) -> None:
        try:
            self.client.release_operation(
                self.config.worker_id, claim.operation_id, claim.attempt, "worker shutting down"
            )
            log.info("released %s unstarted: shutting down", claim.operation_id)
        except ApiError as exc:
            log.warning("could not release %s: %s", claim.operation_id, exc)

    # --- busy: one attempt ------------------------------------------------------------

    def _run_job(self, claim: ClaimResponse) -> None:
        attempt = Attempt(claim, self.stopping)
        workdir = self.config.cache_dir / "jobs" / f"{claim.operation_id}-{claim.attempt}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        interval = heartbeat_interval(claim.lease_seconds)
        beat_client = self._new_client(timeout=max(2.0, claim.lease_seconds / 2))
        heartbeat = Heartbeater(
            beat_client,
            self.config.worker_id,
            attempt,
            interval=interval,
            backoff_cap=self.config.backoff_max_seconds,
            snapshot_dir=workdir / "snapshots",
        )
        job = Job(
            attempt=attempt,
            client=self.client,
            cache=self.cache,
            workdir=workdir,
            heartbeat=heartbeat,
            backoff_cap=self.config.backoff_max_seconds,
            threads=self.config.threads,
            hold_file=self.config.hold_file,
            inference=self.config.inference,
        )
        log_context.update(operation_id=claim.operation_id)
        self._set_state("busy", attempt)
        checkpoint = claim.checkpoint_sha256
        resumed = f", resuming from {checkpoint[:12]}" if checkpoint else ""
        log.info(
            "claimed %s %s, attempt %d, lease %.1f s%s",
            claim.kind.value,
            claim.operation_id,
            claim.attempt,
            claim.lease_seconds,
            resumed,
        )
        heartbeat.start()
        try:
            self._finish(job, self._outcome(job))
        finally:
            heartbeat.stop()
            beat_client.close()
            shutil.rmtree(workdir, ignore_errors=True)
            log_context.update(operation_id=None)
            with self._status_lock:
                self.status.jobs_done += 1
            self._set_state("idle")

    def _outcome(self, job: Job) -> TrainingResult | BacktestResult | Exception:
        """Run the job; its result, or the exception that ended it."""
        started = time.perf_counter()
        try:
            runner = self.runners.get(job.claim.kind)
            if runner is None:
                raise RuntimeError(f"this worker has no runner for {job.claim.kind} operations")
            result = runner(job)
        except Exception as exc:  # every way a job ends is reported; see _finish
            log.info("%s ended after %.1f s: %s", job.attempt.operation_id,
                     time.perf_counter() - started, exc)  # fmt: skip
            if isinstance(exc, ApiError) and is_transient(exc) and self.stopping.is_set():
                # Only a stopping worker gives up on an unreachable backend: the job did not
                # fail, it was interrupted, so it goes back for another worker.
                return StopRequested(f"stopping while the backend was unreachable: {exc}")
            return exc
        log.info("%s finished in %.1f s", job.attempt.operation_id, time.perf_counter() - started)
        return result

    def _finish(self, job: Job, outcome: TrainingResult | BacktestResult | Exception) -> None:
        attempt = job.attempt
        worker, op, number = self.config.worker_id, attempt.operation_id, attempt.number
        client = self.client
        try:
            if isinstance(outcome, AttemptLost):
                if outcome.forgotten:
                    self._needs_registration = True
                log.warning("dropped %s: %s", op, outcome)
                return
            if isinstance(outcome, CancelRequested):
                job.call(lambda: client.acknowledge_cancel(worker, op, number), "cancel ack")
                log.info("acknowledged the cancellation of %s", op)
            elif isinstance(outcome, StopRequested):
                job.call(
                    lambda: client.release_operation(worker, op, number, "worker shutting down"),
                    "release",
                )
                log.info("released %s for another worker", op)
            elif isinstance(outcome, JobInterrupted):
                raise AssertionError(f"unhandled interruption {outcome!r}")
            elif isinstance(outcome, Exception):
                error = _error_text(outcome)
                job.call(lambda: client.fail_operation(worker, op, number, error), "failure")
                log.error("%s failed: %s", op, error.splitlines()[0])
            else:
                self._complete(job, outcome)
        except AttemptLost as exc:
            log.warning("dropped %s while reporting: %s", op, exc)
        except ApiError as exc:
            if exc.status == 409:
                log.warning("%s is no longer held by this attempt: %s", op, exc)
            elif exc.status == 404:
                log.warning("the backend forgot %s: %s", op, exc)
                self._needs_registration = True
            else:
                log.error("could not report the end of %s: %s", op, exc)

    def _complete(self, job: Job, result: TrainingResult | BacktestResult) -> None:
        worker, op, number = self.config.worker_id, job.attempt.operation_id, job.attempt.number
        try:
            view = job.call(
                lambda: self.client.complete_operation(worker, op, number, result), "completion"
            )
        except ApiError as exc:
            if exc.status != 422:
                raise
            # The backend read the result and refused it (e.g. a bundle it cannot read):
            # that is this attempt's failure, with the backend's words.
            error = f"the backend refused the result: {exc}"
            job.call(lambda: self.client.fail_operation(worker, op, number, error), "failure")
            log.error("%s failed: %s", op, error)
            return
        log.info("completed %s (%s)", op, view.state.value)


def _error_text(exc: BaseException) -> str:
    """A ktrdr error's own words (they say what to change); anything else with a traceback."""
    if isinstance(exc, KtrdrError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = "".join(traceback.format_exception(exc)).strip()
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:2000] + "\n…\n" + text[-(_MAX_ERROR_CHARS - 2010) :]
    return text
