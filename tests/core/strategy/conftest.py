"""Fixtures for the strategy tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.support.strategies import MINIMAL


@pytest.fixture
def minimal() -> dict[str, Any]:
    """The MINIMAL strategy as a fresh mapping to mutate."""
    return copy.deepcopy(yaml.safe_load(MINIMAL))
