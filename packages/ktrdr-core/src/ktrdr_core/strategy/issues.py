"""Problems found in a strategy file: where (file, line, key path) and what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ktrdr_core.errors import KtrdrError

__all__ = ["Path", "StrategyError", "StrategyProblem", "format_path"]

Path = tuple[str | int, ...]
"""A key path inside a strategy: mapping keys and list positions, outermost first."""


def format_path(path: Path | Sequence[str | int]) -> str:
    """``("fuzzy_sets", "rsi_zone", "oversold")`` → ``fuzzy_sets.rsi_zone.oversold``;
    list positions as ``inputs[2].timeframes[0]``; the empty path (the whole file) → ``""``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class StrategyProblem:
    """One problem: ``path`` is the dotted key path (``""`` for the whole file), ``message``
    says what was expected and what was got, ``file``/``line`` (1-based) locate it when known
    (line is None for input given as a mapping)."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        location = f"{where}: " if where else ""
        key = f"{self.path}: " if self.path else ""
        return f"{location}{key}{self.message}"


class StrategyError(KtrdrError, ValueError):
    """A strategy file is invalid. ``issues`` holds every problem found, in file order."""

    def __init__(self, issues: Sequence[StrategyProblem], source: str | None = None):
        self.issues = list(issues)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"invalid strategy{where}: {count} problem(s)\n{lines}")
