"""The one bounded wait of the suite: for real processes and threads to get somewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], what: str, limit_s: float = 60.0,
               logs: Callable[[], str] | None = None, every_s: float = 0.05) -> Any:  # fmt: skip
    """Poll ``condition`` every ``every_s`` until it returns something truthy (returned); a
    bounded wait, never a timing assertion. ``logs`` adds the processes' logs to the failure."""
    deadline = time.monotonic() + limit_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{logs()}" if logs else ""
            raise AssertionError(f"gave up after {limit_s:.0f} s waiting for {what}{detail}")
        time.sleep(every_s)
