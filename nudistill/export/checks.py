"""Checks every export passes before its file is written (contract 3, STYLE 5).

The ONNX checker with a full check (types and shapes inferred through the whole graph); agreement with
PyTorch on real events; batch 1 and batch 64 both run and give probability rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from nudistill.errors import UserError
from nudistill.online import Scorer


class ExportCheckError(UserError):
    """An exported graph failed a check; nothing was written."""


def check_onnx(path: str | Path) -> None:
    """``onnx.checker`` with ``full_check=True`` (runs strict shape inference as well)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportCheckError(f"the ONNX checker rejects the exported graph: {exc}") from None


def onnx_scores(scorer: Scorer, views: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime outputs for ``views`` (n, 2, H, W) uint8: (probs (n, 3), concepts (n, K))."""
    probs, concepts = [], []
    for lo in range(0, len(views), batch_size):
        out = scorer.score(views[lo: lo + batch_size, 0], views[lo: lo + batch_size, 1])
        probs.append(out["probs"])
        concepts.append(out["concepts"])
    return np.concatenate(probs), np.concatenate(concepts)


def check_parity(reference: tuple[np.ndarray, np.ndarray], scorer: Scorer, views: np.ndarray,
                 tolerance: float) -> dict:
    """Max |Δ| between PyTorch ``reference`` and ONNX Runtime outputs; ExportCheckError above ``tolerance``."""
    probs, concepts = onnx_scores(scorer, views)
    d_prob = float(np.abs(probs - reference[0]).max())
    d_concept = float(np.abs(concepts - reference[1]).max())
    result = {"file": scorer.path.name, "events": len(views), "max_abs_dprob": d_prob,
              "max_abs_dconcept": d_concept, "argmax_agreement": float((probs.argmax(1) == reference[0].argmax(1)).mean())}
    if not (d_prob <= tolerance and d_concept <= tolerance):  # also catches NaN
        raise ExportCheckError(f"{scorer.path.name} disagrees with PyTorch on {len(views)} events: max |Δprob| = "
                               f"{d_prob:.3g}, max |Δconcept| = {d_concept:.3g}, tolerance {tolerance:g}")
    return result


def check_batches(scorer: Scorer, views: np.ndarray, sizes: tuple[int, ...] = (1, 64)) -> dict:
    """Run each batch size (events repeated when too few) and check shapes, finiteness and row sums."""
    result = {}
    for n in sizes:
        v = views[np.arange(n) % len(views)]  # (n, 2, H, W)
        out = scorer.score(v[:, 0], v[:, 1])
        p, c = out["probs"], out["concepts"]
        ok = (p.shape == (n, len(scorer.classes)) and c.shape == (n, len(scorer.concepts))
              and np.isfinite(p).all() and np.isfinite(c).all() and np.allclose(p.sum(1), 1.0, atol=1e-5))
        if not ok:
            raise ExportCheckError(f"{scorer.path.name} at batch {n} gave probs {p.shape} and concepts {c.shape} "
                                   "that are not probability rows of the contract")
        result[f"batch_{n}"] = "ok"
    return result
