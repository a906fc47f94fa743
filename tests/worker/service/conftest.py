"""Fixtures for the worker-service tests: a real `ktrdr-api serve` on a free port with a
temporary KTRDR_HOME, EURUSD hourly data imported through it, and workers — in this process
(a thread running the real loop) or as real `ktrdr-worker` processes."""

from __future__ import annotations

import threading

import pytest

from ktrdr_core.protocol import DatasetView, OperationKind
from tests.support.market_data import eurusd_csv
from tests.support.stack import ApiServer, WorkerProcess

# Heartbeats every 3 s: a busy machine that stalls a worker for a few seconds never costs it
# its lease. The test that wants a lease lost quickly asks for a short one.
LEASE_SECONDS = 9.0


@pytest.fixture
def api(request, tmp_path) -> ApiServer:
    """The backend; ``@pytest.mark.parametrize("api", [{"lease_seconds": 20}], indirect=True)``
    changes its settings."""
    options = {"lease_seconds": LEASE_SECONDS} | getattr(request, "param", {})
    server = ApiServer(tmp_path / "home", **options).start()
    yield server
    server.stop()


@pytest.fixture
def eurusd(api, tmp_path) -> DatasetView:
    with api.client() as client:
        return client.import_data("EURUSD", "1h", eurusd_csv(tmp_path / "eurusd.csv"))


@pytest.fixture(scope="session")
def runtime():
    from ktrdr_worker.models.dependencies import validate_ml_dependencies

    return validate_ml_dependencies()


class ThreadWorker:
    """The real worker loop in a thread of the test process (signals aside, what
    `ktrdr-worker` runs); ``error`` holds what ended the loop, if it raised."""

    def __init__(self, worker):
        self.worker = worker
        self.error: BaseException | None = None
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.exit_code = self.worker.run()
        except BaseException as exc:
            self.error = exc

    @property
    def worker_id(self) -> str:
        return self.worker.config.worker_id

    def stop(self, limit_s: float = 60.0) -> None:
        self.worker.request_stop("test over")
        self.thread.join(limit_s)
        assert not self.thread.is_alive(), "the worker loop did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def thread_worker(api, tmp_path, runtime):
    """Start an in-process worker: ``thread_worker(kind="training", **config changes)``."""
    from ktrdr_worker.service import Worker, WorkerConfig

    started: list[ThreadWorker] = []

    def start(kind: str = "training", **changes) -> ThreadWorker:
        settings = {
            "kind": OperationKind(kind),
            "api_url": api.url,
            "worker_id": f"thread-{kind}-{len(started)}",
            "cache_dir": tmp_path / f"cache-{len(started)}",
            "poll_seconds": 1.0,
            "threads": 1,
        } | changes
        runner = ThreadWorker(Worker(WorkerConfig(**settings), runtime))
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


@pytest.fixture
def process_worker(api, tmp_path):
    """Start a real `ktrdr-worker KIND` process: ``process_worker(kind, worker_id, env=...)``
    (``env``: more variables for the process, e.g. ``KTRDR_WORKER_HOLD_FILE``)."""
    started: list[WorkerProcess] = []

    def start(
        kind: str = "training", worker_id: str | None = None, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        worker = WorkerProcess(
            kind,
            api,
            tmp_path / "workers",
            worker_id=worker_id or f"proc-{kind}-{len(started)}",
            env=env,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
