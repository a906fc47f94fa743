"""`ktrdr data import --exchange` and `ktrdr data show`, as processes, against a real backend
and a real torch-free backtest worker: a session removed from real NYSE data is found by the
exact report, where the heuristic report calls it a holiday.

The intermediate state (the exact report pending) is held by the test: no worker runs until
the pending report has been seen.
"""

from __future__ import annotations

import json

import pytest

from ktrdr_core.protocol import OperationState
from tests.support.cli import run_ktrdr
from tests.support.market_data import goog_daily_csv
from tests.support.stack import WorkerProcess, start_api, wait_for_state

REMOVED = "2012-05-16"  # a Wednesday on which NYSE traded


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    api = start_api(tmp_path_factory.mktemp("home"))
    yield api
    api.stop()


def ktrdr(stack, tmp_path, *args):
    return run_ktrdr("--url", stack.url, *args, home=tmp_path, cwd=tmp_path)


def test_exact_report_lists_the_removed_session_the_heuristic_calls_a_holiday(stack, tmp_path):
    data = goog_daily_csv(tmp_path / "goog.csv", without=(REMOVED,))
    imported = ktrdr(
        stack, tmp_path, "data", "import", "GOOG", "1d", str(data), "--exchange", "nyse"
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported as version 1" in imported.stdout
    assert "exchange  XNYS" in imported.stdout  # the alias is stored as its code
    view = json.loads(ktrdr(stack, tmp_path, "--json", "data", "show", "GOOG", "1d").stdout)
    operation_id = view["exact_report"]["operation_id"]
    assert view["exchange"] == "XNYS" and view["exact_gap_report"] is None

    # No worker yet: the exact report is pending, and the heuristic one is shown as such.
    pending = ktrdr(stack, tmp_path, "data", "show", "GOOG", "1d")
    assert pending.returncode == 0, pending.stderr
    assert f"heuristic report, shown while the exact report is pending ({operation_id})" in (
        pending.stdout
    )
    assert "calendar guessed from the bars (weekdays: daily bars" in pending.stdout
    assert "hole" not in pending.stdout  # the heuristic sees no hole at all
    holidays = [gap["start"][:10] for gap in view["gap_report"]["holidays"]]
    assert REMOVED in holidays and view["gap_report"]["unexpected"] == []

    worker = WorkerProcess(
        "backtest", stack, tmp_path / "worker", worker_id="cpu-cal", torch_free=True
    )
    try:
        done = wait_for_state(
            stack,
            operation_id,
            {OperationState.COMPLETED, OperationState.FAILED},
            "made",
            logs=worker.logs,
        )
        assert done.state == OperationState.COMPLETED, done.error
    finally:
        worker.stop()

    shown = ktrdr(stack, tmp_path, "data", "show", "GOOG", "1d")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "  exchange  XNYS" in lines
    assert "exact report: the official sessions of XNYS (America/New_York" in shown.stdout
    assert "2148 sessions (17 early closes), 2148 bars expected, 2147 present, 1 missing" in (
        shown.stdout
    )
    holes = [line.strip() for line in lines if line.strip().startswith("hole ")]
    assert holes == [f"hole {REMOVED}T00:00:00Z → 2012-05-17T00:00:00Z: 1 bars (session {REMOVED})"]
    assert "heuristic" not in shown.stdout
    exact = json.loads(ktrdr(stack, tmp_path, "--json", "data", "show", "GOOG", "1d").stdout)
    report = exact["exact_gap_report"]
    assert [gap["first_session"] for gap in report["unexpected"]] == [REMOVED]
    assert report["unexpected_total"] == 1 and report["closed_day_bars_total"] == 0
    # NYSE's closures in the span are holidays, Hurricane Sandy's two days included.
    assert {"2012-10-29", "2012-10-30", "2007-01-02"} <= set(report["holidays"])
    assert REMOVED not in report["holidays"]


def test_an_unknown_exchange_is_refused_naming_the_close_matches(stack, tmp_path):
    data = goog_daily_csv(tmp_path / "goog.csv")
    refused = ktrdr(
        stack, tmp_path, "data", "import", "GOOG", "1d", str(data), "--exchange", "XNYZ"
    )
    assert refused.returncode == 2
    assert "--exchange: unknown exchange 'XNYZ': did you mean" in refused.stderr
    assert "XNYS" in refused.stderr and "`ktrdr data exchanges` lists all" in refused.stderr
    listed = ktrdr(stack, tmp_path, "data", "exchanges")
    assert listed.returncode == 0 and "XNYS" in listed.stdout and "NASDAQ=XNYS" in listed.stdout


def test_a_symbol_setting_names_the_exchange_of_later_imports(stack, tmp_path):
    data = goog_daily_csv(tmp_path / "goog.csv", without=("2010-03-03",))
    unset = ktrdr(stack, tmp_path, "data", "exchange", "MSFT")
    assert unset.returncode == 1 and "MSFT has no settings" in unset.stderr
    named = ktrdr(stack, tmp_path, "data", "exchange", "MSFT", "XNYS")
    assert named.returncode == 0, named.stderr
    assert "MSFT: exchange XNYS" in named.stdout
    imported = ktrdr(stack, tmp_path, "--json", "data", "import", "MSFT", "1d", str(data))
    view = json.loads(imported.stdout)
    assert view["exchange"] == "XNYS" and view["exact_report"]["state"] == "pending"
    cleared = ktrdr(stack, tmp_path, "data", "exchange", "MSFT", "--clear")
    assert "MSFT: exchange none named" in cleared.stdout
    shown = ktrdr(stack, tmp_path, "data", "show", "MSFT", "1d")
    assert "heuristic report, no exchange named" in shown.stdout
