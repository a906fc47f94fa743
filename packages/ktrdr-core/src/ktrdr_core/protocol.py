"""The HTTP contract between the backend, its workers and the CLI (pydantic v2 models).

Request bodies reject unknown fields (a typo is an error, not a silently ignored key);
views the backend returns ignore unknown fields so that a newer backend speaking the same
protocol version may add information without breaking older readers.

Times are timezone-aware UTC datetimes. Progress is in percent (0–100). Durations are in
seconds. Checksums and artifact ids are lower-case hex sha256 digests (64 characters).

Worker flow::

    POST /workers                          WorkerRegistration -> WorkerView
    POST /workers/{id}/claim               ClaimRequest -> ClaimResponse (200) | nothing (204)
    POST /workers/{id}/heartbeat           Heartbeat -> HeartbeatResponse (cancel flag, lease)
    POST /workers/{id}/operations/{op}/complete   Completion
    POST /workers/{id}/operations/{op}/fail       Failure
    POST /workers/{id}/operations/{op}/cancelled  AttemptRef (acknowledges a cancel request)
    POST /workers/{id}/operations/{op}/release    Release (gives the operation back, e.g. SIGTERM)

A message about an attempt that no longer holds the operation (a heartbeat after completion,
a second completion, a completion whose lease passed to another attempt) is answered with
409 and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ktrdr_core.exchanges import exchange_code
from ktrdr_core.market_data.exact import ExactGapReport
from ktrdr_core.strategy_audit import AUDIT_CHECKS, StrategyAuditReport
from ktrdr_core.timeframes import Timeframe
from ktrdr_core.version import PROTOCOL_VERSION

__all__ = [
    "DATA_PROVIDERS",
    "ID_PATTERN",
    "MAX_CLAIM_TIMEOUT_S",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "PROVIDER_SYMBOLS",
    "SERVED_BY",
    "SHA256_PATTERN",
    "SYMBOL_PATTERN",
    "WORKER_ID_PATTERN",
    "WORKER_KINDS",
    "ArtifactKind",
    "ArtifactView",
    "AttemptOutcome",
    "AttemptRecord",
    "AttemptRef",
    "BacktestInputs",
    "BacktestRequest",
    "BacktestResult",
    "BacktestResultView",
    "ChildKind",
    "ChildRole",
    "ClaimRequest",
    "ClaimResponse",
    "Completion",
    "DataFetchInputs",
    "DataFetchRequest",
    "DataFetchResult",
    "DataFetchResultView",
    "DataRef",
    "DatasetView",
    "Device",
    "ExactReportStatus",
    "Failure",
    "FetchMode",
    "FoldOutcome",
    "FoldPlan",
    "GapReportInputs",
    "GapReportResult",
    "GapReportResultView",
    "Heartbeat",
    "HeartbeatResponse",
    "ModelView",
    "OperationInputs",
    "OperationKind",
    "OperationResult",
    "OperationResultView",
    "OperationState",
    "OperationView",
    "Progress",
    "Release",
    "Reproducibility",
    "StrategyAuditInputs",
    "StrategyAuditRequest",
    "StrategyAuditResult",
    "StrategyAuditResultView",
    "StrategyIssue",
    "StrategyValidation",
    "StrategyValidationRequest",
    "SymbolSettings",
    "SymbolView",
    "TrainingInputs",
    "TrainingRequest",
    "TrainingResult",
    "TrainingResultView",
    "TrialRequest",
    "TrialView",
    "TuneInputs",
    "TuneListing",
    "TuneRequest",
    "TuneResult",
    "TuneResultView",
    "TuneView",
    "WalkforwardInputs",
    "WalkforwardReportInputs",
    "WalkforwardReportResult",
    "WalkforwardReportResultView",
    "WalkforwardRequest",
    "WalkforwardResult",
    "WalkforwardView",
    "WindowMode",
    "WorkerCapabilities",
    "WorkerRegistration",
    "WorkerStatus",
    "WorkerView",
    "heartbeat_interval",
    "normalise_symbol",
    "provider_symbol",
    "served_kinds",
]

PROTOCOL_HEADER = "X-Ktrdr-Protocol"
"""Request header carrying the sender's protocol version; the backend answers 426 on a mismatch."""

MAX_CLAIM_TIMEOUT_S = 60.0
"""Longest long poll a worker may ask for, in seconds."""

SYMBOL_PATTERN = r"^[A-Z0-9^][A-Z0-9._=^-]{0,31}$"
"""A market symbol after upper-casing: letters, digits and ``. _ = ^ -``; never a path."""

WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_PATTERN = r"^[a-z]{2,4}_[0-9a-f]{12}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

_SYMBOL_RE = re.compile(SYMBOL_PATTERN)


def normalise_symbol(value: str) -> str:
    """Upper-case and check a symbol (``aapl`` -> ``AAPL``); ValueError names the rule."""
    symbol = value.strip().upper()
    if not _SYMBOL_RE.fullmatch(symbol) or ".." in symbol:
        raise ValueError(
            f"invalid symbol {value!r}: use 1-32 letters, digits or . _ = ^ - "
            "(no slashes, no '..'), e.g. AAPL, BRK.B, EURUSD, ^GSPC"
        )
    return symbol


Symbol = Annotated[str, AfterValidator(normalise_symbol)]
Exchange = Annotated[str, Field(max_length=32), AfterValidator(exchange_code)]
"""An exchange code or alias (``xnys``, ``NASDAQ``), stored as its code (``XNYS``)."""
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
WorkerId = Annotated[str, Field(pattern=WORKER_ID_PATTERN)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- enumerations --------------------------------------------------------------------


class OperationKind(StrEnum):
    TRAINING = "training"
    BACKTEST = "backtest"
    DATA_FETCH = "data_fetch"
    WALKFORWARD = "walkforward"
    WALKFORWARD_REPORT = "wf_report"  # stitches a walk-forward's folds into one report
    GAP_REPORT = "gap_report"  # checks a dataset version against its exchange's sessions
    STRATEGY_AUDIT = "strategy_audit"  # trust checks on a strategy (ktrdr strategies audit)
    TUNE = "tune"  # a parameter search's driver (ktrdr tune): its trials are child walk-forwards


WORKER_KINDS = (OperationKind.TRAINING, OperationKind.BACKTEST)
"""The kinds a worker registers as: training workers (GPU when there is one) and CPU
backtest workers."""

SERVED_BY: dict[OperationKind, OperationKind | None] = {
    OperationKind.TRAINING: OperationKind.TRAINING,
    OperationKind.BACKTEST: OperationKind.BACKTEST,
    # Downloading market data is light, network-bound work: the CPU workers take it.
    OperationKind.DATA_FETCH: OperationKind.BACKTEST,
    # A walk-forward is orchestrated by the backend itself through child operations.
    OperationKind.WALKFORWARD: None,
    OperationKind.WALKFORWARD_REPORT: OperationKind.BACKTEST,
    # The exact gap report needs pandas (exchange_calendars), so a worker makes it: a short,
    # torch-free job for the CPU workers, queued after an import or fetch names an exchange.
    OperationKind.GAP_REPORT: OperationKind.BACKTEST,
    # The audit makes labels (scipy) and may train (torch): a training worker's packages.
    OperationKind.STRATEGY_AUDIT: OperationKind.TRAINING,
    # The study driver (Optuna's ask-and-tell) needs numpy, not torch: a backtest worker runs
    # it and holds that worker's slot for the whole study; its trials run everywhere.
    OperationKind.TUNE: OperationKind.BACKTEST,
}
"""Operation kind -> the worker kind that runs it (None: no worker, the backend does)."""


def served_kinds(worker_kind: OperationKind) -> tuple[OperationKind, ...]:
    """The operation kinds a worker of ``worker_kind`` claims."""
    return tuple(kind for kind, by in SERVED_BY.items() if by == worker_kind)


class OperationState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED)


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class WorkerStatus(StrEnum):
    """What the backend last heard from a worker (see :func:`heartbeat_interval`): ``idle`` or
    ``busy`` while it is heard from; ``lost`` after two heartbeat intervals of silence (no
    claim poll, no heartbeat); ``offline`` after a whole lease of silence."""

    IDLE = "idle"
    BUSY = "busy"
    LOST = "lost"
    OFFLINE = "offline"


HEARTBEAT_FLOOR_S = 0.2


def heartbeat_interval(lease_seconds: float) -> float:
    """Seconds between a busy worker's heartbeats: three per lease, so one late or lost beat
    never costs the lease (at least :data:`HEARTBEAT_FLOOR_S`)."""
    return max(HEARTBEAT_FLOOR_S, lease_seconds / 3)


class AttemptOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LEASE_EXPIRED = "lease_expired"
    RELEASED = "released"


class ArtifactKind(StrEnum):
    DATA = "data"
    BUNDLE = "bundle"
    CHECKPOINT = "checkpoint"
    REPORT = "report"
    SERIES = "series"  # the JSON series a result page draws
    CHART = "chart"  # PNG/SVG charts stored before results were drawn in the browser


# --- workers -------------------------------------------------------------------------


class WorkerCapabilities(_Request):
    device: Device = Device.CPU
    gpu_name: str | None = Field(default=None, max_length=200)
    gpu_memory_mb: int | None = Field(default=None, ge=0)
    cpu_count: int | None = Field(default=None, ge=1)


class WorkerRegistration(_Request):
    """What a worker says about itself when it (re-)registers."""

    worker_id: WorkerId
    kind: OperationKind
    capabilities: WorkerCapabilities = Field(default_factory=WorkerCapabilities)
    protocol: int = PROTOCOL_VERSION
    versions: dict[str, str] = Field(
        default_factory=dict, description="distribution -> version, e.g. ktrdr-worker, torch"
    )
    host: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _a_worker_kind(self) -> WorkerRegistration:
        if self.kind not in WORKER_KINDS:
            raise ValueError(f"a worker registers as {' or '.join(WORKER_KINDS)}, not {self.kind}")
        return self


class WorkerView(_View):
    worker_id: str
    kind: OperationKind
    capabilities: WorkerCapabilities
    protocol: int
    versions: dict[str, str]
    host: str | None
    registered_at: datetime
    last_seen_at: datetime
    status: WorkerStatus
    current_operation_id: str | None


# --- progress, heartbeats, claims ----------------------------------------------------


class Progress(_Request):
    percent: Percent = 0.0
    step: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    message: str = Field(default="", max_length=500)
    metrics: dict[str, float] = Field(default_factory=dict)


class Heartbeat(_Request):
    """Sent every few seconds; renews the worker's liveness and, when busy, its lease.

    ``checkpoint_sha256`` names the newest checkpoint artifact (uploaded first) so that a
    requeued training operation resumes from it.
    """

    operation_id: str | None = None
    attempt: int | None = Field(default=None, ge=1)
    progress: Progress | None = None
    checkpoint_sha256: Sha256 | None = None

    @model_validator(mode="after")
    def _operation_and_attempt_together(self) -> Heartbeat:
        if (self.operation_id is None) != (self.attempt is None):
            raise ValueError("operation_id and attempt go together: send both or neither")
        if self.operation_id is None and (self.progress or self.checkpoint_sha256):
            raise ValueError("progress and checkpoint_sha256 need an operation_id")
        return self


class HeartbeatResponse(_View):
    cancel: bool = False
    lease_expires_at: datetime | None = None


class ClaimRequest(_Request):
    timeout_s: float = Field(default=20.0, ge=0.0, le=MAX_CLAIM_TIMEOUT_S)


class DataRef(_View):
    """One catalogued data file an operation reads; ``exchange``: the exchange whose
    sessions it trades on (None: none named, calendars are inferred from the bars)."""

    symbol: str
    timeframe: Timeframe
    version: int
    checksum: str
    rows: int
    first: datetime
    last: datetime
    exchange: str | None = None


class _StrategyInputs(_View):
    """What every operation that trains a strategy records about it."""

    strategy_name: str
    strategy_yaml: str = Field(description="the effective strategy, overrides applied")
    strategy_hash: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    data: list[DataRef]
    seed: int | None = None
    device: str | None = Field(default=None, description="device the strategy asks for")
    versions: dict[str, str] = Field(default_factory=dict)


class TrainingInputs(_StrategyInputs):
    kind: Literal["training"] = "training"


class BacktestInputs(_View):
    kind: Literal["backtest"] = "backtest"
    model_id: str
    bundle_sha256: str
    strategy_hash: str | None = None
    data: list[DataRef]
    start: datetime | None = None
    end: datetime | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


class FetchMode(StrEnum):
    """Which bars a data fetch asks the provider for."""

    FULL = "full"  # the requested range [start, end)
    TAIL = "tail"  # from the bar after the last stored one up to end (default: now)
    BACKFILL = "backfill"  # from start up to the first stored bar
    REPAIR = "repair"  # only the unexpected holes the stored version's gap report lists


DATA_PROVIDERS: dict[str, str] = {
    "binance": "Binance spot klines (public, no account): symbols like BTCUSDT, ETHBTC",
    "ib": "Interactive Brokers through IB Gateway/TWS (ktrdr-worker[ib]): AAPL, EURUSD",
}
"""Market-data providers a worker can fetch from: name -> what it serves."""

PROVIDER_SYMBOLS: dict[str, tuple[str, str]] = {
    "binance": (r"^[A-Z0-9]{2,20}$", "the pair without a separator, e.g. BTCUSDT or ETHBTC"),
    "ib": (r"^[A-Z][A-Z0-9.]{0,11}$", "a currency pair (EURUSD) or a US stock (AAPL, BRK.B)"),
}
"""Provider -> (pattern its symbols match, how to spell one): checked by the backend when a
fetch is asked for, and again by the worker."""


def provider_symbol(provider: str, symbol: str) -> str:
    """``symbol`` when ``provider`` can serve a symbol spelt so; ValueError saying how else."""
    pattern, hint = PROVIDER_SYMBOLS[provider]
    if not re.fullmatch(pattern, symbol):
        raise ValueError(f"{symbol!r} is not a {provider} symbol: use {hint}")
    return symbol


class DataFetchRequest(_Request):
    """Fetch bars of ``symbol`` ``timeframe`` from ``provider`` into a new dataset version.

    ``start``/``end``: UTC, bar opens in ``[start, end)``; ``end`` defaults to now. ``full``
    and ``backfill`` need ``start``; ``tail``, ``backfill`` and ``repair`` need stored data.
    ``exchange``: the exchange the symbol trades on, which becomes the symbol's setting
    (None: the symbol's setting, else what the provider knows, else none).
    """

    provider: str = Field(min_length=1, max_length=32)
    symbol: Symbol
    timeframe: Timeframe
    mode: FetchMode = FetchMode.FULL
    start: datetime | None = None
    end: datetime | None = None
    exchange: Exchange | None = None

    @model_validator(mode="after")
    def _known_provider_and_range(self) -> DataFetchRequest:
        if self.provider not in DATA_PROVIDERS:
            raise ValueError(
                f"unknown provider {self.provider!r}; known: {', '.join(DATA_PROVIDERS)}"
            )
        provider_symbol(self.provider, self.symbol)
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if self.mode in (FetchMode.FULL, FetchMode.BACKFILL) and self.start is None:
            raise ValueError(f"mode {self.mode} needs a start (the first bar to fetch)")
        return self


class DataFetchInputs(_View):
    kind: Literal["data_fetch"] = "data_fetch"
    provider: str
    symbol: str
    timeframe: Timeframe
    mode: FetchMode
    start: datetime | None = None
    end: datetime | None = None
    stored: DataRef | None = Field(
        default=None, description="the version the fetch merges into (None: nothing stored)"
    )
    exchange: str | None = Field(
        default=None, description="asked for, or the symbol's setting when the fetch began"
    )
    versions: dict[str, str] = Field(default_factory=dict)


class WindowMode(StrEnum):
    """How a walk-forward's training window moves from fold to fold."""

    ROLLING = "rolling"  # a fixed length that slides forward by one test window per fold
    EXPANDING = "expanding"  # always from the first day; grows by one test window per fold


class FoldPlan(_View):
    """One walk-forward fold: train on [train_start, train_end], test on [test_start,
    test_end] (whole UTC days, inclusive); the days between are the embargo."""

    index: int = Field(ge=0)
    train_start: date
    train_end: date
    test_start: date
    test_end: date


class WalkforwardInputs(_StrategyInputs):
    kind: Literal["walkforward"] = "walkforward"
    window: WindowMode
    train_blocks: int
    embargo_bars: int
    folds: list[FoldPlan]
    settings: dict[str, Any] = Field(default_factory=dict, description="backtest overrides")
    reuse: dict[str, str] = Field(
        default_factory=dict,
        description="role -> completed child operation of the walk-forward this one retries",
    )


class FoldOutcome(_View):
    """What the report job needs of one finished fold."""

    index: int
    test_start: date
    test_end: date
    training_operation_id: str
    backtest_operation_id: str
    model_id: str
    report_sha256: str
    importance: dict[str, float] = Field(
        default_factory=dict, description="feature -> permutation importance on the fold"
    )


class WalkforwardReportInputs(_View):
    kind: Literal["wf_report"] = "wf_report"
    walkforward_id: str
    strategy_name: str
    strategy_hash: str
    data: list[DataRef]
    window: WindowMode
    folds: list[FoldOutcome]
    versions: dict[str, str] = Field(default_factory=dict)


class GapReportInputs(_View):
    """Check one dataset version against the sessions of its exchange. ``data`` holds that
    one version (a list, as every kind's data, so reproducibility reads them alike)."""

    kind: Literal["gap_report"] = "gap_report"
    data: list[DataRef] = Field(min_length=1, max_length=1)
    versions: dict[str, str] = Field(default_factory=dict)

    @property
    def dataset(self) -> DataRef:
        """The version to check."""
        return self.data[0]


class StrategyAuditInputs(_StrategyInputs):
    """Audit a strategy on one symbol's data (``data``: that symbol's versions). ``model_id``
    and ``bundle_sha256``: the model to check decisions and significance with; ``train``: the
    worker trains twice with the strategy's seed (reproducibility, and the model when none is
    given). ``checks``: the names of ``ktrdr_core.strategy_audit.AUDIT_CHECKS`` to run."""

    kind: Literal["strategy_audit"] = "strategy_audit"
    symbol: str
    checks: list[str]
    model_id: str | None = None
    bundle_sha256: str | None = None
    train: bool = False
    cuts: int = 50
    permutations: int = 1000


class TuneInputs(_StrategyInputs):
    """A parameter search (``ktrdr_core.tuning``) over the dotted strategy paths of
    ``space`` (path -> distribution, as :func:`ktrdr_core.tuning.parse_space` reads it).

    Every trial is a child walk-forward over [``data_start``, ``search_end``] with ``folds``
    folds; the days from ``holdout_start`` to ``holdout_end`` are never seen by a trial and
    re-evaluate the best trials once the search ends. ``reuse``: trial role -> completed
    trial of the study this one retries."""

    kind: Literal["tune"] = "tune"
    space_yaml: str
    space: dict[str, dict[str, Any]]
    trials: int
    objective: str
    direction: Literal["maximize", "minimize"]
    folds: int
    train_blocks: int
    embargo_bars: int
    sampler: Literal["tpe", "random", "grid"]
    prune: bool
    parallel: int
    holdout: float
    data_start: date
    search_end: date
    holdout_start: date
    holdout_end: date
    tune_seed: int
    keep_best: int = 3
    settings: dict[str, Any] = Field(default_factory=dict, description="backtest overrides")
    reuse: dict[str, str] = Field(default_factory=dict)


OperationInputs = Annotated[
    TrainingInputs
    | BacktestInputs
    | DataFetchInputs
    | WalkforwardInputs
    | WalkforwardReportInputs
    | GapReportInputs
    | StrategyAuditInputs
    | TuneInputs,
    Field(discriminator="kind"),
]


class ClaimResponse(_View):
    """An operation handed to a worker: keep the lease alive with heartbeats."""

    operation_id: str
    kind: OperationKind
    attempt: int
    lease_expires_at: datetime
    lease_seconds: float
    inputs: OperationInputs
    checkpoint_sha256: str | None = Field(
        default=None, description="resume from this checkpoint artifact when set"
    )


# --- outcomes ------------------------------------------------------------------------


class TrainingResult(_Request):
    kind: Literal["training"] = "training"
    bundle_sha256: Sha256
    summary: dict[str, Any] = Field(default_factory=dict)


class BacktestResult(_Request):
    kind: Literal["backtest"] = "backtest"
    report_sha256: Sha256
    series_sha256: Sha256 | None = Field(
        default=None, description="the series its page draws (ktrdr-backtest-series/1)"
    )
    summary: dict[str, Any] = Field(default_factory=dict)


class DataFetchResult(_Request):
    """``data_sha256``: the merged canonical CSV (stored bars win over re-fetched ones);
    ``summary``: bars fetched and added, conflicts with stored bars, holes repaired."""

    kind: Literal["data_fetch"] = "data_fetch"
    data_sha256: Sha256
    summary: dict[str, Any] = Field(default_factory=dict)
    exchange: Exchange | None = Field(
        default=None,
        description="the exchange the provider says the symbol trades on (IB's contract "
        "details; 24/7 for Binance), None when it does not know",
    )


class WalkforwardReportResult(_Request):
    kind: Literal["wf_report"] = "wf_report"
    report_sha256: Sha256
    series_sha256: Sha256 | None = Field(
        default=None, description="the series its page draws (none before ktrdr wrote them)"
    )
    summary: dict[str, Any] = Field(default_factory=dict)


class GapReportResult(_Request):
    """The exact gap report of the dataset version the operation checked."""

    kind: Literal["gap_report"] = "gap_report"
    report: ExactGapReport


class StrategyAuditResult(_Request):
    """The audit's report (``ktrdr_core.strategy_audit.StrategyAuditReport``)."""

    kind: Literal["strategy_audit"] = "strategy_audit"
    report: StrategyAuditReport


class TuneResult(_Request):
    """A finished study, as its driver reports it: ``summary`` holds the trials table, the
    best trial, parameter importance and the holdout comparison (``ktrdr_core.tuning``)."""

    kind: Literal["tune"] = "tune"
    summary: dict[str, Any] = Field(default_factory=dict)


OperationResult = Annotated[
    TrainingResult
    | BacktestResult
    | DataFetchResult
    | WalkforwardReportResult
    | GapReportResult
    | StrategyAuditResult
    | TuneResult,
    Field(discriminator="kind"),
]


# --- stored results, as operation views show them -------------------------------------
#
# What a worker sends (above), plus what the backend added on completion, read back typed:
# the same JSON a client read before results were typed.


class _ResultMapping:
    """Lets a client written before results were typed read a field by its key
    (``result["model_id"]``); new code reads the attribute."""

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:  # type: ignore[attr-defined]
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in type(self).model_fields else default  # type: ignore[attr-defined]


class TrainingResultView(_ResultMapping, TrainingResult):
    model_config = ConfigDict(extra="ignore")
    model_id: str | None = Field(
        default=None, description="the model the training's bundle was catalogued as"
    )
    bundle_bytes: int | None = Field(
        default=None, description="the bundle's size when it was catalogued, in bytes"
    )


class BacktestResultView(_ResultMapping, BacktestResult):
    model_config = ConfigDict(extra="ignore")


class DataFetchResultView(_ResultMapping, DataFetchResult):
    model_config = ConfigDict(extra="ignore")
    dataset: dict[str, Any] | None = Field(
        default=None,
        description="the dataset version the fetch became: symbol, timeframe, version, "
        "checksum, rows, first, last, created, source_name, unexpected_gaps",
    )


class WalkforwardReportResultView(_ResultMapping, WalkforwardReportResult):
    model_config = ConfigDict(extra="ignore")


class GapReportResultView(_ResultMapping, GapReportResult):
    model_config = ConfigDict(extra="ignore")


class StrategyAuditResultView(_ResultMapping, StrategyAuditResult):
    model_config = ConfigDict(extra="ignore")


class TuneResultView(_ResultMapping, TuneResult):
    model_config = ConfigDict(extra="ignore")


class WalkforwardResult(_ResultMapping, _View):
    """A completed walk-forward: its report job's result, the job, and every child by role."""

    kind: Literal["walkforward"] = "walkforward"
    report_sha256: str
    series_sha256: str | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    report_operation_id: str
    children: dict[str, str] = Field(
        default_factory=dict, description="role (train:3, backtest:3, report) -> operation"
    )


OperationResultView = Annotated[
    TrainingResultView
    | BacktestResultView
    | DataFetchResultView
    | WalkforwardReportResultView
    | WalkforwardResult
    | GapReportResultView
    | StrategyAuditResultView
    | TuneResultView,
    Field(discriminator="kind"),
]


# --- walk-forward children -------------------------------------------------------------


class ChildKind(StrEnum):
    TRAIN = "train"
    BACKTEST = "backtest"
    REPORT = "report"


@dataclass(frozen=True)
class ChildRole:
    """What a child operation does in its walk-forward: fold ``fold``'s training or backtest,
    or the report (no fold). Stored and sent as text (``train:3``, ``backtest:3``,
    ``report``): :meth:`parse` and ``str()`` are the only translations."""

    kind: ChildKind
    fold: int | None = None

    def __post_init__(self) -> None:
        if (self.kind == ChildKind.REPORT) != (self.fold is None):
            has = "has no" if self.fold is None else "has a"
            raise ValueError(f"a {self.kind} role {has} fold")
        if self.fold is not None and self.fold < 0:
            raise ValueError(f"a fold index is never negative ({self.fold})")

    @classmethod
    def train(cls, fold: int) -> ChildRole:
        return cls(ChildKind.TRAIN, fold)

    @classmethod
    def backtest(cls, fold: int) -> ChildRole:
        return cls(ChildKind.BACKTEST, fold)

    @classmethod
    def report(cls) -> ChildRole:
        return cls(ChildKind.REPORT)

    @classmethod
    def parse(cls, text: str) -> ChildRole:
        """The role stored as ``text``; ValueError when it names none."""
        kind, colon, fold = text.partition(":")
        try:
            if not colon:
                return cls(ChildKind(kind))
            if not fold.isdigit():
                raise ValueError(f"fold {fold!r} is not a number")
            return cls(ChildKind(kind), int(fold))
        except ValueError as exc:
            raise ValueError(f"{text!r} is no walk-forward role: {exc}") from None

    def __str__(self) -> str:
        return self.kind.value if self.fold is None else f"{self.kind.value}:{self.fold}"

    def sort_key(self) -> tuple[int, str]:
        """By fold, the report last."""
        return (10**6 if self.fold is None else self.fold, self.kind.value)


class AttemptRef(_Request):
    attempt: int = Field(ge=1)


class Completion(AttemptRef):
    """Artifacts named in ``result`` must be uploaded before completing."""

    result: OperationResult


class Failure(AttemptRef):
    error: str = Field(min_length=1, max_length=20_000)


class Release(AttemptRef):
    reason: str = Field(default="worker shutting down", max_length=500)


# --- operations ----------------------------------------------------------------------


class AttemptRecord(_View):
    attempt: int
    worker_id: str
    worker_versions: dict[str, str] = Field(default_factory=dict)
    claimed_at: datetime
    ended_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    reason: str | None = None


class Reproducibility(_View):
    """Everything needed to run an operation again and expect the same result."""

    strategy_hash: str | None
    data_checksums: dict[str, str] = Field(description="'SYMBOL/timeframe@version' -> sha256")
    seed: int | None
    versions: dict[str, str] = Field(description="backend-side distributions at creation")
    worker_id: str | None
    attempts: list[AttemptRecord]


class OperationView(_View):
    operation_id: str
    kind: OperationKind
    state: OperationState
    progress: Progress
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    attempt: int
    worker_id: str | None
    lease_expires_at: datetime | None
    inputs: OperationInputs
    reproducibility: Reproducibility
    error: str | None
    result: OperationResultView | None
    checkpoint_sha256: str | None
    retry_of: str | None
    strategy_name: str | None = None
    parent_id: str | None = Field(default=None, description="the walk-forward it belongs to")
    role: str | None = Field(default=None, description="e.g. train:3, backtest:3, report")
    device: str | None = Field(
        default=None, description="the device it must run on (a strategy's training.device)"
    )
    waiting: str | None = Field(
        default=None,
        description="why a pending operation is not running yet, when no registered worker "
        "can take it (e.g. no registered training worker offers cuda)",
    )

    @property
    def child_role(self) -> ChildRole | None:
        """``role`` as a structure: what this child does in its walk-forward, and for which
        fold (None: not a walk-forward's child)."""
        return ChildRole.parse(self.role) if self.role else None


class WalkforwardView(_View):
    """A walk-forward operation with its child operations (``role`` says which is which)."""

    operation: OperationView
    children: list[OperationView]


# --- catalogue views -----------------------------------------------------------------


class ArtifactView(_View):
    sha256: str
    kind: ArtifactKind
    size: int = Field(description="bytes")
    created_at: datetime
    references: list[str] = Field(default_factory=list)


class ExactReportStatus(_View):
    """The operation making (or that made) a dataset version's exact gap report."""

    operation_id: str
    state: OperationState
    error: str | None = None


class DatasetView(_View):
    """One dataset version. ``gap_report`` is the heuristic report made at import (its
    calendar guessed from the bars); with an ``exchange`` named, ``exact_gap_report`` is the
    bars checked against that exchange's sessions once ``exact_report`` has completed."""

    symbol: str
    timeframe: Timeframe
    version: int
    checksum: str
    rows: int
    first: datetime
    last: datetime
    size: int = Field(description="bytes of the normalised CSV")
    created_at: datetime
    source_name: str | None = None
    warnings: list[str] = Field(default_factory=list)
    gap_report: dict[str, Any] | None = None
    exchange: str | None = None
    exact_gap_report: ExactGapReport | None = None
    exact_report: ExactReportStatus | None = None
    references: list[str] = Field(default_factory=list)
    unchanged: bool = Field(
        default=False, description="an upload identical to the newest version adds no version"
    )


class SymbolSettings(_Request):
    """A symbol's settings: ``exchange`` (a code or alias; None clears it) names where it
    trades, for every later import and fetch of the symbol that names none."""

    exchange: Exchange | None


class SymbolView(_View):
    """A symbol's settings, and the exact gap reports setting them queued (one per timeframe
    with data: its newest version)."""

    symbol: str
    exchange: str | None
    updated_at: datetime
    queued: list[str] = Field(default_factory=list, description="gap_report operations")


class ModelView(_View):
    model_id: str
    name: str
    bundle_sha256: str
    size: int
    created_at: datetime
    training_operation_id: str | None
    strategy_hash: str | None
    data: list[DataRef]
    metadata: dict[str, Any] = Field(description="the bundle's bundle.json")
    references: list[str] = Field(default_factory=list)


# --- requests from the CLI -----------------------------------------------------------


class StrategyValidationRequest(_Request):
    strategy: str = Field(description="strategy YAML text", max_length=1_000_000)
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="dotted path -> value, e.g. training.epochs: 5"
    )


class StrategyIssue(_View):
    path: str
    message: str


class StrategyValidation(_View):
    valid: bool
    name: str | None = None
    strategy_hash: str | None = None
    features: list[str] = Field(default_factory=list)
    issues: list[StrategyIssue] = Field(default_factory=list)


class TrainingRequest(StrategyValidationRequest):
    pass


class StrategyAuditRequest(StrategyValidationRequest):
    """Audit a strategy on ``symbol``'s stored data (the strategy's timeframe and range, as
    overridden). ``model_id``: a model to check decisions and significance with; ``train``:
    train two models with the strategy's seed instead (reproducibility needs it). ``checks``:
    which of ``ktrdr_core.strategy_audit.AUDIT_CHECKS`` to run (default all)."""

    symbol: Symbol
    model_id: str | None = Field(default=None, pattern=ID_PATTERN)
    train: bool = False
    checks: list[str] = Field(default_factory=lambda: list(AUDIT_CHECKS), min_length=1)
    cuts: int = Field(default=50, ge=1, le=1000)
    permutations: int = Field(default=1000, ge=10, le=100_000)

    @model_validator(mode="after")
    def _known_checks_and_one_model(self) -> StrategyAuditRequest:
        unknown = [name for name in self.checks if name not in AUDIT_CHECKS]
        if unknown:
            raise ValueError(
                f"unknown checks {', '.join(unknown)}; known: {', '.join(AUDIT_CHECKS)}"
            )
        if self.model_id is not None and self.train:
            raise ValueError("give model_id or train, not both")
        return self


class WalkforwardRequest(StrategyValidationRequest):
    """A walk-forward of a strategy over its data (``data.start``/``data.end`` or all of it).

    The range is cut into ``folds + train_blocks`` equal blocks of days; fold *i* tests on
    block ``train_blocks + i`` and trains on the ``train_blocks`` blocks before it (rolling)
    or on everything before it (expanding), minus an embargo of ``embargo_bars`` bars
    (default: the strategy's own embargo, at least its label horizon) before the test.
    """

    folds: int = Field(default=4, ge=2, le=50)
    window: WindowMode = WindowMode.ROLLING
    train_blocks: int = Field(
        default=3, ge=1, le=50, description="training window length, in test windows"
    )
    embargo_bars: int | None = Field(default=None, ge=0, le=100_000)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="backtest overrides: capital, commission, ..."
    )


class BacktestRequest(_Request):
    model_id: str = Field(pattern=ID_PATTERN)
    start: datetime | None = None
    end: datetime | None = None
    settings: dict[str, Any] = Field(
        default_factory=dict, description="backtest overrides: capital, commission, ..."
    )

    @model_validator(mode="after")
    def _range_in_order(self) -> BacktestRequest:
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


# --- parameter searches (ktrdr tune; see ktrdr_core.tuning) ------------------------------


class TuneRequest(StrategyValidationRequest):
    """Search ``space`` (the search-space YAML text; ``space_name``: its file name, for
    messages) for the parameters that make ``objective`` (a walk-forward metric such as
    ``sharpe``) best, in ``trials`` trials of ``folds`` folds each (1: one train/test split).
    The last ``holdout`` fraction of the date range is kept from every trial and
    re-evaluates the best ones once the search ends."""

    space: str = Field(min_length=1, max_length=1_000_000)
    space_name: str = Field(default="space.yaml", max_length=255)
    trials: int = Field(default=20, ge=1, le=10_000)
    objective: str = Field(default="sharpe", min_length=1, max_length=64)
    direction: Literal["maximize", "minimize"] = "maximize"
    folds: int = Field(default=3, ge=1, le=50)
    train_blocks: int = Field(
        default=3, ge=1, le=50, description="training window length, in test windows"
    )
    embargo_bars: int | None = Field(default=None, ge=0, le=100_000)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    prune: bool = False
    parallel: int = Field(default=2, ge=1, le=64)
    holdout: float = Field(default=0.2, gt=0.0, lt=0.9)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    keep_best: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="once the study ends, only the model bundles of this many best trials "
        "are kept (their folds' and holdout runs' models); every trial's record stays",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="backtest overrides: capital, commission, ..."
    )


class TrialRequest(AttemptRef):
    """The study driver asks for trial ``number`` with ``params`` (dotted strategy path ->
    value), as the attempt it holds; ``holdout``: re-evaluate that trial on the holdout."""

    number: int = Field(ge=0, le=100_000)
    params: dict[str, Any] = Field(default_factory=dict)
    holdout: bool = False


class TrialView(_View):
    """One trial of a study (or a holdout re-evaluation): its walk-forward operation, the
    parameters it tried, and what it scored (``value``: the objective over its stitched
    folds; ``fold_values``: the objective on each fold that completed, in fold order)."""

    number: int
    role: str
    operation_id: str
    state: OperationState
    params: dict[str, Any]
    value: float | None = None
    fold_values: list[float | None] = Field(default_factory=list)
    folds_done: int = Field(default=0, description="folds whose backtest completed")
    folds: int = 0
    metrics: dict[str, float] = Field(
        default_factory=dict, description="the stitched out-of-sample metrics (finite ones)"
    )
    bars: int | None = Field(default=None, description="test bars over every fold")
    test_days: int | None = Field(default=None, description="calendar days the tests span")
    error: str | None = None
    pruned: bool = False
    workers: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    models: list[str] = Field(
        default_factory=list, description="the models its folds trained that are still stored"
    )
    models_deleted: int = Field(
        default=0, description="models its folds trained that were deleted since"
    )
    freed_bytes: int = Field(default=0, description="bytes of those deleted models' bundles")


class TuneListing(OperationView):
    """A study as the list of studies shows it: ``trials_done`` of its ``inputs.trials``
    trials ended (completed, failed or pruned), ``best_value`` the best objective of a
    completed trial so far (None: none yet)."""

    trials_done: int = 0
    best_value: float | None = None


class TuneView(_View):
    """A study with its trials and holdout re-evaluations, by number."""

    operation: OperationView
    trials: list[TrialView]
    holdout: list[TrialView]


class TrialWatch(AttemptRef):
    """The driver waits up to ``wait_s`` seconds for one of the trials it watches to change:
    ``known`` maps each one's role (``trial:3``, ``holdout:3``) to the fold results the
    driver has seen of it. The answer is the watched trials that ended or completed another
    fold since (none when the wait ran out)."""

    known: dict[str, int] = Field(max_length=10_000)
    wait_s: float = Field(default=5.0, ge=0.0, le=MAX_CLAIM_TIMEOUT_S)


class BundleKeeping(_View):
    """What a study keeps once it ended: the model bundles of its ``keep_best`` best trials
    (``kept``, by number, best first); every other trial's models are deleted. ``freed_bytes``
    counts every deleted bundle of the study's trials; ``unsettled``: trainings of the study
    that have not ended yet (their models are dealt with once they have)."""

    keep_best: int
    kept: list[int]
    deleted: list[str] = Field(description="the models this call deleted")
    freed_bytes: int
    unsettled: list[str] = Field(default_factory=list)
