"""Real ktrdr processes for the worker-service and end-to-end tests.

`ktrdr-api serve` and `ktrdr-worker training|backtest` run from their console scripts on
loopback, each with its own log file; the helpers wait for them by polling what a user would
look at (the API's /health, the worker's /health, the worker list, an operation's state) and
put the logs into every failure message.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from services import BIN, ApiServer, free_port, log_tail, process_env, wait_until

from ktrdr_core.protocol import OperationState, OperationView

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


class WorkerProcess:
    """`ktrdr-worker KIND` talking to ``api``, with its /health on a free port."""

    def __init__(self, kind: str, api: ApiServer, folder: Path, *, worker_id: str,
                 env: dict[str, str] | None = None):  # fmt: skip
        self.kind = kind
        self.api = api
        self.worker_id = worker_id
        self.folder = folder
        self.health_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{worker_id}.log"
        self.process = subprocess.Popen(
            [str(BIN / "ktrdr-worker"), kind],
            env=process_env(
                {
                    "KTRDR_API_URL": api.url,
                    "KTRDR_API_TOKEN": api.token,
                    "KTRDR_WORKER_ID": worker_id,
                    "KTRDR_WORKER_CACHE": str(folder / "cache"),
                    "KTRDR_WORKER_HEALTH_PORT": str(self.health_port),
                    "KTRDR_WORKER_POLL_SECONDS": "2",
                    "KTRDR_WORKER_THREADS": "1",
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


def eurusd_csv(dest: Path) -> Path:
    """The EURUSD hourly bars shipped in the `backtesting` wheel, rewritten as a canonical
    ktrdr CSV (``timestamp,open,high,low,close,volume``, ISO-8601 UTC), without pandas."""
    spec = importlib.util.find_spec("backtesting")
    assert spec is not None and spec.submodule_search_locations
    source = Path(next(iter(spec.submodule_search_locations))) / "test" / "EURUSD.csv"
    with source.open(newline="") as raw, dest.open("w", newline="") as out:
        rows = csv.reader(raw)
        header = next(rows)
        assert header[1:] == ["Open", "High", "Low", "Close", "Volume"], header
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for stamp, *values in rows:
            writer.writerow([stamp.replace(" ", "T") + "Z", *values])
    return dest


class ThrottledProxy:
    """A TCP relay in front of the API that can slow either direction, set live: a slow link
    between a worker and the backend, so a phase (data download, result upload) lasts long
    enough for a test to act while it runs. ``down_rate``/``up_rate``: bytes per second per
    connection toward the worker / toward the API, None for full speed; ``moved`` counts the
    bytes relayed each way."""

    def __init__(self, target_port: int):
        import threading

        self.target_port = target_port
        self.down_rate: float | None = None
        self.up_rate: float | None = None
        self.moved = {"down": 0, "up": 0}
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # the API is down: the worker sees a refused connection
                continue
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        try:
            while True:
                rate = self.down_rate if direction == "down" else self.up_rate
                # Small reads when throttled, so the pace is smooth and TCP pushes back.
                data = source.recv(max(256, int(rate // 10)) if rate else 65536)
                if not data:
                    break
                sink.sendall(data)
                with self._lock:
                    self.moved[direction] += len(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
