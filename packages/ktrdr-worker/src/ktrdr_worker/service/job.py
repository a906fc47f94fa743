"""What a runner gets for one attempt: inputs, downloads, uploads, progress, early ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd

from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import ArtifactKind, ClaimResponse, DataRef, Progress
from ktrdr_worker.frames import load_ohlcv
from ktrdr_worker.service.attempt import Attempt
from ktrdr_worker.service.cache import ArtifactCache
from ktrdr_worker.service.heartbeat import Heartbeater
from ktrdr_worker.service.retry import retry

__all__ = ["DataMismatchError", "Job", "SymbolFrames"]

T = TypeVar("T")
log = logging.getLogger("ktrdr_worker.service")

# Once the worker is stopping, a call that keeps failing is given up after this long: the
# lease then runs out on the backend and the operation is requeued anyway.
STOP_GRACE_SECONDS = 10.0
# How often a held job looks for its hold file to be gone.
_HOLD_POLL_SECONDS = 0.1

SymbolFrames = dict[str, pd.DataFrame | dict[str, pd.DataFrame]]


class DataMismatchError(KtrdrError):
    """A downloaded data file is not what the operation's inputs describe."""


@dataclass
class Job:
    """One attempt being run: ``attempt`` (claim and flags), ``client`` (the job's thread's
    client), ``cache``, ``workdir`` (scratch folder, removed afterwards), ``heartbeat``,
    ``backoff_cap`` (seconds), ``threads`` (torch CPU threads, None: torch's default) and
    ``hold_file`` (``KTRDR_WORKER_HOLD_FILE``: while it exists, :meth:`hold` waits) and
    ``inference`` (``KTRDR_WORKER_INFERENCE``: the forward pass of model backtests)."""

    attempt: Attempt
    client: KtrdrClient
    cache: ArtifactCache
    workdir: Path
    heartbeat: Heartbeater
    backoff_cap: float = 1.0
    threads: int | None = None
    hold_file: Path | None = None
    inference: str = "auto"

    @property
    def claim(self) -> ClaimResponse:
        return self.attempt.claim

    # --- early ends -------------------------------------------------------------------

    def interrupted(self) -> bool:
        return self.attempt.interrupted()

    def check(self, *, finishing: bool = False) -> None:
        self.attempt.check(finishing=finishing)

    def hold(self, where: str) -> None:
        """At a safe point of the run (``where`` says which, for the progress message): wait
        while the hold file exists. Heartbeats go on meanwhile, so the lease is kept; a cancel,
        a lost lease or a shutdown ends the wait at once (the caller's next check acts on it).
        """
        if self.hold_file is None or not self.hold_file.exists():
            return
        log.info("holding %s: %s exists", where, self.hold_file)
        # Same place in the run, new words: the progress says why it does not move.
        message = f"held {where}: remove {self.hold_file} to continue"[:500]
        self.attempt.set_progress(self.attempt.progress.model_copy(update={"message": message}))
        self.heartbeat.beat_now()
        while self.hold_file.exists() and not self.interrupted():
            time.sleep(_HOLD_POLL_SECONDS)
        log.info("hold released %s", where)

    # --- progress ---------------------------------------------------------------------

    def progress(
        self,
        percent: float,
        message: str,
        *,
        step: int | None = None,
        total_steps: int | None = None,
        metrics: dict[str, float] | None = None,
        now: bool = False,
    ) -> None:
        """Record progress (percent 0-100); the next heartbeat carries it (``now``: at once)."""
        self.attempt.set_progress(
            Progress(
                percent=max(0.0, min(100.0, percent)),
                step=step,
                total_steps=total_steps,
                message=message[:500],
                metrics=metrics or {},
            )
        )
        if now:
            self.heartbeat.beat_now()

    # --- talking to the backend -------------------------------------------------------

    def call(self, call: Callable[[], T], what: str) -> T:
        """Run a backend call, retrying while the backend is unreachable; gives up when the
        attempt is lost, or after a short grace once the worker is stopping."""
        deadline = None
        if self.attempt.stopping.is_set():
            deadline = time.monotonic() + STOP_GRACE_SECONDS

        def abort() -> None:
            self.attempt.raise_if_lost()

        return retry(call, what=what, cap=self.backoff_cap, abort=abort, deadline=deadline)

    def fetch(self, sha256: str, keep: tuple[str, ...] = ()) -> Path:
        """The cached, verified local copy of artifact ``sha256``; a cancel, a lost attempt or
        a shutdown stops the download as it happens (:meth:`check`)."""
        return self.cache.fetch(
            self.client,
            sha256,
            download=lambda get: self.call(get, f"download of {sha256[:12]}"),
            keep=keep,
            interrupt=self.check,
        )

    def upload(self, path: Path, kind: ArtifactKind) -> str:
        """Upload a file as an artifact; returns its sha256."""
        view = self.call(
            lambda: self.client.upload_artifact(
                path, kind, operation_id=self.attempt.operation_id, attempt=self.attempt.number
            ),
            f"upload of {path.name} ({kind})",
        )
        return view.sha256

    def load_data(self, refs: list[DataRef]) -> SymbolFrames:
        """Download (or find in the cache) each data file and read it as a canonical frame.

        Out: symbol -> frame when a symbol has one timeframe, symbol -> {timeframe: frame}
        when it has several. Raises :class:`DataMismatchError` when a file's row count is not
        the one catalogued.
        """
        checksums = tuple(ref.checksum for ref in refs)
        by_symbol: dict[str, dict[str, pd.DataFrame]] = {}
        for ref in refs:
            self.check()
            path = self.fetch(ref.checksum, keep=checksums)
            frame = load_ohlcv(path, ref.timeframe.value)
            if len(frame) != ref.rows:
                raise DataMismatchError(
                    f"data {ref.symbol}/{ref.timeframe.value}@{ref.version} ({ref.checksum[:12]}) "
                    f"has {len(frame)} bars, the catalogue says {ref.rows}"
                )
            by_symbol.setdefault(ref.symbol, {})[ref.timeframe.value] = frame
        return {
            symbol: next(iter(frames.values())) if len(frames) == 1 else frames
            for symbol, frames in by_symbol.items()
        }
