"""Retrying calls to the backend while it is unreachable: capped exponential backoff.

A worker must outlive restarts of the backend without anyone touching it, so every call that
fails for a reason that may go away (the backend cannot be reached, answers 5xx or 429) is
tried again after a pause that doubles from 50 ms up to a small cap (1 s by default): the
worker is back within about that cap of the backend answering again. Any other error (4xx) is
an answer, and goes to the caller at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ktrdr_core.client import CertificateRefused, ChecksumError
from ktrdr_core.errors import ApiError

__all__ = ["Backoff", "is_transient", "retry"]

T = TypeVar("T")
log = logging.getLogger("ktrdr_worker.service")


def is_transient(exc: ApiError) -> bool:
    """True when asking again later may succeed: no answer (but for a refused certificate),
    5xx, or 429 (busy)."""
    if isinstance(exc, ChecksumError):
        return False  # bytes arrived but were wrong: the caller decides
    if isinstance(exc, CertificateRefused):
        return False  # a certificate this side does not trust stays untrusted
    return exc.status is None or exc.status >= 500 or exc.status == 429


class Backoff:
    """Pauses of 50 ms, 100 ms, … up to ``cap`` seconds, each jittered by ±20 % so that
    workers that lost the backend together do not come back in lockstep."""

    def __init__(self, cap: float = 1.0, first: float = 0.05):
        self.cap = cap
        self.first = min(first, cap)
        self._next = self.first

    def reset(self) -> None:
        self._next = self.first

    def next_delay(self) -> float:
        """The pause to take now, in seconds (and double the following one, up to the cap)."""
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return min(self.cap, delay * random.uniform(0.8, 1.2))


def retry(
    call: Callable[[], T],
    *,
    what: str,
    cap: float = 1.0,
    abort: Callable[[], None] | None = None,
    deadline: float | None = None,
    wake: threading.Event | None = None,
) -> T:
    """Run ``call`` until it returns or fails with a non-transient error.

    ``what`` names the call in log lines; ``cap`` is the longest pause (seconds). ``abort`` is
    called before each pause and may raise to stop retrying (the lease was lost, the worker is
    stopping). ``deadline`` (``time.monotonic()`` seconds) re-raises the last transient error
    once the next pause would pass it. ``wake``, when set, cuts a pause short.
    Returns what ``call`` returns; raises what it raises when that is not transient.
    """
    backoff = Backoff(cap)
    failures = 0
    while True:
        try:
            result = call()
        except ApiError as exc:
            if not is_transient(exc):
                raise
            failures += 1
            delay = backoff.next_delay()
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            # One line when the trouble starts, then one every ~30 tries: enough to see it.
            if failures == 1 or failures % 30 == 0:
                log.warning("%s failed (%s); retrying (attempt %d)", what, exc, failures)
            if abort is not None:
                abort()
            if wake is not None:
                wake.wait(delay)
            else:
                time.sleep(delay)
            continue
        if failures:
            log.info("%s succeeded after %d failed attempt(s)", what, failures)
        return result
