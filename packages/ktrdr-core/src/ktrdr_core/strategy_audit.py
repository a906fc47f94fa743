"""The strategy audit's report: trust checks a researcher runs on their own strategy and data.

A ``strategy_audit`` operation (``ktrdr strategies audit``) runs on a training worker
(``ktrdr_worker.strategy_audit``) and returns one :class:`StrategyAuditReport`, schema here so
the backend stores it and the CLI renders it without numpy. The checks:

- ``lookahead`` (hard): features, the settled labels and the model's decisions computed on
  data cut at N bars equal the same values computed on all the data;
- ``warmup``: how many bars each indicator needs before its values stop depending on where
  the data starts, against the warm-up the strategy drops;
- ``leakage`` (hard): the embargo covers the label horizon measured on the data, and the
  model's actual train/validation/test parts are that far apart;
- ``reproducibility`` (only with a training): two trainings with the same seed give
  identical weights in distinct bundles;
- ``significance``: the model's test-period Sharpe ratio against block-permuted positions.

A failed hard check makes the audit fail (``passed`` false; the CLI exits 1).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AUDIT_CHECKS",
    "HARD_CHECKS",
    "MODEL_CHECKS",
    "AuditCheck",
    "CheckStatus",
    "StrategyAuditReport",
]

AUDIT_CHECKS = ("lookahead", "warmup", "leakage", "reproducibility", "significance")
"""Every check, in the order they run and print."""
HARD_CHECKS = frozenset({"lookahead", "leakage"})
"""Checks whose failure fails the audit: a result built on them cannot be trusted at all."""
MODEL_CHECKS = frozenset({"significance", "reproducibility"})
"""Checks that need a model (given by id, or trained by the audit); lookahead also checks the
model's decisions when there is one."""


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"  # a soft check found something to look at
    INCONCLUSIVE = "inconclusive"  # too little to judge (a handful of trades); said in words
    SKIPPED = "skipped"  # not asked for, or needs what was not given (a model, --train)


class AuditCheck(BaseModel):
    """One check's verdict: ``summary`` is the sentence a researcher reads, ``evidence`` the
    numbers behind it (bars, values, counts; keys per check, documented in
    ``ktrdr_worker.strategy_audit``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: CheckStatus
    hard: bool
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    seconds: float = Field(default=0.0, ge=0.0, description="time the check took")

    @property
    def failed_hard(self) -> bool:
        return self.hard and self.status == CheckStatus.FAIL


class StrategyAuditReport(BaseModel):
    """What a strategy audit found, per check, on one symbol's data."""

    model_config = ConfigDict(extra="forbid")

    strategy_name: str
    strategy_hash: str
    symbol: str
    timeframe: str
    bars: int = Field(ge=0, description="base-timeframe bars audited")
    first: str = Field(description="first bar audited (ISO 8601 UTC)")
    last: str = Field(description="last bar audited (ISO 8601 UTC)")
    model_id: str | None = Field(default=None, description="the model given with --model")
    bundle_sha256: str | None = Field(
        default=None, description="the bundle the model checks used (given or trained)"
    )
    trained: bool = Field(default=False, description="the audit trained the model itself")
    checks: list[AuditCheck]
    passed: bool = Field(description="no hard check failed")

    def check(self, name: str) -> AuditCheck | None:
        """The check called ``name``, or None when the report has none."""
        return next((check for check in self.checks if check.name == name), None)
