"""Validation inside training: loss and the headline metrics on the held-out split (all ranks pooled)."""

from __future__ import annotations

import numpy as np
import torch

from nudistill import metrics
from nudistill.student.losses import LossWeights, distill_loss


@torch.no_grad()
def predict_batches(model, loader, weights: LossWeights | None, device) -> dict[str, np.ndarray]:
    """Run ``model`` (eval mode) over ``loader``; return stacked probs, concept probs, targets and loss sum."""
    model.eval()
    keep = ("teacher_probs", "truth", "concepts", "concept_mask")
    out: dict[str, list] = {k: [] for k in ("probs", "concept_probs", *keep)}
    loss_sum, n = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits, concepts = model(batch["xz"], batch["yz"])
        if weights is not None:
            loss, _ = distill_loss(logits, concepts, batch, weights)
            loss_sum += float(loss) * len(logits)
        n += len(logits)
        out["probs"].append(torch.softmax(logits, -1).cpu().numpy())
        out["concept_probs"].append(torch.sigmoid(concepts).cpu().numpy())
        for k in keep:
            out[k].append(batch[k].cpu().numpy())
    arrays = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}
    arrays["loss_sum"], arrays["n"] = np.array(loss_sum), np.array(n)
    return arrays


def validate(model, loader, weights: LossWeights, device) -> dict[str, float]:
    """Validation loss (same weights as training), accuracy vs truth, agreement with the teacher, concept AUC."""
    a = _gather(predict_batches(model, loader, weights, device))
    n = int(a["n"])
    res = {"loss": float(a["loss_sum"]) / max(n, 1), "n": n}
    if n == 0:
        return res
    has_truth = a["truth"] >= 0
    if has_truth.any():
        res["accuracy"] = metrics.accuracy(a["truth"][has_truth], a["probs"][has_truth])
    res["agreement"] = metrics.agreement(a["probs"], a["teacher_probs"])
    masked = a["concept_mask"] > 0
    if masked.any():
        res["concept_auc"] = metrics.concept_auc(a["concepts"][masked], a["concept_probs"][masked])["macro"]
    return res


def _gather(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pool the ranks' validation arrays under DDP (the val split is small), identity otherwise."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return arrays
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, arrays)
    pooled = {k: np.concatenate([p[k] for p in parts if p[k].size] or [arrays[k]]) if arrays[k].ndim else np.array(sum(float(p[k]) for p in parts))
              for k in arrays}
    return pooled
