"""What this worker tells the backend about itself: device, GPU, CPUs and package versions."""

from __future__ import annotations

import os
import socket

from ktrdr_core.protocol import (
    PROTOCOL_VERSION,
    Device,
    OperationKind,
    WorkerCapabilities,
    WorkerRegistration,
)
from ktrdr_core.version import computing_versions
from ktrdr_worker.runtime import TorchRuntime

__all__ = ["capabilities", "registration", "versions"]


def versions(runtime: TorchRuntime) -> dict[str, str]:
    """Distribution -> version for what decides a result (python and the CUDA build too)."""
    found = computing_versions()
    if runtime.version is None:
        # Nothing here computes with torch (numpy inference), even if a wheel lies around.
        found.pop("torch", None)
    if runtime.cuda_build:
        found["cuda"] = runtime.cuda_build
    return found


def capabilities(runtime: TorchRuntime) -> WorkerCapabilities:
    """The best device torch offers here; for CUDA also the GPU's name and memory (MiB)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if runtime.cuda_available:
        return WorkerCapabilities(
            device=Device.CUDA,
            gpu_name=runtime.device_name,
            gpu_memory_mb=runtime.gpu_memory_mb,
            cpu_count=cpus,
        )
    if runtime.mps_available:
        return WorkerCapabilities(device=Device.MPS, gpu_name=runtime.device_name, cpu_count=cpus)
    return WorkerCapabilities(device=Device.CPU, cpu_count=cpus)


def registration(worker_id: str, kind: OperationKind, runtime: TorchRuntime) -> WorkerRegistration:
    """The registration this worker sends (and re-sends after the backend forgot it)."""
    return WorkerRegistration(
        worker_id=worker_id,
        kind=kind,
        capabilities=capabilities(runtime),
        protocol=PROTOCOL_VERSION,
        versions=versions(runtime),
        host=socket.gethostname()[:255],
    )
