"""Classification and concept metrics as functions of numpy arrays (shared by teacher, student and report).

Conventions: ``y`` is ``(N,)`` int class indices in CLASSES order, ``probs`` ``(N, C)`` rows summing to 1,
concept ``targets``/``scores`` ``(N, K)``. Every function returns plain Python numbers or lists, JSON-ready.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from nudistill import CLASSES, CONCEPTS


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax(logits / T) over the last axis, computed in float64 and returned as float32."""
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(-1, keepdims=True))
    return (z / z.sum(-1, keepdims=True)).astype(np.float32)


def nll(y: np.ndarray, logits: np.ndarray, scale: float = 1.0, bias: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of the true class under softmax(scale * logits + bias), in float64."""
    z = scale * np.asarray(logits, np.float64) + (0.0 if bias is None else np.asarray(bias, np.float64))
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of rows whose argmax is the true class."""
    return float((np.asarray(probs).argmax(1) == np.asarray(y)).mean()) if len(y) else float("nan")


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Fraction of rows where two models' argmax classes agree (student vs teacher)."""
    if not len(probs_a):
        return float("nan")
    return float((np.asarray(probs_a).argmax(1) == np.asarray(probs_b).argmax(1)).mean())


def precision_recall(y: np.ndarray, probs: np.ndarray, classes=CLASSES) -> dict[str, dict[str, float]]:
    """Per-class precision and recall of the argmax prediction (0 where a class is never predicted)."""
    p, r, _, support = precision_recall_fscore_support(y, np.asarray(probs).argmax(1), labels=range(len(classes)),
                                                       zero_division=0)
    return {c: {"precision": float(p[i]), "recall": float(r[i]), "support": int(support[i])}
            for i, c in enumerate(classes)}


def macro_auc(y: np.ndarray, probs: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over the classes present in ``y`` (NaN with fewer than two)."""
    y = np.asarray(y)
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    aucs = [roc_auc_score(y == c, np.asarray(probs)[:, c]) for c in present]
    return float(np.mean(aucs))


def confusion(y: np.ndarray, probs: np.ndarray, n_classes: int = len(CLASSES)) -> list[list[int]]:
    """Confusion matrix, rows = truth, columns = prediction, in class order."""
    return _sk_confusion(y, np.asarray(probs).argmax(1), labels=range(n_classes)).tolist()


def ece(y: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, equal-width bins (Guo et al. 2017)."""
    probs = np.asarray(probs)
    if not len(probs):
        return float("nan")
    conf, correct = probs.max(1), probs.argmax(1) == np.asarray(y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def concept_auc(targets: np.ndarray, scores: np.ndarray, names=CONCEPTS) -> dict[str, float | None]:
    """ROC AUC per concept and their macro mean (``macro``); None where a concept has one class only."""
    targets, scores = np.asarray(targets), np.asarray(scores)
    out: dict[str, float | None] = {}
    for k, name in enumerate(names):
        t = targets[:, k] > 0.5
        out[name] = float(roc_auc_score(t, scores[:, k])) if 0 < t.sum() < len(t) else None
    valid = [v for v in out.values() if v is not None]
    out["macro"] = float(np.mean(valid)) if valid else None
    return out


def classification_report(y: np.ndarray, probs: np.ndarray, reference: np.ndarray | None = None,
                          classes=CLASSES) -> dict:
    """All class metrics of ``probs`` against truth ``y``; ``reference`` (teacher probs) adds agreement."""
    out = {
        "n": int(len(y)),
        "accuracy": accuracy(y, probs),
        "macro_auc": macro_auc(y, probs),
        "ece": ece(y, probs),
        "per_class": precision_recall(y, probs, classes),
        "confusion": confusion(y, probs, len(classes)),
    }
    if reference is not None:
        out["agreement"] = agreement(probs, reference)
    return out
