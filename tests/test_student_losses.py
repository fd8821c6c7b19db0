"""Distillation losses (Hinton et al. 2015): KD against a hand computation incl. T², zero at equal logits; masking."""

from __future__ import annotations

import math

import pytest
import torch

from nudistill.student.losses import LossWeights, concept_loss, distill_loss, hard_loss, kd_loss


def _softmax(v):
    e = [math.exp(x - max(v)) for x in v]
    return [x / sum(e) for x in e]


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_loss_matches_hand_computation(T):
    p = [0.7, 0.2, 0.1]
    z = [1.0, 0.0, -1.0]
    # By hand: teacher_T = softmax(log p / T), student_T = softmax(z / T), loss = T² Σ t log(t / s).
    t = _softmax([math.log(x) / T for x in p])
    s = _softmax([x / T for x in z])
    expected = T * T * sum(ti * math.log(ti / si) for ti, si in zip(t, s))
    got = kd_loss(torch.tensor([z], dtype=torch.float64), torch.tensor([p], dtype=torch.float64), T)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_kd_loss_has_the_T_squared_factor():
    z, p = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 0.3, 0.2]])
    kl_at_3 = float(kd_loss(z, p, 3.0)) / 9.0
    t = torch.log_softmax(torch.log(p) / 3, -1)
    s = torch.log_softmax(z / 3, -1)
    assert kl_at_3 == pytest.approx(float((t.exp() * (t - s)).sum()), rel=1e-5)


@pytest.mark.parametrize("T", [1.0, 2.0, 5.0])
def test_kd_loss_is_zero_at_equal_logits(T):
    p = torch.tensor([[0.6, 0.3, 0.1], [0.05, 0.05, 0.9]], dtype=torch.float64)
    logits = torch.log(p) + 3.0  # softmax is shift-invariant: the same distribution as the teacher
    assert float(kd_loss(logits, p, T)) == pytest.approx(0.0, abs=1e-12)


def test_concept_loss_is_masked():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-3.0, 4.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([1.0, 0.0, 1.0])
    loss = concept_loss(logits, targets, mask)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    by_hand = (bce(logits[0], targets[0]) + bce(logits[2], targets[2])) / 2
    assert loss.detach().item() == pytest.approx(by_hand.detach().item(), rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[1] == 0)  # the masked row gets no gradient
    other = targets.clone()
    other[1] = 1 - other[1]
    assert concept_loss(logits, other, mask).detach().item() == pytest.approx(loss.detach().item())
    assert concept_loss(logits, targets, torch.zeros(3)).detach().item() == 0.0


def test_hard_loss_ignores_rows_without_labels():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    assert float(hard_loss(logits, torch.tensor([0, -1]))) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))))
    assert float(hard_loss(logits, torch.tensor([-1, -1]))) == 0.0


def test_distill_loss_combines_the_weighted_terms():
    g = torch.Generator().manual_seed(0)
    logits, concepts = torch.randn(4, 3, generator=g), torch.randn(4, 6, generator=g)
    batch = {"teacher_probs": torch.softmax(torch.randn(4, 3, generator=g), -1), "hard": torch.tensor([0, 1, 2, -1]),
             "concepts": (torch.rand(4, 6, generator=g) > 0.5).float(), "concept_mask": torch.tensor([1.0, 1, 0, 1])}
    w = LossWeights(alpha=0.3, temperature=2.0, concept_weight=0.7)
    total, parts = distill_loss(logits, concepts, batch, w)
    expected = (0.3 * kd_loss(logits, batch["teacher_probs"], 2.0) + 0.7 * hard_loss(logits, batch["hard"])
                + 0.7 * concept_loss(concepts, batch["concepts"], batch["concept_mask"]))
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert set(parts) == {"kd", "ce", "concept"}
