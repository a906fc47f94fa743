"""Which fuzzy memberships drive the model, and towards which class.

Two measures over the test samples, combined into one ranked table:

- **permutation importance**: shuffle one feature's values across the samples (its whole
  window moves with the sample it came from, so only the link between that feature and the
  rest is broken) and measure how much the class-weighted cross-entropy rises and the
  balanced accuracy falls; repeated with different shuffles, averaged. Ranked by the loss
  rise, which is smoother than accuracy on small sets.
- **mean input gradient per class**: the derivative of each class probability with respect to
  the feature (summed over the window's bars), averaged over the samples and scaled by the
  feature's standard deviation: how much a one-standard-deviation rise moves P(BUY), P(HOLD)
  and P(SELL). Its sign says whether a *high* or *low* value pushes towards BUY or SELL.

The table reads like "`1h_rsi_zone_oversold` high → BUY".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ktrdr_core.reports import CLASS_NAMES
from ktrdr_worker.models.datasets import Samples, balanced_accuracy
from ktrdr_worker.models.spec import N_CLASSES

__all__ = ["explain"]

_BATCH = 8192


def _loss_and_balanced_accuracy(
    network: nn.Module, inputs: torch.Tensor, labels: np.ndarray, weights: torch.Tensor
) -> tuple[float, float]:
    target = torch.as_tensor(labels)
    loss_sum = 0.0
    predicted = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], _BATCH):
            logits = network(inputs[start : start + _BATCH])
            loss_sum += float(
                nn.functional.cross_entropy(
                    logits, target[start : start + _BATCH], weight=weights, reduction="sum"
                )
            )
            predicted.append(logits.argmax(dim=1).numpy())
    pred = np.concatenate(predicted)
    weight_total = float(weights.numpy()[labels].sum())
    return loss_sum / weight_total, balanced_accuracy(labels, pred)


def explain(
    network: nn.Module,
    samples: Samples,
    feature_names: Sequence[str],
    class_weights: Sequence[float],
    *,
    repeats: int = 3,
    seed: int = 0,
    max_samples: int = 5_000,
) -> list[dict[str, Any]]:
    """Rank the features of a trained network on labelled (test) samples.

    In: the network (CPU), samples with known labels, the feature names in column order, the
    training class weights (for the loss), shuffle ``repeats`` per feature and a ``seed``;
    at most ``max_samples`` samples are used (an evenly spaced subset beyond that).
    Out: one dict per feature, most important first, with the fields of
    ``ktrdr_core.reports.ExplanationRow``.
    """
    if len(samples) == 0:
        raise ValueError("explanations need at least one labelled sample")
    if len(feature_names) != samples.n_features:
        raise ValueError(
            f"{len(feature_names)} feature names for {samples.n_features} feature columns"
        )
    network.eval()
    if len(samples) > max_samples:
        samples = samples.subset(np.linspace(0, len(samples) - 1, max_samples).astype(np.int64))
    windows = samples.windows()  # (n, window, features)
    labels = samples.labels
    weights = torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)
    base_inputs = torch.as_tensor(windows)
    base_loss, base_bal = _loss_and_balanced_accuracy(network, base_inputs, labels, weights)

    rng = np.random.default_rng(seed)
    n, _, n_features = windows.shape
    loss_rise = np.zeros((n_features, repeats))
    bal_drop = np.zeros((n_features, repeats))
    shuffled = windows.copy()
    for j in range(n_features):
        for r in range(repeats):
            order = rng.permutation(n)
            shuffled[:, :, j] = windows[order, :, j]
            loss, bal = _loss_and_balanced_accuracy(
                network, torch.as_tensor(shuffled), labels, weights
            )
            loss_rise[j, r] = loss - base_loss
            bal_drop[j, r] = base_bal - bal
        shuffled[:, :, j] = windows[:, :, j]

    gradients = np.zeros((N_CLASSES, n_features))
    for start in range(0, n, _BATCH):
        chunk = torch.as_tensor(windows[start : start + _BATCH]).requires_grad_(True)
        probabilities = torch.softmax(network(chunk), dim=1)
        for c in range(N_CLASSES):
            (grad,) = torch.autograd.grad(probabilities[:, c].sum(), chunk, retain_graph=True)
            gradients[c] += grad.sum(dim=1).sum(dim=0).double().numpy()
    gradients /= n
    scale = windows[:, -1, :].astype(np.float64).std(axis=0)
    gradients *= scale[None, :]

    rows = []
    for j, name in enumerate(feature_names):
        g = {CLASS_NAMES[c]: float(gradients[c, j]) for c in range(N_CLASSES)}
        # Read as "high → the signal class it raises most"; when a rise lowers both BUY and
        # SELL (it pushes towards HOLD), read "low → the class it lowers most" instead.
        towards = "BUY" if g["BUY"] >= g["SELL"] else "SELL"
        direction = "high"
        if g[towards] < 0:
            towards = "BUY" if g["BUY"] <= g["SELL"] else "SELL"
            direction = "low"
        rows.append(
            {
                "feature": name,
                "importance": float(loss_rise[j].mean()),
                "importance_std": float(loss_rise[j].std()),
                "balanced_accuracy_drop": float(bal_drop[j].mean()),
                "gradients": g,
                "pushes_towards": towards,
                "direction": direction,
                "text": f"`{name}` {direction} → {towards}",
            }
        )
    rows.sort(key=lambda row: row["importance"], reverse=True)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows
