"""Exchanges on datasets: an import or fetch that names one queues the version's exact gap
report for a backtest worker, the completed report is stored beside the version, and what
depends on the calendar (the walk-forward embargo) uses it. The worker is played by the test,
with reports it writes itself (the worker's own checks are tests/worker/test_sessions.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ktrdr_core.client import KtrdrClient
from ktrdr_core.errors import ApiError
from ktrdr_core.examples import read_example
from ktrdr_core.market_data.exact import ExactGapReport, SessionGap
from ktrdr_core.protocol import (
    SERVED_BY,
    DataFetchResult,
    GapReportResult,
    OperationKind,
    OperationState,
    WorkerRegistration,
)
from ktrdr_core.walkforward import embargo_days
from tests.support.api import API, upload_artifact
from tests.support.market_data import goog_daily_csv

FETCH = {"provider": "binance", "symbol": "BTCUSDT", "timeframe": "1h", "start": "2024-01-01"}


def _report(exchange: str = "XNYS", expected: int = 2148, present: int = 2147) -> ExactGapReport:
    """What a worker would send for GOOG less 2012-05-16."""
    return ExactGapReport(
        exchange=exchange, timezone="America/New_York", library="exchange_calendars 4.13.2",
        timeframe="1d", first=datetime(2004, 8, 19, tzinfo=UTC),
        last=datetime(2013, 3, 1, tzinfo=UTC), bars_present=present, sessions=expected,
        expected_bars=expected, missing_bars=expected - present, early_closes=17,
        has_breaks=False,
        unexpected=[SessionGap(start=datetime(2012, 5, 16, tzinfo=UTC),
                               end=datetime(2012, 5, 17, tzinfo=UTC), missing_bars=1,
                               first_session=date(2012, 5, 16),
                               last_session=date(2012, 5, 16), sessions=1)],
        unexpected_total=1, holidays=[], holidays_total=80, closed_day_bars=[],
        closed_day_bars_total=0, outside_hours_bars=0, max_listed=200,
    )  # fmt: skip


@pytest.fixture
def kc(client, tmp_path):
    with KtrdrClient("http://testserver", token="", transport=client._transport) as typed:
        typed.register_worker(WorkerRegistration(worker_id="cpu", kind=OperationKind.BACKTEST))
        yield typed


@pytest.fixture
def goog(tmp_path):
    return goog_daily_csv(tmp_path / "goog.csv", without=("2012-05-16",))


def _check(kc, report: ExactGapReport | None = None) -> str:
    """Claim the next operation as the backtest worker and complete it as a gap report."""
    offer = kc.claim("cpu", timeout_s=0)
    assert offer is not None and offer.kind == OperationKind.GAP_REPORT
    kc.complete_operation(
        "cpu", offer.operation_id, offer.attempt, GapReportResult(report=report or _report())
    )
    return offer.operation_id


def test_an_unknown_exchange_is_refused_naming_the_close_matches(client, goog):
    response = client.post(
        f"{API}/data/GOOG/1d",
        params={"exchange": "XNYZ"},
        content=goog.read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert message.startswith("unknown exchange 'XNYZ': did you mean") and "XNYS" in message
    assert client.get(f"{API}/data").json() == []  # nothing stored
    fetch = client.post(f"{API}/data/fetch", json=FETCH | {"exchange": "BINANCE"})
    assert fetch.status_code == 422 and "unknown exchange 'BINANCE'" in fetch.text


def test_an_import_with_an_exchange_is_checked_by_a_backtest_worker(kc, goog):
    assert SERVED_BY[OperationKind.GAP_REPORT] == OperationKind.BACKTEST
    view = kc.import_data("GOOG", "1d", goog, exchange="nasdaq")
    assert view.exchange == "XNYS"  # an alias, stored as the calendar it shares
    assert view.exact_gap_report is None and view.exact_report.state == OperationState.PENDING
    assert view.gap_report["method"] == "heuristic"
    assert kc.get_symbol("GOOG").exchange == "XNYS"

    operation_id = _check(kc)
    assert operation_id == view.exact_report.operation_id
    shown = kc.get_data("GOOG", "1d")
    assert shown.exact_report.state == OperationState.COMPLETED
    assert [g.first_session for g in shown.exact_gap_report.unexpected] == [date(2012, 5, 16)]
    assert shown.gap_report["unexpected_total"] == 0  # the heuristic's, kept for comparison

    # The same file again, without an exchange: the symbol's setting, unchanged, nothing new.
    again = kc.import_data("GOOG", "1d", goog)
    assert again.unchanged and again.exact_report.operation_id == operation_id
    assert kc.claim("cpu", timeout_s=0) is None


def test_the_symbols_setting_rechecks_its_newest_versions_and_clearing_drops_them(kc, goog):
    plain = kc.import_data("GOOG", "1d", goog)
    assert plain.exchange is None and plain.exact_report is None
    assert kc.claim("cpu", timeout_s=0) is None  # nothing to check without an exchange
    named = kc.set_exchange("GOOG", "XNYS")
    assert named.exchange == "XNYS" and len(named.queued) == 1
    assert kc.set_exchange("GOOG", "XNYS").queued == []  # a live check is not repeated
    _check(kc)
    assert kc.get_data("GOOG", "1d").exact_gap_report is not None
    cleared = kc.set_exchange("GOOG", None)
    assert cleared.exchange is None and cleared.queued == []
    shown = kc.get_data("GOOG", "1d")
    assert shown.exchange is None and shown.exact_gap_report is None


def test_a_fetch_names_the_exchange_asked_for_or_the_providers(kc, client):
    def fetch_and_complete(csv: bytes, **body) -> dict:
        started = client.post(f"{API}/data/fetch", json=FETCH | body)
        assert started.status_code == 201, started.text
        offer = kc.claim("cpu", timeout_s=0)
        assert offer.kind == OperationKind.DATA_FETCH
        sha = upload_artifact(client, csv, "data")
        done = kc.complete_operation(
            "cpu",
            offer.operation_id,
            offer.attempt,
            DataFetchResult(data_sha256=sha, exchange="24/7"),
        )
        return done.result.dataset

    hours = "\n".join(f"2024-01-01T{h:02d}:00:00Z,1,2,0.5,1.5,3" for h in range(6))
    csv = f"timestamp,open,high,low,close,volume\n{hours}\n".encode()
    # Nothing asked for, no setting: the provider's word (Binance trades around the clock).
    first = fetch_and_complete(csv)
    assert first["exchange"] == "24/7" and first["exact_report_operation_id"]
    assert kc.get_symbol("BTCUSDT").exchange == "24/7"
    assert _check(kc, _report("24/7", 6, 6)) == first["exact_report_operation_id"]
    # Asked for: that one wins, and the provider's disagreement is noted on the version.
    csv2 = csv.replace(b"1.5,3", b"1.5,4")
    second = fetch_and_complete(csv2, exchange="XLON", mode="full")
    assert second["exchange"] == "XLON" and kc.get_symbol("BTCUSDT").exchange == "XLON"
    shown = kc.get_data("BTCUSDT", "1h")
    assert shown.version == 2 and shown.exact_report.state == OperationState.PENDING
    assert (
        "binance says BTCUSDT trades on 24/7; its sessions are checked against XLON"
        in (shown.warnings[-1])
    )


def test_deleting_a_version_cancels_its_pending_check_and_is_not_blocked_by_it(kc, goog):
    view = kc.import_data("GOOG", "1d", goog, exchange="XNYS")
    deleted = kc.delete_data("GOOG", "1d")
    assert [d.version for d in deleted] == [1]
    op = kc.get_operation(view.exact_report.operation_id)
    assert op.state == OperationState.CANCELLED


def test_the_walkforward_embargo_waits_for_and_uses_the_exchanges_sessions(kc, goog):
    strategy = read_example("rsi_zones")
    on_goog = {"data.symbols": ["GOOG"], "training.epochs": 2}
    kc.import_data("GOOG", "1d", goog, exchange="XNYS")
    with pytest.raises(ApiError) as refused:
        kc.start_walkforward(strategy, on_goog, folds=3, train_blocks=2, embargo_bars=60)
    assert refused.value.status == 409
    assert "GOOG 1d v1 trades on XNYS, whose exact gap report is not made yet" in str(refused.value)
    # A report counting, say, 2,500 bars over the span spaces the 60 bars more tightly than
    # the data's own 2,147 rows would.
    _check(kc, _report(expected=2500, present=2147))
    started = kc.start_walkforward(strategy, on_goog, folds=3, train_blocks=2, embargo_bars=60)
    fold = started.inputs.folds[1]
    first, last = date(2004, 8, 19), date(2013, 3, 1)
    exchange = embargo_days(60, first, last, 2147, exchange_bars=2500)
    assert exchange < embargo_days(60, first, last, 2147)
    assert (fold.test_start - fold.train_end).days == exchange + 1
