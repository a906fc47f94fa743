"""Fetching market data end to end: `ktrdr-api serve`, one `ktrdr-worker backtest` whose
KTRDR_BINANCE_URL points at a local server speaking Binance's klines protocol, and the `ktrdr`
CLI as a real process. Full range, tail, backfill and repair — through the CLI and the API —
each checked against the dataset versions the backend then holds."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime

import pytest

from ktrdr_core.protocol import OperationState, WorkerStatus
from tests.support.fake_binance import FakeBinance, fixture
from tests.support.ports import free_slot
from tests.support.processes import BIN, process_env
from tests.support.stack import ApiServer, WorkerProcess, wait_for_state
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # worker processes

DONE = {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
H = 3600
HOLES = {T0 + 50 * H, T0 + 51 * H, T0 + 52 * H}  # bars the exchange drops in the first fetch


@pytest.fixture
def stack(tmp_path):
    with FakeBinance(fixture("binance_klines_btcusdt_1h.json")) as binance:
        # A long lease: a heartbeat starved on a busy machine must not requeue a fetch (the
        # test counts the requests the exchange got); nothing here waits for a lease to end.
        api = ApiServer(tmp_path / "home", lease_seconds=30.0).start()
        # Without torch, scipy or scikit-learn, as in the ktrdr-worker-cpu image.
        worker = WorkerProcess("backtest", api, tmp_path / "workers", worker_id="e2e-fetch",
                               env={"KTRDR_BINANCE_URL": binance.url},
                               torch_free=True)  # fmt: skip
        try:
            with api.client() as client:
                wait_until(
                    lambda: any(w.status == WorkerStatus.IDLE for w in client.list_workers()),
                    "the backtest worker registered", 120, worker.logs,
                )  # fmt: skip
            yield api, worker, binance
        finally:
            worker.stop()
            api.stop()


def ktrdr(api: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "ktrdr"), "--url", api.url, *args],
        env=process_env({"COLUMNS": "120"}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(f"$ ktrdr {' '.join(args)}\n{done.stdout}{done.stderr}")  # the transcript (-s)
    return done


def test_full_tail_backfill_repair_and_conflicts(stack):
    api, worker, binance = stack
    binance.missing = set(HOLES)
    with api.client() as client:
        (registered,) = client.list_workers()
        assert "torch" not in registered.versions  # fetched by a torch-free backtest worker

    # --- full range, through the CLI ---
    run = ktrdr(api, "data", "fetch", "btcusdt", "1h", "--provider", "binance",
                "--start", "2024-01-03", "--end", "2024-01-07", "--follow")  # fmt: skip
    assert run.returncode == 0, run.stderr + worker.logs()
    assert "93 bars fetched" in run.stdout and "93 added" in run.stdout
    assert "BTCUSDT 1h: new version 1, 93 bars" in run.stdout
    assert "1 unexpected gap(s)" in run.stdout
    with api.client() as client:
        v1 = client.get_data("BTCUSDT", "1h")
        assert (v1.version, v1.rows) == (1, 93)
        assert v1.first == datetime(2024, 1, 3, tzinfo=UTC)
        assert v1.source_name == "binance:BTCUSDT 1h full"
        assert v1.gap_report["unexpected_total"] == 1

        # --- tail, through the API: from the last stored bar to now ---
        op = client.start_data_fetch("binance", "BTCUSDT", "1h", mode="tail")
        tail = wait_for_state(api, op.operation_id, DONE, "tail fetch", 90, worker.logs)
        assert tail.state == OperationState.COMPLETED, tail.error
        assert tail.reproducibility.attempts[0].worker_id == "e2e-fetch"
        assert tail.result["summary"]["bars_added"] == 96
        assert tail.result["dataset"]["version"] == 2
        v2 = client.get_data("BTCUSDT", "1h")
        assert v2.rows == 93 + 96 and v2.last == datetime.fromtimestamp(T0 + 239 * H, tz=UTC)

    # --- backfill, through the CLI: before the first stored bar ---
    run = ktrdr(api, "data", "fetch", "BTCUSDT", "1h", "--provider", "binance",
                "--mode", "backfill", "--start", "2024-01-01", "--follow")  # fmt: skip
    assert run.returncode == 0, run.stderr + worker.logs()
    assert "48 added" in run.stdout and "new version 3, 237 bars" in run.stdout

    # --- repair, through the CLI: only the hole the gap report lists ---
    binance.missing.clear()
    requests_before = len(binance.requests)
    run = ktrdr(api, "data", "fetch", "BTCUSDT", "1h", "--provider", "binance",
                "--mode", "repair", "--follow")  # fmt: skip
    assert run.returncode == 0, run.stderr + worker.logs()
    assert "hole      2024-01-03T02:00:00Z → 2024-01-03T05:00:00Z: 3 of 3 bars filled" in run.stdout
    assert "new version 4, 240 bars" in run.stdout and "0 unexpected gap(s)" in run.stdout
    [asked] = binance.requests[requests_before:]
    assert asked["startTime"] == str((T0 + 50 * H) * 1000)
    assert asked["endTime"] == str((T0 + 53 * H) * 1000 - 1000)

    # --- the exchange restates a bar: reported, never written ---
    restated = T0 + 100 * H
    binance.changes[restated] = {4: "99999.99000000", 2: "99999.99000000"}
    with api.client() as client:
        op = client.start_data_fetch(
            "binance", "BTCUSDT", "1h", start=datetime(2024, 1, 1), end=datetime(2024, 1, 11)
        )
        again = wait_for_state(api, op.operation_id, DONE, "re-fetch", 90, worker.logs)
        assert again.state == OperationState.COMPLETED, again.error
        summary = again.result["summary"]
        assert (summary["bars_added"], summary["bars_overlapping"], summary["conflicts"]) == (
            0, 240, 1,
        )  # fmt: skip
        [example] = summary["conflict_examples"]
        assert example["timestamp"] == "2024-01-05T04:00:00Z"
        assert example["fetched"]["close"] == 99999.99
        assert example["stored"]["close"] != 99999.99
        assert again.result["dataset"] == again.result["dataset"] | {"version": 4, "created": False}
        versions = client.list_data("BTCUSDT", "1h", all_versions=True)
        assert [d.version for d in versions] == [4, 3, 2, 1]

    # --- a symbol the exchange does not list: the operation fails saying so ---
    run = ktrdr(api, "data", "fetch", "ETHBTC", "1h", "--provider", "binance",
                "--start", "2024-01-01", "--follow")  # fmt: skip
    assert run.returncode == 1
    assert "Binance refused the request (HTTP 400: Invalid symbol. (code -1121))" in run.stderr

    # --- refused by the backend before any worker sees it ---
    run = ktrdr(
        api, "data", "fetch", "BTCUSDT", "1h", "--provider", "kraken", "--start", "2024-01-01"
    )
    assert run.returncode == 2 and "unknown provider 'kraken'; known: binance, ib" in run.stderr


def test_quickstart_provider_and_symbol_go_together(tmp_path):
    # Its own home and a free slot: a quickstart that started a stack before checking its
    # arguments must not start it on ~/.ktrdr and port 8000 (the end-of-run check would
    # report the stack left running).
    slot = str(free_slot())
    done = subprocess.run([str(BIN / "ktrdr"), "quickstart", "--slot", slot, "BTCUSDT"],
                          env=process_env(home=tmp_path / "home"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "--provider and SYMBOL go together" in done.stderr


def _daily_klines(days: int) -> list[list]:
    """Binance-shaped daily klines up to yesterday, prices from ktrdr's seeded simulator."""
    from datetime import timedelta

    from ktrdr_core.simulator import simulate_bars

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for bar in simulate_bars(days, "1d", seed=5, start=today - timedelta(days=days)):
        open_ms = int(bar.timestamp.timestamp() * 1000)
        rows.append(
            [
                open_ms,
                f"{bar.open:.4f}",
                f"{bar.high:.4f}",
                f"{bar.low:.4f}",
                f"{bar.close:.4f}",
                f"{bar.volume:.2f}",
                open_ms + 86_399_999,
                "0",
                1,
                "0",
                "0",
                "0",
            ]
        )
    return rows


def test_quickstart_fetches_from_a_provider_then_trains_and_backtests(tmp_path):
    with FakeBinance(_daily_klines(4100), interval="1d") as binance:
        api = ApiServer(tmp_path / "home", lease_seconds=30.0).start()  # as in the fixture
        workers = [
            WorkerProcess(
                kind,
                api,
                tmp_path / "workers",
                worker_id=f"qs-{kind}",
                env={"KTRDR_BINANCE_URL": binance.url},
            )
            for kind in ("training", "backtest")
        ]
        try:
            for worker in workers:
                worker.wait_registered()
            done = subprocess.run(
                [
                    str(BIN / "ktrdr"),
                    "--url",
                    api.url,
                    "quickstart",
                    "--provider",
                    "binance",
                    "btcusdt",
                ],
                env=process_env({"COLUMNS": "120"}),
                capture_output=True,
                text=True,
                timeout=600,
            )
            print(done.stdout, done.stderr)
            assert done.returncode == 0, done.stderr + "\n".join(w.logs() for w in workers)
            out = done.stdout
            assert "[2/6] fetching BTCUSDT 1d from binance" in out
            fetched = int(re.search(r"(\d+) bars fetched", out).group(1))
            assert 4000 <= fetched <= 4002  # about SYNTHETIC_BARS days up to yesterday
            assert "synthetic" not in out.split("[2/6]")[1].split("[3/6]")[0]
            assert "[5/6] backtesting model" in out and "quickstart finished" in out
            assert "lookahead: PASS" in out  # real bars: the quickstart checks them too
            assert re.fullmatch(r"http://\S+/#/backtests/op_\w+", out.splitlines()[-1])
            assert len(binance.requests) >= 4  # 1000 bars a page
        finally:
            for worker in workers:
                worker.stop()
            api.stop()
