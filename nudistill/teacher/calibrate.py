"""Temperature scaling (Guo et al. 2017) and teacher evaluation on labelled events.

`nudistill teacher calibrate --teacher DIR --events LABELLED` fits one temperature T by minimising the
NLL of softmax(logprobs / T) over the classes, stores it in teacher.json, and reports NLL and ECE
before and after. Accuracy is unchanged by construction (T > 0 keeps the argmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nudistill import metrics
from nudistill.concepts import concepts_in_text
from nudistill.errors import UserError


def nll(y: np.ndarray, logprobs: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true class under softmax(logprobs / T)."""
    return metrics.nll(y, np.asarray(logprobs, np.float64) / temperature)


def fit_temperature(y: np.ndarray, logprobs: np.ndarray) -> float:
    """The T > 0 minimising NLL: a golden-section search on log T over [1e-2, 1e3] (convex in 1/T)."""
    if len(y) == 0:
        raise UserError("calibration needs labelled events")
    lo, hi = np.log(1e-2), np.log(1e3)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(y, logprobs, np.exp(a)), nll(y, logprobs, np.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(y, logprobs, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(y, logprobs, np.exp(b))
    return float(np.exp((lo + hi) / 2))


@dataclass
class CalibrationResult:
    """Temperatures and held-out quality before and after."""

    temperature_before: float
    temperature_after: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    accuracy: float
    events: int


def calibrate(y: np.ndarray, logprobs: np.ndarray, temperature_before: float) -> CalibrationResult:
    """Fit T on (y, logprobs) and report NLL and ECE at the old and new temperature."""
    t = fit_temperature(y, logprobs)
    before, after = metrics.softmax(logprobs, temperature_before), metrics.softmax(logprobs, t)
    return CalibrationResult(temperature_before, t, nll(y, logprobs, temperature_before), nll(y, logprobs, t),
                             metrics.ece(y, before), metrics.ece(y, after), metrics.accuracy(y, after), len(y))


def concept_f1(truth: list[list[str]], predicted: list[list[str]]) -> float:
    """Micro F1 of concept names over events (truth concepts vs concepts named in rationales)."""
    tp = sum(len(set(t) & set(p)) for t, p in zip(truth, predicted))
    n_pred, n_true = sum(len(set(p)) for p in predicted), sum(len(set(t)) for t in truth)
    if n_pred + n_true == 0:
        return 1.0
    return 2 * tp / (n_pred + n_true)


def evaluate(teacher, data, rationales: int = 0) -> dict:
    """Accuracy, NLL, ECE of the teacher's probs on labelled ``data``; concept F1 on the first ``rationales``."""
    logprobs = teacher.logprobs(data.views, prepared=True)  # load_labelled prepared them
    probs = teacher.probs_from_logprobs(logprobs)
    out = dict(accuracy=metrics.accuracy(data.y, probs), nll=nll(data.y, logprobs, teacher.temperature),
               ece=metrics.ece(data.y, probs), events=len(data))
    if rationales:
        n = min(rationales, len(data))
        texts = teacher.rationales(data.views[:n], probs[:n].argmax(1), prepared=True)
        out["concept_f1"] = concept_f1(data.concepts[:n], [concepts_in_text(t) for t in texts])
        out["rationale_example"] = texts[0] if texts else ""
    return out
