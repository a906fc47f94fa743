"""Classification quality of a trained model on held-out bars, beside a do-nothing baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Accuracy, balanced accuracy (mean recall over the classes present), per-class
    precision/recall/F1/support, the confusion matrix (rows: true, columns: predicted) and the
    accuracy and balanced accuracy of always predicting the most frequent true class, so a
    model that learned nothing is visible at a glance. Fractions in [0, 1].
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            f"need two equally long, non-empty label arrays, got {y_true.shape} and {y_pred.shape}"
        )
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    counts = np.bincount(y_true, minlength=len(labels))
    majority = int(np.argmax(counts))
    present = int((counts > 0).sum())
    return {
        "samples": int(y_true.size),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "baseline": {
            "class": class_names[majority],
            "accuracy": float(counts[majority] / y_true.size),
            # A constant guess recalls one class fully and the others not at all.
            "balanced_accuracy": 1.0 / present,
        },
    }
