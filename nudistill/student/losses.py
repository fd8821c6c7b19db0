"""Distillation losses (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural network").

    loss = alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, hard) + beta * BCE_masked(concepts)

``teacher_T`` is the teacher's calibrated probabilities re-tempered to T: softmax(log p / T), so T = 1 keeps
them as they are. T² keeps the soft-target gradients on the scale of the hard ones when T changes (Hinton
et al., section 2). Hard labels of -1 (no truth) drop out of the CE; concepts are masked where the teacher
generated no rationale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

_EPS = 1e-8


@dataclass
class LossWeights:
    """The weights of the distillation loss."""

    alpha: float = 1.0
    """Weight of the soft-target KL term; 1 - alpha weighs the hard-label CE."""
    temperature: float = 2.0
    """Softmax temperature T of teacher and student in the KL term."""
    concept_weight: float = 0.5
    """beta: weight of the masked concept BCE."""


def tempered_teacher(teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log of the teacher's probs re-tempered to T: log softmax(log p / T), ``(B, C)``."""
    return F.log_softmax(torch.log(teacher_probs.clamp_min(_EPS)) / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · mean over the batch of KL(teacher_T || student_T); zero when the student's logits equal log p."""
    log_t = tempered_teacher(teacher_probs, temperature)
    log_s = F.log_softmax(student_logits / temperature, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (B,)
    return temperature**2 * kl.mean()


def hard_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over rows with a label (label -1 = none); 0 when no row has one."""
    keep = labels >= 0
    if not bool(keep.any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[keep], labels[keep])


def concept_loss(concept_logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the rows with ``mask`` 1 (a rationale exists); 0 when none do."""
    per_row = F.binary_cross_entropy_with_logits(concept_logits, targets, reduction="none").mean(-1)  # (B,)
    denom = mask.sum()
    return (per_row * mask).sum() / denom.clamp_min(1.0)


def distill_loss(class_logits: torch.Tensor, concept_logits: torch.Tensor, batch: dict,
                 w: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and its parts (as floats) for one batch with ``teacher_probs``, ``hard``, ``concepts``, ``concept_mask``."""
    parts = {}
    total = class_logits.new_zeros(())
    if w.alpha > 0:
        parts["kd"] = kd_loss(class_logits, batch["teacher_probs"], w.temperature)
        total = total + w.alpha * parts["kd"]
    if w.alpha < 1:
        parts["ce"] = hard_loss(class_logits, batch["hard"])
        total = total + (1 - w.alpha) * parts["ce"]
    if w.concept_weight > 0:
        parts["concept"] = concept_loss(concept_logits, batch["concepts"], batch["concept_mask"])
        total = total + w.concept_weight * parts["concept"]
    return total, {k: float(v.detach()) for k, v in parts.items()}
