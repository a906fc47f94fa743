"""What this worker can compute on: the torch build and the best device, or no torch at all.

A backtest worker may run without torch (the ``ktrdr-worker-cpu`` image): it computes on the
CPU with numpy, and :data:`NO_TORCH` describes it. torch is imported only by
:func:`torch_runtime`, called where torch is installed or needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]


class TorchUnavailableError(RuntimeError):
    """torch is missing or broken; the worker cannot train or run a model."""


@dataclass(frozen=True)
class TorchRuntime:
    version: str | None  # None: torch is not installed here (numpy inference only)
    cuda_build: str | None  # CUDA version torch was built against; None for a CPU build
    cuda_available: bool
    mps_available: bool
    device_name: str
    gpu_memory_mb: int | None = None  # the CUDA device's memory

    @property
    def summary(self) -> str:
        """``torch 2.13.0+cpu`` or, without torch, what computes instead."""
        return f"torch {self.version}" if self.version else "no torch: numpy inference"

    def as_dict(self) -> dict[str, object]:
        return {
            "torch": self.version,
            "cuda_build": self.cuda_build,
            "cuda_available": self.cuda_available,
            "mps_available": self.mps_available,
            "device_name": self.device_name,
            "gpu_memory_mb": self.gpu_memory_mb,
        }


NO_TORCH = TorchRuntime(
    version=None, cuda_build=None, cuda_available=False, mps_available=False, device_name="CPU"
)


def torch_runtime() -> TorchRuntime:
    """Import torch and describe it; raise TorchUnavailableError naming the right image."""
    try:
        import torch
    except Exception as exc:  # any import failure (missing, ABI mismatch) means no usable torch
        raise TorchUnavailableError(
            f"torch cannot be imported ({type(exc).__name__}: {exc}). Install ktrdr-worker "
            "with its dependencies, or run the ktrdr-worker-gpu / ktrdr-worker-cpu-training "
            "image."
        ) from exc
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    name = torch.cuda.get_device_name(0) if cuda else ("Apple MPS" if mps else "CPU")
    memory = torch.cuda.get_device_properties(0).total_memory // (1024 * 1024) if cuda else None
    return TorchRuntime(
        version=torch.__version__,
        cuda_build=torch.version.cuda,
        cuda_available=cuda,
        mps_available=mps,
        device_name=name,
        gpu_memory_mb=memory,
    )


def resolve_device(choice: DeviceChoice = "auto") -> str:
    """Pick the torch device: CUDA if present, else MPS, else CPU; or honour an explicit choice.

    An explicit `cuda`/`mps` that is not available is an error, never a quiet fall-back to CPU.
    """
    runtime = torch_runtime()
    if choice == "auto":
        return "cuda" if runtime.cuda_available else "mps" if runtime.mps_available else "cpu"
    if choice == "cuda" and not runtime.cuda_available:
        hint = (
            "this torch is a CPU build; use the ktrdr-worker-gpu image"
            if runtime.cuda_build is None
            else "no CUDA device is visible to this process"
        )
        raise TorchUnavailableError(f"device 'cuda' requested but unavailable: {hint}")
    if choice == "mps" and not runtime.mps_available:
        raise TorchUnavailableError("device 'mps' requested but unavailable on this machine")
    return choice
