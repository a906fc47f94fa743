"""Heartbeats from a background thread: the lease lives while the job computes.

Every ``lease / 3`` seconds (sooner after a failure, and at once when asked) the thread sends
the attempt's progress; the answer may say ``cancel``. A 409 means the attempt lost the
operation, a 404 that the backend forgot the worker or the operation (restarted on a fresh
database): the job is marked lost and stops at its next check.

Checkpoints: the thread watches the training's checkpoint file. When it changes, a copy is
taken (the training may overwrite the file meanwhile; it replaces it atomically, so the copy
is whole), uploaded as an artifact, and named in the next heartbeat — the backend refuses a
heartbeat naming an artifact it does not hold, so the upload comes first.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ktrdr_core.checksums import file_sha256
from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import ArtifactKind
from ktrdr_worker.service.attempt import Attempt
from ktrdr_worker.service.retry import Backoff, is_transient

__all__ = ["Heartbeater"]

log = logging.getLogger("ktrdr_worker.service")


@dataclass
class _Snapshot:
    """A copy of the checkpoint file; ``sha256`` is set once the backend holds it."""

    path: Path
    sha256: str | None = None


class Heartbeater:
    """Keeps one attempt's lease alive and carries its progress and checkpoints.

    ``client``: a client for this thread alone (a second client costs nothing and keeps the
    job's connections apart); ``interval``: seconds between heartbeats (a third of the lease);
    ``backoff_cap``: longest pause after a failed heartbeat; ``snapshot_dir``: where copies of
    the watched checkpoint go before their upload.
    """

    def __init__(
        self,
        client: KtrdrClient,
        worker_id: str,
        attempt: Attempt,
        *,
        interval: float,
        backoff_cap: float = 1.0,
        snapshot_dir: Path | None = None,
    ):
        self.client = client
        self.worker_id = worker_id
        self.attempt = attempt
        self.interval = interval
        self.snapshot_dir = snapshot_dir
        self._backoff = Backoff(min(backoff_cap, interval))
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # one heartbeat or upload at a time, from either thread
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{attempt.operation_id}", daemon=True
        )
        self._watched: Path | None = None
        self._seen_signature: tuple[int, int, int] | None = None
        self._pending: _Snapshot | None = None
        self.named_checkpoint: str | None = attempt.claim.checkpoint_sha256
        self.beats = 0
        self.failures = 0

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after the heartbeat in flight, if any)."""
        self._stopped.set()
        self._wake.set()
        self._thread.join()

    def beat_now(self) -> None:
        """Send the next heartbeat at once (new progress worth telling, a new checkpoint)."""
        self._wake.set()

    def watch_checkpoint(self, path: Path | None) -> None:
        """Upload ``path`` whenever it changes, and name it in the following heartbeat
        (None: stop watching, e.g. once the training is over)."""
        if path is None:
            with self._lock:
                self._watched = None
            return
        if self.snapshot_dir is None:
            raise ValueError("watch_checkpoint needs a snapshot_dir to copy checkpoints into")
        with self._lock:
            self._watched = Path(path)
            self._seen_signature = self._signature()

    def sync_checkpoint(self) -> str | None:
        """From the job's thread, after the training stopped: upload the newest checkpoint if
        the backend does not hold it yet and name it in a heartbeat, now. Returns the sha256
        the backend holds as this operation's checkpoint (None when there is none).

        Raises ``ApiError`` when that fails, so that the caller may retry.
        """
        with self._lock:
            self._take_snapshot()
            self._upload_pending()
            if not self._send():
                raise ApiError(
                    f"the backend refused checkpoint heartbeat for {self.attempt.operation_id}",
                    status=422,
                )
        return self.named_checkpoint

    # --- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.interval
        while not self._stopped.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stopped.is_set() or self.attempt.lost:
                return
            with self._lock:
                try:
                    self._take_snapshot()
                    self._upload_pending()
                    delivered = self._send()
                except ApiError as exc:
                    if not is_transient(exc):
                        log.error("heartbeat for %s refused: %s", self.attempt.operation_id, exc)
                        self.attempt.mark_lost(f"heartbeat refused: {exc}")
                        return
                    log.warning("heartbeat for %s failed: %s", self.attempt.operation_id, exc)
                    delivered = False
                except Exception:  # a bug here must not leave a job running without a lease
                    log.exception("heartbeat thread failed; the job will stop")
                    self.attempt.mark_lost("the heartbeat thread failed (see the worker log)")
                    return
            if delivered:
                self._backoff.reset()
                delay = self.interval
            else:
                self.failures += 1
                delay = self._backoff.next_delay()

    def _send(self) -> bool:
        """One heartbeat; True when delivered. 409/404 mark the attempt lost; a refused
        checkpoint is uploaded again before the next one; other errors are raised."""
        attempt = self.attempt
        if attempt.lost:
            return True
        pending = self._pending
        checkpoint = pending.sha256 if pending is not None else None
        try:
            answer = self.client.heartbeat(
                self.worker_id,
                attempt.operation_id,
                attempt.number,
                progress=attempt.progress,
                checkpoint_sha256=checkpoint,
            )
        except ApiError as exc:
            if exc.status == 409:
                log.warning(
                    "attempt %d lost operation %s: %s", attempt.number, attempt.operation_id, exc
                )
                attempt.mark_lost(str(exc))
                return True
            if exc.status == 404:
                log.warning("the backend forgot operation %s: %s", attempt.operation_id, exc)
                attempt.mark_lost(str(exc), forgotten=True)
                return True
            if exc.status == 422 and pending is not None and checkpoint is not None:
                # The backend no longer holds the upload (restarted on another store?).
                log.warning("checkpoint %s refused (%s); uploading it again", checkpoint, exc)
                pending.sha256 = None
                return False
            raise
        self.beats += 1
        if pending is not None and checkpoint is not None:
            self.named_checkpoint = checkpoint
            self._discard_pending()
        if answer.cancel and not attempt.cancel_requested.is_set():
            # Flag first, then log: whoever reads the log line may rely on the flag being set.
            attempt.cancel_requested.set()
            log.info("operation %s was cancelled; stopping", attempt.operation_id)
        return True

    # --- checkpoints ------------------------------------------------------------------

    def _signature(self) -> tuple[int, int, int] | None:
        if self._watched is None:
            return None
        try:
            stat = self._watched.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _take_snapshot(self) -> None:
        signature = self._signature()
        if signature is None or signature == self._seen_signature:
            return
        assert self._watched is not None and self.snapshot_dir is not None
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        copy = self.snapshot_dir / f"checkpoint-{signature[0]}-{signature[2]}.pt"
        # One open file: the copy is the file as it was when opened, even if replaced since.
        with self._watched.open("rb") as source, copy.open("wb") as target:
            shutil.copyfileobj(source, target)
        self._seen_signature = signature
        self._discard_pending()
        self._pending = _Snapshot(copy)

    def _upload_pending(self) -> None:
        pending = self._pending
        if pending is None or pending.sha256 is not None:
            return
        sha = file_sha256(pending.path)
        if sha != self.named_checkpoint:
            self.client.upload_artifact(
                pending.path,
                ArtifactKind.CHECKPOINT,
                sha256=sha,
                operation_id=self.attempt.operation_id,
                attempt=self.attempt.number,
            )
            log.info("uploaded checkpoint %s for %s", sha[:12], self.attempt.operation_id)
        pending.sha256 = sha

    def _discard_pending(self) -> None:
        if self._pending is not None:
            path = self._pending.path
            self._pending = None
            path.unlink(missing_ok=True)
