"""The backtest page's time to draw: a 1,000,000-bar backtest against a 5,000-bar one.

A real backend (``ktrdr-api serve``) holds two completed backtests whose series were written
by the worker's own code (``ktrdr_worker.models.series``: min/max buckets, every trade kept)
from a seeded random walk of each size with 200 trades; this script plays the backtest worker
over HTTP (claim, upload, complete). Debian's headless Chromium, driven by Playwright, then
opens each backtest's page ``--repeat`` times in a fresh tab and reads the page's
``data-charts-ready`` mark: set once every series has its data and a frame has been drawn, its
value is the milliseconds since navigation began (``performance.now()``).

Prints each page's median time, the series response's size and the number of points drawn,
and the ratio; exits 1 when the large page takes more than ``MAX_RATIO`` × the small one.

    .venv/bin/python bench/dashboard.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test helpers: tests/support

MAX_RATIO = 2.0
SIZES = (5_000, 1_000_000)
TRADES = 200


def series_document(bars: int) -> tuple[dict, dict]:
    """(report, series) of a synthetic backtest over ``bars`` minute bars with TRADES trades."""
    import numpy as np
    import pandas as pd

    from ktrdr_worker.models.series import backtest_series, symbol_series

    rng = np.random.default_rng(bars)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, bars)))
    index = pd.date_range("2020-01-01", periods=bars, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.0005, "low": close * 0.9995, "close": close},
        index=index,
    )
    equity = pd.Series(10_000 * close / close[0] * np.exp(rng.normal(0, 0.0005, bars)), index)
    step = bars // TRADES
    trades = [
        {
            "entry_time": index[i * step].isoformat(),
            "exit_time": index[i * step + step // 2].isoformat(),
            "side": "long",
            "entry_price": float(close[i * step]),
            "exit_price": float(close[i * step + step // 2]),
            "net_pnl": 1.0,
            "exit_reason": "signal",
        }
        for i in range(TRADES)
    ]
    report = {
        "symbol": "GOOG",
        "strategy_name": "bench",
        "timeframe": "1m",
        "start": index[0].isoformat(),
        "end": index[-1].isoformat(),
        "bars": bars,
        "period": "custom",
        "metrics": {"total_return": float(equity.iloc[-1] / 10_000 - 1), "num_trades": TRADES},
        "buy_and_hold": {"total_return": float(close[-1] / close[0] - 1), "num_trades": 0},
        "signal_counts": {"BUY": TRADES, "HOLD": bars - 2 * TRADES, "SELL": TRADES},
        "zero_trade_reason": None,
        "trades": trades,
    }
    held = pd.Series(10_000 * close / close[0], index)
    return report, backtest_series(report, {"GOOG": symbol_series(report, frame, equity, held)})


def completed_backtests(client, folder: Path) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Size -> id of a completed backtest whose series this script wrote and uploaded."""
    from ktrdr_core.protocol import (
        ArtifactKind,
        BacktestResult,
        OperationKind,
        WorkerRegistration,
    )
    from tests.support.bundles import bundle_bytes
    from tests.support.market_data import packaged_csv

    client.import_data("GOOG", "1d", packaged_csv("GOOG.csv"))
    bundle = folder / "bundle.zip"
    bundle.write_bytes(bundle_bytes())
    model = client.import_model(bundle)
    client.register_worker(WorkerRegistration(worker_id="bench", kind=OperationKind.BACKTEST))
    done = {}
    for bars in SIZES:
        started = client.start_backtest(model.model_id)
        job = client.claim("bench", timeout_s=10)
        assert job is not None and job.operation_id == started.operation_id
        report, series = series_document(bars)
        paths = {}
        for name, document in (("report", report), ("series", series)):
            paths[name] = folder / f"{name}-{bars}.json"
            paths[name].write_text(json.dumps(document, separators=(",", ":")))
        result = BacktestResult(
            report_sha256=client.upload_artifact(paths["report"], ArtifactKind.REPORT).sha256,
            series_sha256=client.upload_artifact(paths["series"], ArtifactKind.SERIES).sha256,
        )
        client.complete_operation("bench", job.operation_id, job.attempt, result)
        done[bars] = started.operation_id
    return done


def measure(chromium, url: str) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    """(ms from navigation to data-charts-ready, series response bytes, points drawn)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sizes = []
    page.on(
        "response", lambda r: sizes.append(len(r.body())) if r.url.endswith("/series") else None
    )
    page.goto(url)
    ready = page.wait_for_selector("[data-charts-ready]", timeout=120_000)
    ms = float(ready.get_attribute("data-charts-ready"))
    points = page.evaluate(
        "Object.values(ktrdrCharts).flatMap(c => Object.values(c))"
        ".filter(s => s && typeof s.data === 'function').reduce((n, s) => n + s.data().length, 0)"
    )
    context.close()
    return ms, sizes[0], points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from tests.support.browser import browser
    from tests.support.stack import ApiServer

    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-dashboard-") as tmp:
        folder = Path(tmp)
        api = ApiServer(folder / "home", lease_seconds=60.0).start()
        try:
            with api.client() as client:
                ids = completed_backtests(client, folder)
            rows = {}
            with browser() as chromium:
                for bars, operation_id in ids.items():
                    runs = [
                        measure(chromium, f"{api.url}/#/backtests/{operation_id}")
                        for _ in range(args.repeat)
                    ]
                    rows[bars] = (statistics.median(r[0] for r in runs), runs[0][1], runs[0][2])
        finally:
            api.stop()
    print(f"{'bars':>10} {'median ms to charts-ready':>26} {'series bytes':>13} {'points':>8}")
    for bars, (ms, size, points) in rows.items():
        print(f"{bars:>10,} {ms:>26.0f} {size:>13,} {points:>8,}")
    small, large = rows[SIZES[0]][0], rows[SIZES[1]][0]
    ratio = large / small
    print(f"large / small: {ratio:.2f}× (target ≤ {MAX_RATIO:.0f}×)")
    return 0 if ratio <= MAX_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
