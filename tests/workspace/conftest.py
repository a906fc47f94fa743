from pathlib import Path

import pytest

from tests.support.workspace import ROOT


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
