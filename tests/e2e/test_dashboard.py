"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
backend and real workers: a training and a backtest run for real, then every page loads
without a console error and shows the API's numbers; the backtest page's chart library holds
one entry marker per trade of the report; a running training is cancelled from its page; a
wrong token gets a clear message; a reader sees cancel as unavailable; a strategy whose name
and description hold markup is shown as text.

The training to cancel is held at an epoch boundary by the worker's hold file, never raced.
Screenshots of each page go to ``test-output/dashboard`` (KTRDR_TEST_OUTPUT overrides).
"""

from __future__ import annotations

import re

import pytest

from ktrdr_core.protocol import OperationState
from tests.support.browser import SCREENSHOTS, Page, browser_or_skip
from tests.support.browser import shown_number as _fmt
from tests.support.market_data import eurusd_csv
from tests.support.stack import (
    TINY_STRATEGY,
    ApiServer,
    WorkerProcess,
    held_with_checkpoint,
    wait_for_state,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a browser, a backend and two workers, one importing torch

ADMIN = "dashboard-admin"
DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
SHOTS = SCREENSHOTS / "dashboard"
# Markup in the places a strategy holds free text; the image's handler would set a flag.
HOSTILE_NAME = "<script>window.pwned=1</script>"
HOSTILE_TEXT = "<img src=x onerror=window.pwned=1><script>window.pwned=2</script>"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def chromium():
    with browser_or_skip() as launched:
        yield launched


@pytest.fixture(scope="module")
def stack(tmp_path_factory, chromium):
    tmp = tmp_path_factory.mktemp("dashboard")
    hold = tmp / "hold"  # while it exists, a training holds after each epoch
    api = ApiServer(tmp / "home", token=ADMIN, lease_seconds=30.0).start()
    workers = [
        WorkerProcess(
            "training",
            api,
            tmp / "workers",
            worker_id="dash-trainer",
            env={"KTRDR_WORKER_HOLD_FILE": str(hold)},
        ),
        WorkerProcess("backtest", api, tmp / "workers", worker_id="dash-tester"),
    ]

    def logs() -> str:
        return "\n".join(w.logs() for w in workers)

    with api.client() as client:
        client.import_data("EURUSD", "1h", eurusd_csv(tmp / "EURUSD_1h.csv"))
        training = client.start_training(TINY_STRATEGY, {"training.epochs": 3})
        trained = wait_for_state(api, training.operation_id, DONE, "training", 180, logs)
        assert trained.state == OperationState.COMPLETED, trained.error
        model_id = trained.result["model_id"]
        backtest = client.start_backtest(model_id)
        tested = wait_for_state(api, backtest.operation_id, DONE, "backtest", 180, logs)
        assert tested.state == OperationState.COMPLETED, tested.error
        reader = client.create_token("viewer", "reader").secret
        walkforward = client.start_walkforward(
            TINY_STRATEGY, {"training.epochs": 2}, folds=2, train_blocks=2
        )
        walked = wait_for_state(api, walkforward.operation_id, DONE, "walk-forward", 300, logs)
        assert walked.state == OperationState.COMPLETED, walked.error
    yield {
        "api": api,
        "hold": hold,
        "logs": logs,
        "model_id": model_id,
        "backtest_id": backtest.operation_id,
        "training_id": training.operation_id,
        "reader": reader,
        "walkforward_id": walkforward.operation_id,
    }
    for worker in workers:
        worker.stop()
    api.stop()


@pytest.fixture
def tab(chromium, stack):
    opened = Page(chromium, stack["api"].url, SHOTS, timeout_ms=TIMEOUT_MS)
    yield opened
    opened.close()


def test_a_wrong_token_gets_a_clear_message(tab):
    tab.login("not-the-token")
    notice = tab.page.wait_for_selector("#notice:not([hidden])")
    assert (
        "The API refused the token (401): invalid or revoked bearer token" in notice.text_content()
    )
    assert tab.page.is_visible("#token")  # asked again
    assert "not-the-token" not in tab.page.url
    tab.shot("wrong-token")


def test_every_page_loads_without_a_console_error_and_shows_the_apis_numbers(tab, stack):
    api, backtest_id, model_id = stack["api"], stack["backtest_id"], stack["model_id"]
    tab.login(ADMIN)
    tab.page.wait_for_selector("table.operations")
    with api.client() as client:
        ops = client.list_operations()
        report = client.backtest_report(backtest_id)
        workers = client.list_workers()
        model = client.get_model(model_id)
    shown = {row[0]: row for row in tab.cells("table.operations")}
    assert set(shown) == {op.operation_id for op in ops}
    assert all(shown[op.operation_id][2] == op.state for op in ops)
    assert "?token" not in tab.page.url and ADMIN not in tab.page.url
    tab.shot("operations")

    tab.go("workers", "table.workers")
    rows = {row[0]: row for row in tab.cells("table.workers")}
    assert {w.worker_id: (w.kind, w.status) for w in workers} == {
        k: (r[1], r[3]) for k, r in rows.items()
    }
    tab.shot("workers")

    tab.go("datasets", "[data-charts-ready]")
    [eurusd] = tab.cells("table.datasets")
    assert eurusd[:4] == ["EURUSD", "1h", "1", "5000"]
    # 5,000 bars in candles of 3 (at most 2,000 candles), drawn by the chart library.
    with api.client() as client:
        prices = client.request("GET", "/data/EURUSD/1h/prices").json()
    assert prices["bars"] == 5000 and prices["bars_per_candle"] == 3
    assert tab.page.evaluate("ktrdrCharts['EURUSD/1h'].candles.data().length") == 1667
    tab.shot("datasets")

    tab.go(f"models/{model_id}", "[data-charts-ready]")
    metrics = model.metadata["test_metrics"]
    table = {row[0]: row for row in tab.cells("table[data-metrics=model]")}
    assert table["balanced accuracy"][1:] == [
        _fmt(metrics["balanced_accuracy"]),
        _fmt(metrics["baseline"]["balanced_accuracy"]),
    ]
    matrix = [row[1:] for row in tab.cells("table.confusion")]
    assert matrix == [[str(n) for n in row] for row in metrics["confusion_matrix"]]
    epochs = tab.page.evaluate("ktrdrCharts.training.train.data().length")
    assert epochs == len(model.metadata["history"])
    tab.shot("model")

    tab.go(f"backtests/{backtest_id}", "[data-charts-ready]")
    table = {row[0]: row for row in tab.cells("table[data-metrics=EURUSD]")}
    assert {k: v[1] for k, v in table.items()} == {k: _fmt(v) for k, v in report["metrics"].items()}
    assert {k: v[2] for k, v in table.items()} == {
        k: _fmt(report["buy_and_hold"].get(k)) for k in report["metrics"]
    }
    [counts] = tab.cells("table[data-signals=EURUSD]")
    assert counts == [str(v) for v in report["signal_counts"].values()]
    # The chart library's own series: one entry and one exit marker per trade, every candle.
    entries = tab.page.evaluate(
        "ktrdrCharts['EURUSD:price'].markers.markers().filter(m => m.id === 'entry').length"
    )
    exits = tab.page.evaluate(
        "ktrdrCharts['EURUSD:price'].markers.markers().filter(m => m.id === 'exit').length"
    )
    assert entries == exits == len(report["trades"]) > 0
    assert tab.page.evaluate("ktrdrCharts['EURUSD:price'].candles.data().length") == report["bars"]
    tab.shot("backtest")
    # Zooming the price pane zooms the others: their visible ranges follow.
    tab.page.evaluate(
        """() => { const t = ktrdrCharts['EURUSD:price'].candles.data();
        ktrdrCharts['EURUSD:price'].chart.timeScale().setVisibleRange(
            {from: t[10].time, to: t[60].time}); }"""
    )
    follows = tab.page.evaluate(
        "ktrdrCharts['EURUSD:drawdown'].chart.timeScale().getVisibleRange()"
    )
    first = tab.page.evaluate("ktrdrCharts['EURUSD:price'].candles.data()[10].time")
    assert abs(follows["from"] - first) <= 3600 * 2

    # Two runs side by side, as `ktrdr runs diff`: the same rows and numbers as the API's.
    training_id = stack["training_id"]
    tab.go(f"runs?diff={training_id},{backtest_id}", "table.diff-metrics")
    with api.client() as client:
        diff = client.request("GET", "/runs/diff", params={"a": training_id, "b": backtest_id})
    metrics = diff.json()["metrics"]
    assert tab.cells("table.diff-metrics") == [
        [key, _fmt(a), _fmt(b), _fmt(delta)] for key, a, b, delta in metrics
    ]
    assert len(tab.page.query_selector_all("input.pick:checked")) == 2
    tab.shot("runs")

    tab.go("backtests", "table.backtests")
    tab.go("models", "table.models")
    tab.go("walkforwards", "table.operations")
    tab.go("strategies", "#validate")
    tab.go(f"operations/{stack['training_id']}", "table.facts")
    assert tab.page.text_content("#cancel") == "Cancel" and tab.page.is_disabled("#cancel")
    assert tab.errors == []


def test_the_walkforward_page_shows_its_folds_children_and_stitched_equity(tab, stack):
    api, walkforward_id = stack["api"], stack["walkforward_id"]
    with api.client() as client:
        report = client.walkforward_report(walkforward_id)
        children = client.get_walkforward(walkforward_id).children
    tab.login(ADMIN)
    tab.page.wait_for_selector("table.operations")
    tab.go(f"walkforwards/{walkforward_id}", "[data-charts-ready]")
    folds = tab.cells("table.folds")
    assert [row[4] for row in folds] == [_fmt(f["total_return"]) for f in report["folds"]]
    table = {row[0]: row[1] for row in tab.cells("table[data-metrics=walkforward]")}
    assert table == {k: _fmt(v) for k, v in report["metrics"].items()}
    boundaries = tab.page.evaluate("ktrdrCharts['walkforward:equity'].folds.markers().length")
    assert boundaries == len(report["folds"])
    tab.shot("walkforward")
    tab.go(f"operations/{walkforward_id}", "table.operations")
    shown = {row[0] for row in tab.cells("table.operations")}
    assert shown == {child.operation_id for child in children}
    assert tab.errors == []


def test_the_html_report_opens_offline_from_a_file(tab, stack, tmp_path):
    with stack["api"].client() as client:
        report = client.backtest_report(stack["backtest_id"])
        client.download_backtest_html(stack["backtest_id"], tmp_path / "report.html")
    blocked = []
    tab.page.route("http://**", lambda route: (blocked.append(route.request.url), route.abort()))
    tab.page.goto((tmp_path / "report.html").as_uri())
    tab.page.wait_for_selector("[data-charts-ready]")
    entries = tab.page.evaluate(
        "ktrdrCharts['EURUSD:price'].markers.markers().filter(m => m.id === 'entry').length"
    )
    assert entries == len(report["trades"]) and blocked == []  # nothing fetched
    tab.shot("report-file")
    assert tab.errors == []


def test_a_portfolio_report_shows_the_whole_then_each_symbol(chromium, tmp_path):
    """The portfolio's section above each symbol's, drawn from a series document the worker's
    own code writes (``ktrdr_worker.models.series``), in a report file."""
    import numpy as np
    import pandas as pd

    from ktrdr_api.dashboard import report_html
    from ktrdr_worker.models.series import backtest_series, portfolio_series, symbol_series

    index = pd.date_range("2024-01-01", periods=300, freq="1D", tz="UTC")
    pages, equities = {}, []
    for seed, symbol in enumerate(("GOOG", "SPY")):
        close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, 300)))
        frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close}, index)
        equity = pd.Series(5_000 * close / close[0], index)
        equities.append(equity)
        trade = {"side": "long", "entry_price": 1.0, "exit_price": 1.0, "net_pnl": 0.0}
        report = {
            "symbol": symbol, "metrics": {"total_return": 0.1 * seed},
            "buy_and_hold": {"total_return": 0.0}, "zero_trade_reason": None,
            "signal_counts": {"BUY": 1, "HOLD": 298, "SELL": 1},
            "trades": [{**trade, "entry_time": index[10 + seed].isoformat(),
                        "exit_time": index[20].isoformat(), "exit_reason": "signal"}],
        }  # fmt: skip
        pages[symbol] = symbol_series(report, frame, equity, equity)
    document = {
        "strategy_name": "pair", "timeframe": "1d", "start": index[0].isoformat(),
        "end": index[-1].isoformat(), "bars": 300, "period": "test",
        "portfolio": {"metrics": {"total_return": 0.05}, "buy_and_hold": {"total_return": 0.0},
                      "weights": {"GOOG": 0.5, "SPY": 0.5},
                      "contributions": {"GOOG": 0.0, "SPY": 0.05}},
    }  # fmt: skip
    whole = sum(equities)
    series = backtest_series(document, pages, portfolio_series(document, whole, whole))
    page_text, _ = report_html("backtest", "pair", series)
    (tmp_path / "pair.html").write_text(page_text)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((tmp_path / "pair.html").as_uri())
    page.wait_for_selector("[data-charts-ready]")
    sections = page.eval_on_selector_all(
        "section", "s => s.map(x => x.dataset.symbol || x.className)"
    )
    assert sections == ["portfolio", "GOOG", "SPY"]
    cells = page.eval_on_selector_all(
        "table[data-metrics=portfolio] td", "cells => cells.map(c => c.textContent)"
    )
    assert cells == ["total_return", "0.0500", "0"]  # strategy, then buy & hold
    for symbol in ("GOOG", "SPY"):
        marks = page.evaluate(f"ktrdrCharts['{symbol}:price'].markers.markers().length")
        assert marks == 2  # its one trade's entry and exit
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "portfolio-report.png"), full_page=True)
    context.close()
    assert errors == []


def test_a_reader_sees_cancel_as_unavailable(tab, stack):
    tab.login(stack["reader"])
    tab.page.wait_for_selector("table.operations")
    tab.go(f"operations/{stack['backtest_id']}", "table.facts")
    assert tab.page.is_disabled("#retry") and tab.page.is_disabled("#cancel")
    assert "has role reader: cancel and retry need researcher" in tab.page.text_content(".actions")
    assert tab.errors == []


def test_cancelling_a_running_training_from_its_page(tab, stack):
    api, hold = stack["api"], stack["hold"]
    hold.touch()
    try:
        with api.client() as client:
            started = client.start_training(
                TINY_STRATEGY, {"training.epochs": 20, "training.early_stopping": None}
            ).operation_id
            wait_until(
                held_with_checkpoint(client, started), "the training held", 180, stack["logs"]
            )
            tab.login(ADMIN)
            tab.page.wait_for_selector("table.operations")
            tab.go(f"operations/{started}", "p.step")
            assert re.fullmatch(r"epoch 1 of 20", tab.page.text_content("p.step"))
            assert "train_loss" in tab.page.text_content("table.progress-metrics")
            tab.shot("training-held")
            tab.page.click("#cancel")
            ended = wait_for_state(api, started, DONE, "the cancelled training", 60, stack["logs"])
            assert ended.state == OperationState.CANCELLED
            tab.page.wait_for_function(
                "() => [...document.querySelectorAll('table.facts td')]"
                ".some(td => td.textContent === 'cancelled')"
            )
            assert tab.page.is_disabled("#cancel") and not tab.page.is_disabled("#retry")
            tab.shot("training-cancelled")
    finally:
        hold.unlink(missing_ok=True)
    assert tab.errors == []


def test_markup_in_a_strategy_is_shown_as_text(tab):
    yaml = TINY_STRATEGY.replace("name: tiny_eurusd", f"name: '{HOSTILE_NAME}'").replace(
        "description: Hourly", f"description: '{HOSTILE_TEXT}' # Hourly"
    )
    tab.login(ADMIN)
    tab.page.wait_for_selector("table.operations")
    tab.go("strategies", "#validate")
    tab.page.fill("#strategy", yaml)
    tab.page.click("#validate")
    tab.page.wait_for_selector("#validation pre")
    # The name is refused at its line, quoted as text; the description is shown as written.
    bad = tab.page.text_content("[data-line='1']")
    assert "name: expected a name of letters" in bad and HOSTILE_NAME in bad
    assert HOSTILE_TEXT in tab.page.text_content("[data-line='2']")
    assert tab.page.evaluate("window.pwned") is None
    assert tab.page.query_selector("#validation img") is None
    assert tab.page.query_selector_all("#validation script") == []
    tab.shot("hostile-strategy")
