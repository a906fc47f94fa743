"""Processes that run as if some packages were not installed, for the torch-free paths.

``sitecustomize`` (imported by every interpreter at start) sets ``sys.modules[name] = None``
for each name: ``import name`` then raises ImportError and ``importlib.util.find_spec(name)``
returns None, which is what an environment without the package gives.
"""

from __future__ import annotations

from pathlib import Path

TRAINING_ONLY = ("torch", "scipy", "sklearn")


def blocking_path(folder: Path, names: tuple[str, ...] = TRAINING_ONLY) -> Path:
    """A folder to put first on PYTHONPATH: its sitecustomize hides ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["import sys", *(f"sys.modules[{name!r}] = None" for name in names)]
    (folder / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return folder
