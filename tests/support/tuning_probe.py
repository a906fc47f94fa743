"""A parameter study's driver run against a backend played in-process, as a script: the
torch-free image's test runs it inside the image (``python3 -c PROBE``), a worker test runs it
with torch, scipy and scikit-learn hidden. It prints one JSON line: the best trial's
parameters, the importance, and which of the hidden packages got imported (none may)."""

PROBE = r"""
import json, sys
from datetime import UTC, date, datetime
from ktrdr_core.protocol import (BundleKeeping, DataRef, OperationState, TrialView, TuneInputs,
                                 TuneView)
from ktrdr_worker.tuning import StudyDriver

inputs = TuneInputs(
    strategy_name="s", strategy_yaml="name: s\n", strategy_hash="h",
    data=[DataRef(symbol="SIM", timeframe="1d", version=1, checksum="0" * 64, rows=10,
                  first=datetime(2020, 1, 1, tzinfo=UTC), last=datetime(2021, 1, 1, tzinfo=UTC))],
    space_yaml="", trials=12, objective="sharpe", direction="maximize", folds=2,
    space={"indicators.rsi_14.params.period": {"int": [5, 30]},
           "training.learning_rate": {"float": [1e-4, 1e-2], "log": True}},
    train_blocks=3, embargo_bars=0, sampler="tpe", prune=True, parallel=2, holdout=0.2,
    data_start=date(2020, 1, 1), search_end=date(2020, 9, 30), holdout_start=date(2020, 10, 2),
    holdout_end=date(2021, 1, 1), tune_seed=1,
)
trials, holdout = {}, {}

def create(request):
    book = holdout if request.holdout else trials
    period = request.params["indicators.rsi_14.params.period"]
    value = 2.0 - abs(period - 14) / 5
    book.setdefault(request.number, TrialView(
        number=request.number, role="trial", operation_id="op_000000000000",
        state=OperationState.COMPLETED, params=request.params, value=value,
        fold_values=[value, value], folds=2))
    return book[request.number]

def watch(known, wait_s):
    # Every trial completes as it is created: each watched one has changed.
    return [(holdout if role.startswith("holdout:") else trials)[int(role.partition(":")[2])]
            for role in known]


driver = StudyDriver(
    inputs, read=lambda: TuneView.model_construct(operation=None, trials=list(trials.values()),
                                                  holdout=list(holdout.values())),
    create=create, prune=lambda number: trials[number], watch=watch,
    keep=lambda: BundleKeeping(keep_best=3, kept=[], deleted=[], freed_bytes=0),
    attempt=1, check=lambda: None, cancelled=lambda: None,
    progress=lambda percent, message: None, sleep=lambda seconds: None)
summary = driver.run().summary
print(json.dumps({
    "best": summary["best"]["params"],
    "importance": summary["importance"],
    "holdout": [row["trial"] for row in summary["holdout"]],
    "imported": [n for n in ("torch", "scipy", "sklearn") if sys.modules.get(n) is not None],
}))
"""
