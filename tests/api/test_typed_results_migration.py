"""Migration 0004 on each database: results and roles stored in the 0003 shape read back typed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from ktrdr_api.db import make_engine
from ktrdr_api.migrations import alembic_config, upgrade
from ktrdr_api.models import Operation
from ktrdr_api.views import to_view
from ktrdr_core.protocol import (
    BacktestInputs,
    BacktestResultView,
    ChildKind,
    ChildRole,
    DataFetchInputs,
    DataFetchResultView,
    FoldPlan,
    TrainingInputs,
    TrainingResultView,
    WalkforwardInputs,
    WalkforwardResult,
)
from ktrdr_core.settings import Settings

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
SHA = {"bundle": "b" * 64, "report": "e" * 64, "chart_png": "c" * 64, "chart_svg": "d" * 64}
SHA["data"] = "a" * 64
FOLD = FoldPlan(
    index=0,
    train_start=date(2024, 1, 1),
    train_end=date(2024, 2, 1),
    test_start=date(2024, 2, 3),
    test_end=date(2024, 3, 1),
)
STRATEGY = {"strategy_name": "s", "strategy_yaml": "name: s\n", "strategy_hash": "h", "data": []}
REPORT_0003 = {
    "kind": "wf_report",
    "report_sha256": SHA["report"],
    "chart_png_sha256": SHA["chart_png"],
    "chart_svg_sha256": SHA["chart_svg"],
    "summary": {"metrics": {"total_return": 0.1}},
}


def _row(op_id: str, inputs, result, **fields) -> Operation:  # type: ignore[no-untyped-def]
    return Operation(
        id=op_id,
        kind=inputs.kind,
        state="completed",
        created_at=NOW,
        updated_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        inputs=inputs.model_dump(mode="json"),
        progress={"percent": 100.0},
        attempt=1,
        attempts=[],
        cancel_requested=False,
        result=result,
        **fields,
    )


def _rows_in_the_0003_shape() -> list[Operation]:
    walkforward = WalkforwardInputs(
        **STRATEGY, window="rolling", train_blocks=3, embargo_bars=0, folds=[FOLD]
    )
    backtest = BacktestInputs(model_id="mdl_000000000001", bundle_sha256=SHA["bundle"], data=[])
    fetch = DataFetchInputs(provider="binance", symbol="BTCUSDT", timeframe="1h", mode="full")
    child = {"parent_id": "op_00000000000f"}
    return [
        _row(
            "op_00000000000f",
            walkforward,
            REPORT_0003
            | {
                "report_operation_id": "op_0000000000a3",
                "children": {
                    "train:0": "op_0000000000a1",
                    "backtest:0": "op_0000000000a2",
                    "report": "op_0000000000a3",
                },
            },
        ),
        _row(
            "op_0000000000a1",
            TrainingInputs(**STRATEGY),
            {
                "kind": "training",
                "bundle_sha256": SHA["bundle"],
                "summary": {"epochs_run": 3},
                "model_id": "mdl_000000000001",
            },
            role="train:0",
            **child,
        ),
        _row(
            "op_0000000000a2",
            backtest,
            {
                "kind": "backtest",
                "report_sha256": SHA["report"],
                "chart_png_sha256": None,
                "chart_svg_sha256": None,
                "summary": {"trades": 2},
            },
            role="backtest:0",
            **child,
        ),
        _row(
            "op_0000000000b1",
            fetch,
            {
                "kind": "data_fetch",
                "data_sha256": SHA["data"],
                "summary": {"bars_added": 5},
                "dataset": {"symbol": "BTCUSDT", "version": 2, "created": True},
            },
        ),
        # A walk-forward that has not completed has no result: the migration leaves it be.
        _row("op_00000000000e", walkforward, None),
    ]


def test_results_and_roles_stored_before_0004_read_back_typed(database_url, tmp_path):
    engine = make_engine(Settings(home=tmp_path, database_url=database_url))
    upgrade(engine, "0003")
    with Session(engine) as session, session.begin():
        session.add_all(_rows_in_the_0003_shape())

    upgrade(engine)
    command.check(alembic_config(engine))
    with Session(engine) as session:
        views = {op.id: to_view(op) for op in session.scalars(select(Operation))}

    parent = views["op_00000000000f"].result
    assert isinstance(parent, WalkforwardResult)
    assert parent.report_operation_id == "op_0000000000a3"
    assert parent.report_sha256 == SHA["report"] and parent.summary["metrics"]["total_return"]
    assert parent.children["train:0"] == "op_0000000000a1"
    training = views["op_0000000000a1"]
    assert isinstance(training.result, TrainingResultView)
    assert training.result.model_id == "mdl_000000000001"
    assert training.child_role == ChildRole(ChildKind.TRAIN, 0) and training.role == "train:0"
    backtest = views["op_0000000000a2"]
    assert isinstance(backtest.result, BacktestResultView)
    assert backtest.child_role == ChildRole.backtest(0)
    fetch = views["op_0000000000b1"].result
    assert isinstance(fetch, DataFetchResultView) and fetch.dataset["version"] == 2
    assert views["op_00000000000e"].result is None

    # The JSON a client reads keeps every key it read before, and the old way of reading;
    # the PNG/SVG charts went with the rasteriser (pages draw the series), and a result from
    # before the series says it has none.
    shown = views["op_00000000000f"].model_dump(mode="json")["result"]
    kept = {k: v for k, v in REPORT_0003.items() if not k.startswith("chart_")}
    assert shown == kept | {
        "series_sha256": None,
        "kind": "walkforward",
        "report_operation_id": "op_0000000000a3",
        "children": parent.children,
    }
    assert training.result["model_id"] == "mdl_000000000001"

    command.downgrade(alembic_config(engine), "0003")
    with Session(engine) as session:
        stored = session.get(Operation, "op_00000000000f")
        assert stored is not None and stored.result["kind"] == "wf_report"
        assert session.get(Operation, "op_00000000000e").result is None  # type: ignore[union-attr]
    engine.dispose()


@pytest.mark.parametrize("text", ["train:0", "backtest:12", "report"])
def test_a_role_reads_back_as_it_was_stored(text):
    assert str(ChildRole.parse(text)) == text


@pytest.mark.parametrize("text", ["train", "report:1", "train:x", "train:-1", "fold:1", ""])
def test_a_role_that_names_nothing_is_refused(text):
    with pytest.raises(ValueError, match="no walk-forward role"):
        ChildRole.parse(text)
