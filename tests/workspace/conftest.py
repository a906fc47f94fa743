from pathlib import Path

import pytest
from workspace_support import ROOT


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
