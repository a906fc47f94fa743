"""The jobs a worker runs: train a strategy (training workers); backtest a model, fetch
market data, stitch a walk-forward's report, check a dataset against its exchange's
sessions (backtest workers); audit a strategy (training workers). ``RUNNERS`` maps each
operation kind to its job; ``ktrdr_core.protocol.SERVED_BY`` says which worker takes it.

Each takes a :class:`~ktrdr_worker.service.job.Job` and returns the result to complete the
operation with, after uploading the artifacts it names; it raises a
:class:`~ktrdr_worker.service.attempt.JobInterrupted` when the attempt was lost, cancelled or
the worker is stopping, and any other error when the work itself failed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from ktrdr_core.errors import KtrdrError
from ktrdr_core.protocol import (
    ArtifactKind,
    BacktestInputs,
    BacktestResult,
    DataFetchResult,
    GapReportInputs,
    GapReportResult,
    OperationKind,
    StrategyAuditInputs,
    StrategyAuditResult,
    TrainingInputs,
    TrainingResult,
    TrialWatch,
    TuneInputs,
    TuneResult,
    WalkforwardReportInputs,
    WalkforwardReportResult,
)
from ktrdr_worker.service.job import Job

__all__ = [
    "RUNNERS",
    "BacktestJobError",
    "Runner",
    "run_backtest",
    "run_data_fetch",
    "run_gap_report",
    "run_strategy_audit",
    "run_training",
    "run_tune",
    "run_walkforward_report",
]

log = logging.getLogger("ktrdr_worker.service")

Runner = Callable[
    [Job],
    TrainingResult
    | BacktestResult
    | DataFetchResult
    | WalkforwardReportResult
    | GapReportResult
    | StrategyAuditResult
    | TuneResult,
]

# Progress (percent) given to the phases around the computing.
_DATA_DONE = 3.0
_TRAINING_DONE = 97.0

_EPOCH_METRICS = (
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_balanced_accuracy",
    "learning_rate",
    "samples_per_s",
)


class BacktestJobError(KtrdrError):
    """A backtest operation this worker cannot run as asked; the message says why."""


def _finite(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    # Progress metrics travel as JSON numbers: NaN and infinities have no spelling there.
    out = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def run_training(job: Job) -> TrainingResult:
    """Download the data, train (resuming from the claim's checkpoint when there is one),
    stream epochs as progress, checkpoint, and upload the bundle.

    A stop request (SIGTERM) saves a checkpoint mid-epoch and uploads it before raising
    :class:`StopRequested`, so the next attempt resumes from there.
    """
    from ktrdr_worker.models.pipeline import train_strategy
    from ktrdr_worker.models.training import TrainingCancelled, checkpoint_path

    inputs = job.claim.inputs
    if not isinstance(inputs, TrainingInputs):
        raise TypeError(f"a training job got {inputs.kind} inputs")
    job.progress(0.0, f"downloading data for {inputs.strategy_name}", now=True)
    frames = job.load_data(inputs.data)
    resume_from = None
    if job.claim.checkpoint_sha256:
        job.progress(_DATA_DONE, "downloading the checkpoint to resume from")
        resume_from = job.workdir / "resume.pt"
        job.call(
            lambda: job.client.download_artifact(
                job.claim.checkpoint_sha256, resume_from, interrupt=job.check
            ),
            "download of the checkpoint",
        )
    job.check()
    checkpoints = job.workdir / "checkpoints"
    job.heartbeat.watch_checkpoint(checkpoint_path(checkpoints))
    where = f", resuming from checkpoint {job.claim.checkpoint_sha256[:12]}" if resume_from else ""
    job.progress(_DATA_DONE, f"building features and labels{where}", now=True)

    def on_epoch(report: dict[str, Any]) -> None:
        epoch, epochs = int(report["epoch"]), int(report["epochs"])
        share = epoch / epochs if epochs else 1.0
        job.progress(
            _DATA_DONE + (_TRAINING_DONE - _DATA_DONE) * share,
            f"epoch {epoch}/{epochs}: train loss {report['train_loss']:.4f}, "
            f"validation loss {report['val_loss']:.4f}",
            step=epoch,
            total_steps=epochs,
            metrics=_finite(report, _EPOCH_METRICS),
        )

    # The text, never a path: it always holds a newline, which is what tells them apart.
    strategy_text = inputs.strategy_yaml
    if "\n" not in strategy_text:
        strategy_text += "\n"
    try:
        outcome = train_strategy(
            strategy_text,
            frames,
            seed=inputs.seed,
            threads=job.threads,
            on_epoch=on_epoch,
            should_cancel=job.interrupted,
            checkpoint_dir=checkpoints,
            resume_from=resume_from,
            after_epoch=lambda done: job.hold(f"after epoch {done}"),
        )
    except TrainingCancelled as stopped:
        log.info("%s", stopped)
        if job.attempt.stopping.is_set() and not job.attempt.lost:
            # Shutting down: leave the next attempt a checkpoint from right here.
            sha = job.call(job.heartbeat.sync_checkpoint, "checkpoint upload before release")
            log.info("checkpoint %s uploaded for the next attempt", (sha or "none")[:12])
        job.check()
        raise  # cancelled without a reason we know of: report it as a failure

    job.heartbeat.watch_checkpoint(None)  # the run is over: its last checkpoint is not needed
    job.check(finishing=True)
    job.progress(_TRAINING_DONE, "uploading the model bundle", now=True)
    bundle = job.workdir / "bundle.zip"
    bundle.write_bytes(outcome.bundle)
    sha = job.upload(bundle, ArtifactKind.BUNDLE)
    return TrainingResult(bundle_sha256=sha, summary=outcome.result)


def run_backtest(job: Job) -> BacktestResult:
    """Download the bundle and data, backtest, upload the report and its page's series.

    A model trained on one symbol gets that symbol's report (``ktrdr-backtest-report/1``); one
    trained on several gets the portfolio's (``/2``, ``ktrdr_worker.models.portfolio``).
    """
    from ktrdr_worker.models.backtest import backtest_model
    from ktrdr_worker.models.portfolio import backtest_portfolio

    inputs = job.claim.inputs
    if not isinstance(inputs, BacktestInputs):
        raise TypeError(f"a backtest job got {inputs.kind} inputs")
    symbols = list(dict.fromkeys(ref.symbol for ref in inputs.data))
    exchanges: dict[str, str | None] = {}
    for symbol in symbols:
        named = sorted({ref.exchange or "none" for ref in inputs.data if ref.symbol == symbol})
        if len(named) != 1:
            raise BacktestJobError(
                f"{symbol}'s data names different exchanges ({', '.join(named)}): one calendar "
                f"annualises a backtest; set one with `ktrdr data exchange {symbol} CODE`"
            )
        exchanges[symbol] = None if named[0] == "none" else named[0]
    job.progress(0.0, f"downloading model {inputs.model_id} and data", now=True)
    bundle = job.fetch(inputs.bundle_sha256, keep=tuple(ref.checksum for ref in inputs.data))
    frames = job.load_data(inputs.data)
    job.check()
    job.progress(30.0, f"backtesting {inputs.model_id} on {', '.join(symbols)}", now=True)
    common = {
        "start": inputs.start,
        "end": inputs.end,
        "backtest": inputs.settings or None,
        "out_dir": job.workdir / "report",
        "inference": job.inference,
    }
    if len(symbols) == 1:
        outcome = backtest_model(
            bundle, frames[symbols[0]], symbol=symbols[0], exchange=exchanges[symbols[0]], **common
        )
    else:
        outcome = backtest_portfolio(bundle, frames, exchanges=exchanges, **common)
    job.check(finishing=True)
    job.progress(90.0, "uploading the report and its series", now=True)
    assert outcome.paths is not None
    return BacktestResult(
        report_sha256=job.upload(outcome.paths["report"], ArtifactKind.REPORT),
        series_sha256=job.upload(outcome.paths["series"], ArtifactKind.SERIES),
        summary=backtest_summary(outcome.report),
    )


_SUMMARY_KEYS = ("strategy_name", "timeframe", "start", "end", "bars", "period", "in_sample")
_SECTION_KEYS = ("metrics", "buy_and_hold", "signal_counts", "zero_trade_reason")


def backtest_summary(report: dict[str, Any]) -> dict[str, Any]:
    """What an operation's result carries of a report: the whole's metrics and period (the
    portfolio's for several symbols, with ``symbols`` and each one's metrics and trades)."""
    from ktrdr_core.reports import headline

    summary = {key: report.get(key) for key in _SUMMARY_KEYS}
    whole = headline(report)
    summary.update({key: whole[key] for key in ("metrics", "buy_and_hold")})
    sections = report.get("symbols")
    if isinstance(sections, dict):
        summary["symbols"] = list(sections)
        summary["weights"] = whole["weights"]
        summary["contributions"] = whole["contributions"]
        summary["trades"] = sum(len(r["trades"]) for r in sections.values())
        summary["per_symbol"] = {
            symbol: {key: r.get(key) for key in _SECTION_KEYS} | {"trades": len(r["trades"])}
            for symbol, r in sections.items()
        }
    else:
        summary["symbol"] = report.get("symbol")
        summary.update({key: report.get(key) for key in _SECTION_KEYS[2:]})
        summary["trades"] = len(report.get("trades", []))
    return summary


def run_data_fetch(job: Job) -> DataFetchResult:
    """Fetch market data from a provider into a new dataset version (see fetch_runner)."""
    from ktrdr_worker.service.fetch_runner import run_data_fetch as run

    return run(job)


def run_walkforward_report(job: Job) -> WalkforwardReportResult:
    """Download every fold's backtest report and the data; stitch them into the
    walk-forward's report and its page's series; upload those."""
    import pandas as pd

    from ktrdr_worker.walkforward import basket_close, stitch_walkforward

    inputs = job.claim.inputs
    if not isinstance(inputs, WalkforwardReportInputs):
        raise TypeError(f"a walk-forward report job got {inputs.kind} inputs")
    job.progress(0.0, f"downloading {len(inputs.folds)} fold reports", now=True)
    reports = {}
    for fold in inputs.folds:
        path = job.fetch(fold.report_sha256)
        reports[fold.index] = json.loads(path.read_text(encoding="utf-8"))
    frames = job.load_data(inputs.data)
    first = reports[min(reports)]
    closes = {}
    for symbol, frame in frames.items():
        if isinstance(frame, dict):  # several timeframes: the reports' own one
            frame = frame[first["timeframe"]]
        closes[symbol] = frame["close"]
    if "portfolio" in first:
        # Each symbol's share of the capital held from the first test bar on.
        start = pd.Timestamp(first["start"])
        close = basket_close(
            {symbol: series.loc[series.index >= start] for symbol, series in closes.items()},
            first["portfolio"]["weights"],
        )
    else:
        close = next(iter(closes.values()))
    job.check()
    job.progress(50.0, "stitching the folds", now=True)
    report, series = stitch_walkforward(
        inputs.folds,
        reports,
        close,
        walkforward_id=inputs.walkforward_id,
        strategy_name=inputs.strategy_name,
        window=inputs.window.value,
    )
    out = job.workdir / "walkforward"
    out.mkdir(parents=True, exist_ok=True)
    series_path = out / "series.json"
    series_path.write_text(json.dumps(series, separators=(",", ":")), encoding="utf-8")
    report_path = out / "walkforward.json"
    report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    job.check(finishing=True)
    job.progress(90.0, "uploading the report and its series", now=True)
    return WalkforwardReportResult(
        report_sha256=job.upload(report_path, ArtifactKind.REPORT),
        series_sha256=job.upload(series_path, ArtifactKind.SERIES),
        summary={key: report[key] for key in ("metrics", "summary", "folds", "stability")},
    )


def run_gap_report(job: Job) -> GapReportResult:
    """Download one dataset version and check its bars against its exchange's official
    sessions (``ktrdr_worker.sessions.exact_gap_report``); the report is the result."""
    from ktrdr_worker.sessions import exact_gap_report

    inputs = job.claim.inputs
    if not isinstance(inputs, GapReportInputs):
        raise TypeError(f"a gap-report job got {inputs.kind} inputs")
    ref = inputs.dataset
    what = f"{ref.symbol} {ref.timeframe.value} v{ref.version}"
    if ref.exchange is None:
        raise BacktestJobError(f"{what} names no exchange: nothing to check its bars against")
    job.progress(0.0, f"downloading {what}", now=True)
    frame = job.load_data([ref])[ref.symbol]
    job.check()
    job.progress(50.0, f"checking {what} against the sessions of {ref.exchange}", now=True)
    report = exact_gap_report(frame.index, ref.timeframe, ref.exchange)
    job.check(finishing=True)
    return GapReportResult(report=report)


def run_strategy_audit(job: Job) -> StrategyAuditResult:
    """Download the symbol's data (and the model, when one is named), train twice with the
    strategy's seed when asked, and run the audit's checks
    (``ktrdr_worker.strategy_audit.audit_strategy``); the report is the result."""
    from ktrdr_core.strategy.loading import load_strategy
    from ktrdr_worker.models.pipeline import train_strategy
    from ktrdr_worker.models.training import TrainingCancelled
    from ktrdr_worker.strategy_audit import audit_strategy

    inputs = job.claim.inputs
    if not isinstance(inputs, StrategyAuditInputs):
        raise TypeError(f"a strategy-audit job got {inputs.kind} inputs")
    job.progress(0.0, f"downloading data for {inputs.symbol}", now=True)
    frames = job.load_data(inputs.data)
    bundle = None
    if inputs.bundle_sha256:
        job.progress(_DATA_DONE, f"downloading model {inputs.model_id}")
        bundle = job.fetch(inputs.bundle_sha256).read_bytes()
    job.check()
    text = inputs.strategy_yaml if "\n" in inputs.strategy_yaml else inputs.strategy_yaml + "\n"
    strategy = load_strategy(text)

    def train_twice() -> tuple[bytes, bytes]:
        bundles = []
        for run in (1, 2):
            job.progress(_DATA_DONE, f"training {run} of 2 with seed {inputs.seed}", now=True)
            try:
                outcome = train_strategy(
                    text,
                    {inputs.symbol: frames[inputs.symbol]},
                    seed=inputs.seed,
                    threads=job.threads,
                    should_cancel=job.interrupted,
                )
            except TrainingCancelled:
                job.check()
                raise
            bundles.append(outcome.bundle)
        return bundles[0], bundles[1]

    steps = list(inputs.checks)

    def on_check(name: str) -> None:
        job.check()
        done = steps.index(name) / len(steps) if name in steps else 0.0
        percent = _DATA_DONE + (_TRAINING_DONE - _DATA_DONE) * done
        job.progress(percent, f"checking {name}", now=True)

    report = audit_strategy(
        strategy,
        frames[inputs.symbol],
        symbol=inputs.symbol,
        checks=inputs.checks,
        bundle=bundle,
        train=train_twice if inputs.train else None,
        model_id=inputs.model_id,
        cuts=inputs.cuts,
        permutations=inputs.permutations,
        seed=inputs.seed or 0,
        exchange=inputs.data[0].exchange,
        inference=job.inference,
        on_check=on_check,
    )
    job.check(finishing=True)
    return StrategyAuditResult(report=report)


def run_tune(job: Job) -> TuneResult:
    """Drive a parameter study (``ktrdr_worker.tuning``): ask Optuna for trials, have the
    backend run them as child walk-forwards, tell Optuna how they scored, then re-evaluate
    the best on the holdout. Holds this worker's slot until the study ends."""
    from ktrdr_worker.tuning import StudyDriver

    inputs = job.claim.inputs
    if not isinstance(inputs, TuneInputs):
        raise TypeError(f"a tune job got {inputs.kind} inputs")
    worker_id, operation_id = job.heartbeat.worker_id, job.attempt.operation_id
    attempt = job.attempt.number
    job.progress(0.0, f"reading study {operation_id}", now=True)
    driver = StudyDriver(
        inputs,
        read=lambda: job.call(
            lambda: job.client.driver_tune(worker_id, operation_id, attempt), "read of the study"
        ),
        create=lambda request: job.call(
            lambda: job.client.create_trial(worker_id, operation_id, request),
            f"creation of trial {request.number}",
        ),
        prune=lambda number: job.call(
            lambda: job.client.prune_trial(worker_id, operation_id, number, attempt),
            f"pruning of trial {number}",
        ),
        watch=lambda known, wait_s: job.call(
            lambda: job.client.watch_trials(
                worker_id,
                operation_id,
                TrialWatch(attempt=attempt, known=known, wait_s=wait_s),
            ),
            "wait for the trials",
        ),
        keep=lambda: job.call(
            lambda: job.client.keep_bundles(worker_id, operation_id, attempt),
            "deletion of the bundles outside the best trials",
        ),
        attempt=attempt,
        check=job.check,
        cancelled=job.attempt.cancel_requested.set,
        progress=lambda percent, message: job.progress(percent, message),
    )
    result = driver.run()
    job.check(finishing=True)
    return result


def warm_up(kind: OperationKind) -> None:
    """Pay a kind's one-off import costs before registering, not inside the first job's lease.

    A backtest worker loads only the torch-free backtest path; a training worker also torch.
    """
    if kind == OperationKind.TRAINING:
        from ktrdr_worker.models.pipeline import train_strategy  # noqa: F401
        from ktrdr_worker.models.training import warm_up_torch

        warm_up_torch()
    else:
        from ktrdr_worker.models.backtest import backtest_model  # noqa: F401


RUNNERS: dict[OperationKind, Runner] = {
    OperationKind.TRAINING: run_training,
    OperationKind.BACKTEST: run_backtest,
    OperationKind.DATA_FETCH: run_data_fetch,
    OperationKind.WALKFORWARD_REPORT: run_walkforward_report,
    OperationKind.GAP_REPORT: run_gap_report,
    OperationKind.STRATEGY_AUDIT: run_strategy_audit,
    OperationKind.TUNE: run_tune,
}
