"""The training loop: class-weighted cross-entropy, AdamW, clipping, a schedule, early stopping.

:func:`train_network` trains a network on :class:`~ktrdr_worker.models.datasets.Samples`:

- class weights from the training labels (``n / (3 × count)``), so a rare BUY counts as much
  as a common HOLD; a class absent from the training part is an error;
- AdamW, gradient clipping by global norm, a learning-rate schedule per epoch (``cosine``
  annealing to 1 % of the rate, ``plateau`` halving on a stalled validation loss, or
  ``constant``);
- early stopping on the validation loss with the best epoch's weights restored at the end;
- a callback after every epoch and a cancellation check before every batch;
- checkpoints every ``checkpoint_interval`` epochs and on cancellation, holding everything
  that decides the rest of the run (weights, optimizer, scheduler, both random generators, the
  epoch's shuffle order and position), so resuming ends with exactly the weights of an
  uninterrupted run on CPU.

Reproducibility: the seed drives initialisation (torch's global generator, forked so the
caller's state is untouched), dropout and a private shuffling generator; on CPU the loop runs
with ``torch.use_deterministic_algorithms(True)``, so the same inputs, seed and thread count
give bit-identical weights.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ktrdr_core.errors import KtrdrError
from ktrdr_core.reports import CLASS_NAMES
from ktrdr_worker.models.datasets import Samples, balanced_accuracy
from ktrdr_worker.models.networks import build_network, set_standardisation
from ktrdr_worker.models.spec import N_CLASSES, NetworkSpec
from ktrdr_worker.runtime import resolve_device

LR_SCHEDULES = ("cosine", "plateau", "constant")
CHECKPOINT_FORMAT = "ktrdr-training-checkpoint/1"
_EVAL_BATCH = 8192


def window_gather(features: torch.Tensor, ends: torch.Tensor, window: int) -> torch.Tensor:
    """Inputs ``(len(ends), window, n_features)`` for samples ending on ``ends`` (row indices)."""
    offsets = torch.arange(-window + 1, 1, device=ends.device)
    return features[ends[:, None] + offsets[None, :]]


class TrainingError(KtrdrError, RuntimeError):
    """Training cannot start or continue; the message says why and what to change."""


class TrainingCancelled(KtrdrError):
    """Raised when the cancellation check said stop; ``checkpoint`` is where the run was saved
    (None when no checkpoint folder was given), ``epoch`` the epoch it stopped in (0-based)."""

    def __init__(self, epoch: int, batch: int, checkpoint: Path | None):
        where = f"; resume from {checkpoint}" if checkpoint else ""
        super().__init__(f"training cancelled in epoch {epoch + 1} before batch {batch + 1}{where}")
        self.epoch = epoch
        self.batch = batch
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class TrainingConfig:
    """How to train (a strategy's ``training`` section, in plain values).

    Attributes:
        epochs: most epochs to run (≥ 1).
        batch_size: samples per optimizer step.
        learning_rate: AdamW's initial rate.
        weight_decay: AdamW's decoupled weight decay.
        early_stopping_patience: epochs without a validation-loss improvement (by more than
            ``min_delta``) before stopping; 0 disables early stopping.
        min_delta: smallest validation-loss decrease that counts as an improvement.
        lr_schedule: ``cosine``, ``plateau`` or ``constant``.
        grad_clip: largest global gradient norm (0 disables clipping).
        seed: seed for initialisation, dropout and shuffling.
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda`` or ``mps``.
        checkpoint_interval: save a checkpoint every this many epochs (0: only on cancel).
        threads: torch CPU threads during training (None: leave torch's setting). Results are
            bit-identical only for the same thread count.
    """

    epochs: int = 50
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    early_stopping_patience: int = 8
    min_delta: float = 1e-4
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"
    checkpoint_interval: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        def whole(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TrainingError(f"training.{name}: expected an integer ≥ {low}, got {value!r}")

        def number(name: str, low: float, strict: bool) -> None:
            value = getattr(self, name)
            bad = isinstance(value, bool) or not isinstance(value, int | float)
            if bad or not math.isfinite(value) or (value <= low if strict else value < low):
                sign = ">" if strict else "≥"
                raise TrainingError(
                    f"training.{name}: expected a number {sign} {low}, got {value!r}"
                )

        whole("epochs", 1)
        whole("batch_size", 1)
        whole("early_stopping_patience", 0)
        whole("checkpoint_interval", 0)
        whole("seed", 0)
        number("learning_rate", 0.0, strict=True)
        number("weight_decay", 0.0, strict=False)
        number("min_delta", 0.0, strict=False)
        number("grad_clip", 0.0, strict=False)
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingError(
                f"training.lr_schedule: expected one of {', '.join(LR_SCHEDULES)}, "
                f"got {self.lr_schedule!r}"
            )
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise TrainingError(
                f"training.device: expected auto, cpu, cuda or mps, got {self.device!r}"
            )
        if self.threads is not None:
            whole("threads", 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """Build from a plain dict; an unknown key is an error naming it."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(
                f"training.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})"
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> TrainingConfig:
        return TrainingConfig(**{**asdict(self), **changes})


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; passed to the epoch callback and kept in the history.

    Losses are class-weighted cross-entropy (nats per sample); accuracies are fractions;
    ``elapsed_s`` counts seconds of training since the run began (across resumes).
    """

    epoch: int  # 1-based
    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float
    learning_rate: float
    elapsed_s: float
    samples_per_s: float
    best_epoch: int
    improved: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainedNetwork:
    """The outcome of :func:`train_network` (worker-internal: holds torch objects).

    ``network`` is in eval mode on the CPU with the best epoch's weights; ``history`` has one
    :class:`EpochReport` dict per epoch run; ``stopped_early`` tells whether patience ran out.
    """

    network: nn.Module
    spec: NetworkSpec
    config: TrainingConfig
    device: str
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    class_weights: list[float]
    train_seconds: float
    resumed_from_epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


EpochCallback = Callable[[EpochReport], None]
CancelCheck = Callable[[], bool]


@contextmanager
def _reproducible(device: str, seed: int, threads: int | None) -> Iterator[None]:
    """Seed torch, force deterministic kernels and pin the thread count; restore afterwards."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
    )
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # GPUs have kernels without a deterministic version: warn there instead of failing.
        if device == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
        if threads is not None:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.set_num_threads(previous[2])


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged); restore afterwards."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Per-class loss weights ``n / (3 × count)`` from training labels (classes 0..2).

    A class with no training sample raises :class:`TrainingError` naming it.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=N_CLASSES)
    missing = [CLASS_NAMES[i] for i in range(N_CLASSES) if counts[i] == 0]
    if missing:
        raise TrainingError(
            f"the training part has no {', '.join(missing)} sample "
            f"(counts BUY {counts[0]}, HOLD {counts[1]}, SELL {counts[2]}); the model could "
            "never learn that class — change the label parameters or use more data"
        )
    return counts.sum() / (N_CLASSES * counts.astype(np.float64))


def _feature_statistics(samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature over the rows the training samples use."""
    rows = np.unique((samples.ends[:, None] + np.arange(-samples.window + 1, 1)[None, :]).ravel())
    values = samples.features[rows].astype(np.float64)
    return values.mean(axis=0), values.std(axis=0)


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.learning_rate * 0.01
        )
    if config.lr_schedule == "plateau":
        # Halve the rate well before early stopping would give up.
        patience = max(1, config.early_stopping_patience // 2 or 2)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _evaluate(
    network: nn.Module,
    features: torch.Tensor,
    ends: torch.Tensor,
    labels: torch.Tensor,
    window: int,
    weights: torch.Tensor,
) -> tuple[float, float, float]:
    """Class-weighted loss, accuracy and balanced accuracy over a whole sample set."""
    network.eval()
    loss_sum = 0.0
    predictions = []
    with torch.no_grad():
        for start in range(0, ends.shape[0], _EVAL_BATCH):
            batch_ends = ends[start : start + _EVAL_BATCH]
            logits = network(window_gather(features, batch_ends, window))
            target = labels[start : start + _EVAL_BATCH]
            loss_sum += float(
                nn.functional.cross_entropy(logits, target, weight=weights, reduction="sum")
            )
            predictions.append(logits.argmax(dim=1))
    predicted = torch.cat(predictions).cpu().numpy()
    truth = labels.cpu().numpy()
    weight_total = float(weights.cpu().numpy()[truth].sum())
    accuracy = float((predicted == truth).mean())
    return loss_sum / weight_total, accuracy, balanced_accuracy(truth, predicted)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    # A crash mid-write must never leave a truncated file where a resume would look.
    os.replace(partial, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint (tensors and plain values only: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a ktrdr training checkpoint ({CHECKPOINT_FORMAT})")
    return state


def checkpoint_path(folder: str | Path) -> Path:
    """Where :func:`train_network` keeps its checkpoint inside ``folder``."""
    return Path(folder) / "checkpoint.pt"


def train_network(
    train: Samples,
    validation: Samples,
    spec: NetworkSpec,
    config: TrainingConfig,
    *,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    after_epoch: Callable[[int], None] | None = None,
) -> TrainedNetwork:
    """Train a fresh network (or resume one) and return it with its history.

    ``train`` / ``validation``: samples with known labels, sharing the window of ``spec``.
    ``on_epoch`` is called after each epoch with an :class:`EpochReport`; ``should_cancel`` is
    polled before every batch and, when it returns True, the run is saved to
    ``checkpoint_dir`` (if given) and :class:`TrainingCancelled` is raised. ``resume_from``: a
    checkpoint file written by an earlier call with the same samples, spec and config.
    ``after_epoch(epochs_done)`` runs at each epoch boundary once that epoch's checkpoint (if
    one is due) is on disk: the one safe place to pause a run (the worker's hold file).
    """
    if len(train) == 0 or len(validation) == 0:
        raise TrainingError(
            f"need training and validation samples, got {len(train)} and {len(validation)}"
        )
    if train.window != spec.window or validation.window != spec.window:
        raise TrainingError(
            f"samples are windows of {train.window}/{validation.window} bars but the model "
            f"expects {spec.window}"
        )
    device = resolve_device(config.device)  # type: ignore[arg-type]
    weights_np = class_weights(train.labels)
    fingerprint = f"{train.fingerprint()}:{validation.fingerprint()}"
    resume_state = load_checkpoint(resume_from) if resume_from is not None else None
    if resume_state is not None:
        _check_resume(resume_state, fingerprint, spec, config, resume_from)
    ckpt_file = checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None

    with _reproducible(device, config.seed, config.threads):
        shuffle = torch.Generator().manual_seed(config.seed)
        network = build_network(spec, train.n_features)
        mean, std = _feature_statistics(train)
        set_standardisation(network, mean, std)
        network.to(device)
        optimizer = torch.optim.AdamW(
            network.parameters(),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            foreach=True,  # one fused update per step: far less Python overhead on CPU
        )
        scheduler = _make_scheduler(optimizer, config)
        parameters = [p for p in network.parameters() if p.requires_grad]
        weights = torch.as_tensor(weights_np, dtype=torch.float32, device=device)
        features = torch.as_tensor(train.features, device=device)
        val_features = (
            features
            if validation.features is train.features
            else torch.as_tensor(validation.features, device=device)
        )
        train_ends = torch.as_tensor(train.ends, device=device)
        train_labels = torch.as_tensor(train.labels, device=device)
        val_ends = torch.as_tensor(validation.ends, device=device)
        val_labels = torch.as_tensor(validation.labels, device=device)

        epoch, batch = 0, 0
        permutation: torch.Tensor | None = None
        # Summed on the device: reading the loss every batch would stall a GPU.
        loss_sum = torch.zeros((), device=device)
        seen = 0
        history: list[dict[str, Any]] = []
        best_loss, best_epoch, bad_epochs = math.inf, 0, 0
        best_state = copy.deepcopy(network.state_dict())
        elapsed_before = 0.0
        resumed_from: int | None = None
        if resume_state is not None:
            network.load_state_dict(resume_state["model"])
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
            shuffle.set_state(resume_state["shuffle_rng"])
            torch.set_rng_state(resume_state["torch_rng"])
            if device == "cuda" and resume_state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(resume_state["cuda_rng"])
            epoch, batch = int(resume_state["epoch"]), int(resume_state["batch"])
            permutation = resume_state["permutation"]
            loss_sum = resume_state["loss_sum"].to(device)
            seen = int(resume_state["seen"])
            history = list(resume_state["history"])
            best_loss = float(resume_state["best_loss"])
            best_epoch = int(resume_state["best_epoch"])
            bad_epochs = int(resume_state["bad_epochs"])
            best_state = resume_state["best_state"]
            elapsed_before = float(resume_state["elapsed_s"])
            resumed_from = epoch

        def snapshot() -> dict[str, Any]:
            return {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "spec": spec.to_dict(),
                "config": _resume_relevant(config),
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "shuffle_rng": shuffle.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device == "cuda" else None,
                "epoch": epoch,
                "batch": batch,
                "permutation": permutation,
                "loss_sum": loss_sum.detach().to("cpu"),
                "seen": seen,
                "history": history,
                "best_loss": best_loss,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "best_state": best_state,
                "elapsed_s": elapsed_before + (time.perf_counter() - started),
            }

        started = time.perf_counter()
        n = len(train)
        n_batches = math.ceil(n / config.batch_size)
        stopped_early = False
        while epoch < config.epochs and not stopped_early:
            if permutation is None:
                permutation = torch.randperm(n, generator=shuffle)
            order = permutation.to(device)
            epoch_started = time.perf_counter()
            network.train()
            while batch < n_batches:
                if should_cancel is not None and should_cancel():
                    saved = _save_checkpoint(ckpt_file, snapshot()) if ckpt_file else None
                    raise TrainingCancelled(epoch, batch, saved)
                index = order[batch * config.batch_size : (batch + 1) * config.batch_size]
                inputs = window_gather(features, train_ends[index], spec.window)
                target = train_labels[index]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(network(inputs), target, weight=weights)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(parameters, config.grad_clip, foreach=True)
                optimizer.step()
                loss_sum += loss.detach() * target.shape[0]
                seen += int(target.shape[0])
                batch += 1
            if device == "cuda":
                torch.cuda.synchronize()  # queued kernels belong to this epoch's time
            epoch_seconds = time.perf_counter() - epoch_started
            val_loss, val_acc, val_bal = _evaluate(
                network, val_features, val_ends, val_labels, spec.window, weights
            )
            learning_rate = float(optimizer.param_groups[0]["lr"])
            improved = val_loss < best_loss - config.min_delta
            if improved:
                best_loss, best_epoch, bad_epochs = val_loss, epoch + 1, 0
                best_state = copy.deepcopy(network.state_dict())
            else:
                bad_epochs += 1
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss)
            else:
                scheduler.step()
            report = EpochReport(
                epoch=epoch + 1,
                epochs=config.epochs,
                train_loss=float(loss_sum) / max(seen, 1),
                val_loss=val_loss,
                val_accuracy=val_acc,
                val_balanced_accuracy=val_bal,
                learning_rate=learning_rate,
                elapsed_s=elapsed_before + (time.perf_counter() - started),
                samples_per_s=n / epoch_seconds if epoch_seconds > 0 else math.inf,
                best_epoch=best_epoch,
                improved=improved,
            )
            history.append(report.to_dict())
            epoch += 1
            batch, permutation, seen = 0, None, 0
            loss_sum = torch.zeros((), device=device)
            stopped_early = (
                config.early_stopping_patience > 0 and bad_epochs >= config.early_stopping_patience
            )
            if on_epoch is not None:
                on_epoch(report)
            if ckpt_file and config.checkpoint_interval and epoch % config.checkpoint_interval == 0:
                _save_checkpoint(ckpt_file, snapshot())
            if after_epoch is not None:
                after_epoch(epoch)
        train_seconds = elapsed_before + (time.perf_counter() - started)
        network.load_state_dict(best_state)
        network.to("cpu").eval()

    return TrainedNetwork(
        network=network,
        spec=spec,
        config=config,
        device=device,
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        class_weights=[float(w) for w in weights_np],
        train_seconds=train_seconds,
        resumed_from_epoch=resumed_from,
    )


def _resume_relevant(config: TrainingConfig) -> dict[str, Any]:
    # How often to save and where to run may change between runs; everything else (epochs
    # too: the cosine schedule spans them) shapes the result.
    data = config.to_dict()
    for free in ("checkpoint_interval", "device", "threads"):
        data.pop(free)
    return data


def _check_resume(
    state: Mapping[str, Any],
    fingerprint: str,
    spec: NetworkSpec,
    config: TrainingConfig,
    path: str | Path | None,
) -> None:
    if state["fingerprint"] != fingerprint:
        raise TrainingError(
            f"checkpoint {path} was written for different training data; start a fresh run"
        )
    if state["spec"] != spec.to_dict():
        raise TrainingError(
            f"checkpoint {path} was written for model {state['spec']}, not {spec.to_dict()}"
        )
    saved, now = state["config"], _resume_relevant(config)
    for key in now:
        if saved.get(key) != now[key]:
            raise TrainingError(
                f"checkpoint {path} was written with training.{key} = {saved.get(key)!r}, "
                f"now {now[key]!r}; resume with the same settings"
            )


def warm_up_torch() -> None:
    """Training switches deterministic kernels on; the first switch imports torch's compiler
    configuration (seconds). Setting the current value again changes nothing."""
    torch.use_deterministic_algorithms(
        torch.are_deterministic_algorithms_enabled(),
        warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
    )


@contextmanager
def full_float32(device: str) -> Iterator[None]:
    """Run the block without TF32 on CUDA: cuDNN's recurrent kernels use it by default on
    Ampere and later GPUs, which moves GRU/LSTM probabilities by ~1e-4 (measured on an H200),
    enough to flip a decision at a threshold. Inference computes in true float32 everywhere,
    so CPU, CUDA and numpy agree within 1e-5. Restores the flags afterwards."""
    if not str(device).startswith("cuda"):
        yield
        return
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def predict_probabilities(network: nn.Module, samples: Samples, device: str = "cpu") -> np.ndarray:
    """Class probabilities ``(len(samples), 3)`` (float64, columns BUY, HOLD, SELL)."""
    network.eval()
    features = torch.as_tensor(samples.features, device=device)
    ends = torch.as_tensor(samples.ends, device=device)
    out = []
    with torch.no_grad(), full_float32(device):
        for start in range(0, ends.shape[0], _EVAL_BATCH):
            batch_ends = ends[start : start + _EVAL_BATCH]
            logits = network(window_gather(features, batch_ends, samples.window))
            out.append(torch.softmax(logits, dim=1).double().cpu().numpy())
    if not out:
        return np.zeros((0, N_CLASSES))
    return np.concatenate(out)
