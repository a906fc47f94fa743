"""Real ktrdr processes for the tests: `ktrdr-api serve` (``ApiServer``, or ``start_api``) and
`ktrdr-worker training|backtest` (``WorkerProcess``), from their console scripts, on loopback.

The one way the tests start a backend or a worker process (the `ktrdr local` tests aside: there
the CLI starting its own stack is what is under test). Each process has its own log file and
KTRDR_HOME; the helpers wait for them by polling what a user would look at (the API's /health,
the worker's /health, the worker list, an operation's state) and put the logs into every
failure message.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ktrdr_core.client import KtrdrClient, tls_verification
from ktrdr_core.protocol import OperationState, OperationView
from tests.support.blocked import blocking_path
from tests.support.ports import free_port
from tests.support.processes import BIN, log_tail, process_env
from tests.support.tls import Pki
from tests.support.waiting import wait_until

# The tiny strategy the service tests train: one hourly symbol, two indicators, a small MLP.
# Epochs, batch size and checkpoint interval are set per test through the API's overrides.
TINY_STRATEGY = """\
name: tiny_eurusd
description: Hourly RSI zones and rate of change on EURUSD; small enough for tests.
data:
  symbols: [EURUSD]
  timeframe: 1h
  split: {train: 0.6, validation: 0.2, test: 0.2}
  embargo_bars: 5
indicators:
  rsi_14: {type: rsi, params: {period: 14}}
  roc_10: {type: roc, params: {period: 10}}
fuzzy_sets:
  rsi_zone:
    indicator: rsi_14
    oversold: {type: trapezoidal, params: [null, 0, 30, 45]}
    overbought: {type: trapezoidal, params: [55, 70, 100, null]}
inputs:
  - fuzzy_set: rsi_zone
  - raw: roc_10
model: {type: mlp, hidden_layers: [8], dropout: 0.0}
training:
  epochs: 3
  batch_size: 256
  learning_rate: 0.005
  seed: 3
  device: cpu
  checkpoint_interval: 1
labels:
  forward_return: {horizon: 5, buy_threshold: 0.001, sell_threshold: -0.001}
decisions: {confidence_threshold: 0.4, min_separation_bars: 0, mode: long_short}
backtest: {capital: 10000.0, commission: 0.0001, slippage: 0.0, position_size: 1.0}
"""

# GOOG and the S&P 500, daily: one model over both real series (tests of portfolios).
TWO_SYMBOL_STRATEGY = (
    TINY_STRATEGY.replace("name: tiny_eurusd", "name: tiny_pair")
    .replace("Hourly RSI zones and rate of change on EURUSD", "The same on GOOG and the S&P 500")
    .replace(
        "symbols: [EURUSD]\n  timeframe: 1h",
        "symbols: [GOOG, SP500]\n  timeframe: 1d\n  start: 2005-01-01",
    )
    .replace("confidence_threshold: 0.4", "confidence_threshold: 0.34")
    .replace(
        "backtest: {capital: 10000.0, commission: 0.0001,",
        "backtest: {capital: 100000.0, weights: {GOOG: 0.25, SP500: 0.75}, commission: 0.0005,",
    )
)
assert TWO_SYMBOL_STRATEGY.count("GOOG, SP500") == 1 and "weights" in TWO_SYMBOL_STRATEGY


class ApiServer:
    """`ktrdr-api serve` on a fixed loopback port, restartable (same port, same or new home)."""

    def __init__(self, home: Path, *, lease_seconds: float | None = 3.0,
                 database_url: str | None = None, token: str = "", port: int | None = None,
                 extra_env: dict[str, str] | None = None, tls: Pki | None = None):  # fmt: skip
        """``tls``: serve HTTPS with its certificate; clients and workers made here trust
        its CA (KTRDR_CA_BUNDLE)."""
        self.home = home
        self.extra_env = extra_env or {}
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.lease_seconds = lease_seconds
        self.database_url = database_url
        self.token = token
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.home / "api.log"

    def start(self, home: Path | None = None) -> ApiServer:
        """Start (again, on another home when given) and wait until /health answers 200."""
        if home is not None:
            self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        env = process_env(
            {
                "KTRDR_HOME": str(self.home),
                "KTRDR_API_HOST": "127.0.0.1",
                "KTRDR_API_PORT": str(self.port),
                "KTRDR_API_TOKEN": self.token,
            }
        )
        if self.lease_seconds is not None:  # None: the backend's default lease
            env["KTRDR_LEASE_SECONDS"] = str(self.lease_seconds)
        if self.database_url:
            env["KTRDR_DATABASE_URL"] = self.database_url
        if self.tls:
            env.update(KTRDR_TLS_CERT=str(self.tls.cert), KTRDR_TLS_KEY=str(self.tls.key))
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [str(BIN / "ktrdr-api"), "serve"],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.starts += 1

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"ktrdr-api exited with {self.process.returncode}\n"
                                     f"{log_tail(self.log)}")  # fmt: skip
            try:
                answer = httpx.get(f"{self.url}/api/v1/health", timeout=1,
                                   verify=tls_verification(self.ca_bundle))  # fmt: skip
                return answer.status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, "ktrdr-api /health", 60, lambda: log_tail(self.log))
        return self

    def kill(self) -> None:
        """Stop at once (SIGKILL): a crash, or a restart that does not wait for long polls."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def ca_bundle(self) -> Path | None:
        return self.tls.ca if self.tls else None

    def client(self, token: str | None = None) -> KtrdrClient:
        """A client with ``token`` (default the backend's own, admin)."""
        return KtrdrClient(self.url, token=self.token if token is None else token,
                           ca_bundle=self.ca_bundle)  # fmt: skip


def start_api(home: Path, *, database_url: str | None = None, token: str = "",
              extra_env: dict[str, str] | None = None) -> ApiServer:  # fmt: skip
    """Start the backend (default lease) and wait until /health answers 200."""
    return ApiServer(
        home, lease_seconds=None, database_url=database_url, token=token, extra_env=extra_env
    ).start()


class WorkerProcess:
    """`ktrdr-worker KIND` talking to ``api``, with its /health on a free port; its log, cache
    and KTRDR_HOME in ``folder``."""

    def __init__(self, kind: str, api: ApiServer, folder: Path, *, worker_id: str,
                 env: dict[str, str] | None = None, torch_free: bool = False):  # fmt: skip
        """``torch_free``: run as if torch, scipy and scikit-learn were not installed (the
        ktrdr-worker-cpu image), see tests/support/blocked.py."""
        self.kind = kind
        self.api = api
        self.worker_id = worker_id
        self.folder = folder
        self.health_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{worker_id}.log"
        self.home = folder / f"{worker_id}-home"
        self.home.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [str(BIN / "ktrdr-worker"), kind],
            env=process_env(
                {
                    "KTRDR_HOME": str(self.home),
                    "KTRDR_API_URL": api.url,
                    "KTRDR_API_TOKEN": api.token,
                    **({"KTRDR_CA_BUNDLE": str(api.ca_bundle)} if api.ca_bundle else {}),
                    "KTRDR_WORKER_ID": worker_id,
                    "KTRDR_WORKER_CACHE": str(folder / "cache"),
                    "KTRDR_WORKER_HEALTH_PORT": str(self.health_port),
                    "KTRDR_WORKER_POLL_SECONDS": "2",
                    "KTRDR_WORKER_THREADS": "1",
                    **(
                        {"PYTHONPATH": str(blocking_path(folder / f"{worker_id}-blocked"))}
                        if torch_free
                        else {}
                    ),
                    **(env or {}),
                }
            ),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        return f"{log_tail(self.log)}\n{log_tail(self.api.log)}"

    def health(self) -> dict[str, Any] | None:
        """The worker's /health answer, or None while it does not answer."""
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker {self.worker_id} exited with {self.process.returncode}\n{self.logs()}"
            )
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/health", timeout=1).json()
        except httpx.HTTPError:
            return None

    def wait_registered(self, limit_s: float = 90.0) -> None:
        """Until the backend lists this worker (it registers once torch is imported)."""

        def listed() -> bool:
            self.health()  # fails fast when the process died
            with self.api.client() as api:
                try:
                    return any(w.worker_id == self.worker_id for w in api.list_workers())
                except Exception:
                    return False

        wait_until(listed, f"worker {self.worker_id} registered", limit_s, self.logs)

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, limit_s: float = 30.0) -> int:
        try:
            return self.process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.worker_id} still running {limit_s:.0f} s after the signal\n"
                f"{self.logs()}"
            ) from None

    def stop(self) -> None:
        """Teardown: SIGKILL (a graceful stop is what some tests assert, not what they need)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a test may have paused it
            self.process.kill()
            self.process.wait()


def wait_for_state(api: ApiServer, operation_id: str, states: set[OperationState],
                   what: str, limit_s: float = 90.0,
                   logs: Callable[[], str] | None = None) -> OperationView:  # fmt: skip
    """Poll the operation until its state is one of ``states``; returns its view."""
    with api.client() as client:

        def reached() -> OperationView | None:
            view = client.get_operation(operation_id)
            return view if view.state in states else None

        return wait_until(reached, f"{operation_id} {what}", limit_s, logs)


def held_with_checkpoint(
    client: KtrdrClient, operation_id: str, *, attempt: int | None = None, epoch: int | None = None
) -> Callable[[], OperationView | None]:
    """A ``wait_until`` condition: the operation's view once its training is held at an epoch
    boundary (the worker's KTRDR_WORKER_HOLD_FILE exists) with that epoch's checkpoint named
    on the backend, so the run stays there until the file is removed; it fails at once if the
    operation ended instead. ``attempt``/``epoch``: only that attempt, held after that epoch
    (a new attempt shows the last one's progress until its first heartbeat)."""
    prefix = "held after epoch" if epoch is None else f"held after epoch {epoch}:"

    def check() -> OperationView | None:
        view = client.get_operation(operation_id)
        assert not view.state.is_terminal, view.error
        held = view.progress.message.startswith(prefix)
        if attempt is not None:
            held = held and view.attempt == attempt
        return view if held and view.checkpoint_sha256 else None

    return check
