"""The hostile-input corpus of tests/hostile and its expected errors (``expected.toml`` beside
the files)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parents[1] / "hostile"
MARKET_DATA = HERE / "market_data"
STRATEGIES = HERE / "strategies"
TIMEFRAME = "1h"  # every market-data file in the corpus is meant as hourly bars


@dataclass(frozen=True)
class Expected:
    """One file and the error it must get: ``rule`` (market data) or key ``path``
    (strategies), its ``line`` (None: the whole file) and texts the message must hold."""

    file: Path
    line: int | None
    contains: tuple[str, ...]
    rule: str | None = None
    path: str | None = None

    @property
    def id(self) -> str:
        return self.file.name


def _load() -> dict[str, dict[str, dict]]:
    with (HERE / "expected.toml").open("rb") as handle:
        return tomllib.load(handle)


def _cases(section: str, folder: Path) -> list[Expected]:
    entries = _load()[section]
    on_disk = sorted(p.name for p in folder.iterdir())
    # A file without an expectation (or the reverse) is a corpus bug: fail loudly.
    assert sorted(entries) == on_disk, set(entries) ^ set(on_disk)
    return [
        Expected(
            file=folder / name,
            line=entry.get("line"),
            contains=tuple(entry["contains"]),
            rule=entry.get("rule"),
            path=entry.get("path"),
        )
        for name, entry in sorted(entries.items())
    ]


def market_data_cases() -> list[Expected]:
    return _cases("market_data", MARKET_DATA)


def strategy_cases() -> list[Expected]:
    return _cases("strategies", STRATEGIES)
