"""The environment of every process the tests start, and their logs.

Every child gets a KTRDR_HOME of its own: the caller's, or a fresh temporary folder. Nothing
a test starts may fall back on ``~/.ktrdr`` (a developer's real stack, database and logs).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's console scripts (ktrdr, ktrdr-api, ktrdr-worker)
PYCACHE = Path(tempfile.gettempdir()) / "ktrdr-test-pycache"

_scratch: Path | None = None


def use_scratch(folder: Path | None) -> None:
    """Where default homes go for the rest of the run (the run's temporary folder, removed at
    its end); None: the system's temporary folder."""
    global _scratch
    _scratch = folder


def fresh_home() -> Path:
    """A new, empty folder to serve as a child's KTRDR_HOME."""
    base = _scratch or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ktrdr-home-", dir=base))


def process_env(extra: dict[str, str] | None = None, *, home: Path | None = None) -> dict[str, str]:
    """The environment for a ktrdr child process: no KTRDR_* leaking in from the caller's shell,
    its own KTRDR_HOME (``home``, a KTRDR_HOME in ``extra``, or a fresh temporary folder), and
    bytecode cached outside the tree, so each torch-importing child after the first starts fast
    (this machine sets PYTHONDONTWRITEBYTECODE, which would make every child compile torch
    anew)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra or {})
    if home is not None:
        env["KTRDR_HOME"] = str(home)
    env.setdefault("KTRDR_HOME", str(fresh_home()))
    return env


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for tools that build or install (uv, pip, a fresh venv's commands): no
    KTRDR_* from the caller's shell, a KTRDR_HOME of its own, and nothing of the test venv
    (VIRTUAL_ENV, PYTHONPATH) leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env.update(extra)
    env.setdefault("KTRDR_HOME", str(fresh_home()))
    return env


def log_tail(path: Path, chars: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path.name}: no log ---"
    return f"--- {path.name} (last {chars} chars) ---\n{text[-chars:]}"
