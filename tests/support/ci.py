"""Services the tests need are set up by the tests themselves. Under CI=true one that
cannot be set up fails the run; elsewhere the tests that need it are skipped with the reason."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required test service unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)
