"""What a newcomer's session found, as the newcomer met it: `ktrdr` as a process against a real
backend (and, where it matters, a real worker). Mistakes are caught before any work, in one
line that names the option; states say what is really happening."""

from __future__ import annotations

import json
import signal

import pytest

from ktrdr_core.examples import read_example
from ktrdr_core.simulator import simulate_csv
from tests.support.cli import run_ktrdr
from tests.support.ports import LOCAL_STACK_BASE_PORT, free_slot
from tests.support.stack import ApiServer, WorkerProcess
from tests.support.waiting import wait_until

LEASE_S = 3.0  # heartbeats every second: a silent worker is lost after 2 s, offline after 3 s
NO_SUCH_MODEL = "mdl_0123456789ab"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    api = ApiServer(tmp_path_factory.mktemp("home"), lease_seconds=LEASE_S).start()
    yield api
    api.stop()


@pytest.fixture
def ktrdr(backend, tmp_path):
    def run(*args: str):
        return run_ktrdr("--url", backend.url, *args, home=tmp_path / "home", cwd=tmp_path)

    return run


@pytest.fixture(scope="module")
def strategy(tmp_path_factory):
    path = tmp_path_factory.mktemp("strategy") / "rsi.yaml"
    path.write_text(read_example("rsi_zones"))
    return path


@pytest.fixture(scope="module")
def daily(backend, tmp_path_factory):
    """SYNTH 1d imported: the dataset the strategy examples train on here."""
    path = tmp_path_factory.mktemp("data") / "synth-1d.csv"
    path.write_text(simulate_csv(400, "1d", seed=5))
    with backend.client() as client:
        return client.import_data("SYNTH", "1d", path)


def one_line(result) -> str:
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_empty_id_is_one_line_not_a_traceback(ktrdr):
    for args in (("ops", "show", ""), ("walkforwards", "show", "")):
        result = ktrdr(*args)
        assert result.returncode == 2
        assert one_line(result) == "error: the operation id is empty"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "{strategy}", "--timeframe", "2d"),
         "error: --timeframe '2d': expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"),
        (("train", "{strategy}", "--start", "2024-02-01", "--end", "2024-01-01"),
         "error: --start 2024-02-01 must be before --end 2024-01-01"),
        (("backtest", NO_SUCH_MODEL, "--start", "2024-02-01", "--end", "2024-01-01"),
         "error: --start 2024-02-01 must be before --end 2024-01-01"),
        (("backtest", NO_SUCH_MODEL, "--start", "2024-13-01"),
         "error: --start '2024-13-01': expected a date, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"),
        (("backtest", NO_SUCH_MODEL, "--capital", "-5"),
         "error: --capital -5: input should be greater than 0"),
        (("backtest", NO_SUCH_MODEL, "--commission", "0.5"),
         "error: --commission 0.5: input should be less than 0.1"),
        (("data", "import", "SYNTH", "2d", "{strategy}"),
         "error: TIMEFRAME '2d': expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"),
    ],
)  # fmt: skip
def test_a_bad_option_is_one_line_naming_it(ktrdr, strategy, args, message):
    args = tuple(a.format(strategy=strategy) for a in args)
    result = ktrdr(*args)
    assert result.returncode == 2
    assert one_line(result) == message
    # Under --json, the same error as JSON on stderr, with the same exit code.
    as_json = ktrdr(*args, "--json")
    assert as_json.returncode == 2
    assert json.loads(one_line(as_json)) == {"error": message.removeprefix("error: "), "code": 2}


def test_json_is_accepted_after_the_command_and_errors_follow_it(ktrdr, daily):
    listed = ktrdr("data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["symbol"], d["timeframe"]) for d in json.loads(listed.stdout)] == [("SYNTH", "1d")]
    missing = ktrdr("ops", "show", "op_000000000000", "--json")
    assert missing.returncode == 1
    error = json.loads(one_line(missing))
    assert error["code"] == 1 and "no operation 'op_000000000000'" in error["error"]
    usage = ktrdr("--json", "data", "list", "--bogus")
    assert usage.returncode == 2
    assert json.loads(one_line(usage)) == {"error": "No such option: --bogus", "code": 2}


def test_bars_of_another_timeframe_are_refused_and_nothing_is_stored(ktrdr, daily, tmp_path):
    csv = tmp_path / "daily.csv"
    csv.write_text(simulate_csv(30, "1d", seed=1))
    result = ktrdr("data", "import", "DAILY", "1h", str(csv))
    assert result.returncode == 1
    assert "bars are 1 day apart (median), which is 1d, never 1h apart; you said 1h" in (
        result.stderr
    )
    listed = json.loads(ktrdr("--json", "data", "list").stdout)
    assert [d["symbol"] for d in listed] == ["SYNTH"]


def test_training_outside_the_stored_data_is_refused_before_any_work(ktrdr, strategy, daily):
    result = ktrdr("train", str(strategy), "--symbol", "SYNTH",
                   "--start", "2090-01-01", "--end", "2091-01-01")  # fmt: skip
    assert result.returncode == 1
    assert (
        f"SYNTH 1d covers {daily.first.date()} … {daily.last.date()}; data.start/data.end "
        "(2090-01-01 … 2091-01-01) select none of it"
    ) in result.stderr
    assert json.loads(ktrdr("--json", "ops", "list").stdout) == []


def test_states_tell_the_truth_about_workers_and_waiting(ktrdr, backend, strategy, daily, tmp_path):
    worker = WorkerProcess("training", backend, tmp_path / "workers", worker_id="cpu-trainer")
    try:
        worker.wait_registered()
        started = ktrdr("train", str(strategy), "--symbol", "SYNTH", "--device", "cuda")
        assert started.returncode == 0, started.stderr
        assert (
            "warning: waiting: no registered training worker offers cuda; it starts when one is"
            in started.stderr
        )
        op = started.stdout.split()[2]
        shown = ktrdr("ops", "show", op)
        assert "  waiting    no registered training worker offers cuda" in shown.stdout
        listed = ktrdr("ops", "list")
        assert "waiting: no registered training worker offers cuda" in listed.stdout
        # The pending training references the data: deleting it says how to insist.
        refused = ktrdr("data", "delete", "SYNTH", "1d")
        assert refused.returncode == 1 and "--force" in refused.stderr
        assert "force=true" not in refused.stderr

        def status() -> str:
            [row] = json.loads(ktrdr("--json", "workers").stdout)
            return row["status"]

        assert status() == "idle"
        worker.process.send_signal(signal.SIGKILL)  # no goodbye: only silence tells
        worker.process.wait()
        # Silence turns it lost, then offline. "lost" lasts one heartbeat interval, which a
        # loaded machine's CLI start-up may step over, so the order of what was seen is checked,
        # not that each state was caught (tests/api/test_worker_liveness.py holds the clock).
        seen: list[str] = []

        def offline() -> bool:
            current = status()
            if not seen or seen[-1] != current:
                seen.append(current)
            return current == "offline"

        wait_until(offline, "the killed worker to show as offline", 60)
        order = ["idle", "lost", "offline"]
        assert set(seen) <= set(order) and seen == sorted(seen, key=order.index), seen
        assert "no training worker is registered and reachable" in ktrdr("ops", "show", op).stdout
    finally:
        worker.stop()


def test_quickstart_with_bad_arguments_starts_nothing(tmp_path):
    home = tmp_path / "home"
    result = run_ktrdr("quickstart", "--provider", "binance", home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result).startswith("error: --provider and SYMBOL go together")
    assert not (home / "local-stack.json").exists() and not (home / "logs").exists()


def test_local_up_refuses_a_port_another_backend_holds(tmp_path):
    slot = free_slot()
    foreign = ApiServer(tmp_path / "foreign", port=LOCAL_STACK_BASE_PORT + slot).start()
    try:
        home = tmp_path / "home"
        result = run_ktrdr("local", "up", "--slot", str(slot), home=home, cwd=tmp_path)
        assert result.returncode == 1
        line = one_line(result)
        assert line.startswith(
            f"error: port {LOCAL_STACK_BASE_PORT + slot} (slot {slot}) is held by another "
            "process (another ktrdr backend); use another slot: ktrdr local up --slot "
        ), line
        with foreign.client() as client:
            assert client.list_workers() == []  # no worker of ours went to the other backend
        status = json.loads(run_ktrdr("--json", "local", "status", home=home, cwd=tmp_path).stdout)
        assert all(row["api"] != "ours" for row in status)
    finally:
        foreign.stop()
