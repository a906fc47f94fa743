"""The worker service: ``ktrdr-worker training`` and ``ktrdr-worker backtest``.

:func:`serve` is what the command runs: check the machine-learning stack, read the settings
(:mod:`~ktrdr_worker.service.config`), start the ``/health`` endpoint, install the signal
handlers, then :class:`~ktrdr_worker.service.worker.Worker` registers and claims, runs and
reports until SIGTERM or SIGINT.

Exit status: 0 after a requested stop, 1 when what this kind computes with is missing or broken
(or, with KTRDR_WORKER_REQUIRE_GPU, no GPU is visible to a training worker), 2 when the settings
are wrong or the backend refuses the worker for good.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from ktrdr_core.errors import ApiError
from ktrdr_core.protocol import OperationKind
from ktrdr_worker.runtime import TorchUnavailableError
from ktrdr_worker.service.config import WorkerConfig, WorkerConfigError
from ktrdr_worker.service.health import HealthServer
from ktrdr_worker.service.logs import configure_logging
from ktrdr_worker.service.runners import warm_up
from ktrdr_worker.service.worker import Worker, WorkerFatalError

__all__ = ["Worker", "WorkerConfig", "serve"]

log = logging.getLogger("ktrdr_worker.service")


def _install_signal_handlers(worker: Worker) -> None:
    """First SIGTERM/SIGINT: stop cleanly (checkpoint, release). A second one: exit now."""

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if worker.stopping.is_set():
            log.warning("%s again: exiting now without releasing the operation", name)
            raise SystemExit(128 + signum)
        worker.request_stop(f"{name} received")

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def serve(kind: OperationKind | str) -> int:
    """Run a worker of ``kind`` until it is told to stop; returns the exit status."""
    from ktrdr_worker.models.dependencies import validate_ml_dependencies

    configure_logging()
    try:
        config = WorkerConfig.from_env(kind)
    except WorkerConfigError as exc:
        print(f"ktrdr-worker: {exc}", file=sys.stderr)
        return 2
    try:
        runtime = validate_ml_dependencies(config.kind, require_gpu=config.require_gpu)
    except TorchUnavailableError as exc:
        print(f"ktrdr-worker: {exc}", file=sys.stderr)
        return 1
    try:
        worker = Worker(config, runtime)
    except OSError as exc:
        print(
            f"ktrdr-worker: cannot use the cache folder {config.cache_dir}: {exc} "
            "(KTRDR_WORKER_CACHE)",
            file=sys.stderr,
        )
        return 2
    _install_signal_handlers(worker)
    health = None
    if config.health_port is not None:
        try:
            health = HealthServer(worker.snapshot, config.health_host, config.health_port).start()
        except OSError as exc:
            print(
                f"ktrdr-worker: cannot serve /health on {config.health_host}:"
                f"{config.health_port}: {exc} (KTRDR_WORKER_HEALTH_PORT)",
                file=sys.stderr,
            )
            return 2
    try:
        # /health answers "starting" meanwhile; a signal now stops the worker before it
        # registers.
        warm_up(config.kind)
        return worker.run()
    except (WorkerFatalError, ApiError) as exc:
        print(f"ktrdr-worker: {exc}", file=sys.stderr)
        return 2
    finally:
        if health is not None:
            health.stop()
