"""The workspace the tests check: its root, its members, the tools beside the test venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("ktrdr-core", "ktrdr-api", "ktrdr-worker", "ktrdr-cli")


def venv_bin(name: str) -> str:
    """A tool from the environment running the tests (ruff, deptry, lint-imports, ...)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(
            f"{name} is not installed beside {sys.executable}; run scripts/setup-env"
        )
    return str(path)


def uv_bin() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if not found:
        raise FileNotFoundError("uv is not on PATH; run scripts/setup-env")
    return found
