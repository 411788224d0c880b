"""BCE knowledge-distillation loss against a hand computation."""
from __future__ import annotations

import math

import pytest
import torch

from losses.bce_distillation import BCEDistillationLoss


def bce(logit: float, target: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(target * math.log(p) + (1.0 - target) * math.log(1.0 - p))


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


STUDENT = [[0.5, -1.0], [2.0, 0.0]]
LABELS = [[1.0, 0.0], [0.0, 1.0]]
TEACHER = [[1.5, -2.0], [-0.5, 3.0]]


def hand_loss(kd_lambda: float, temperature: float, weights: list[float]) -> float:
    label = sum(bce(s, y) for rs, ry in zip(STUDENT, LABELS) for s, y in zip(rs, ry)) / 4
    kd = sum(
        w * sum(bce(s, sigmoid(t / temperature)) for s, t in zip(rs, rt)) / 2
        for w, rs, rt in zip(weights, STUDENT, TEACHER)
    ) / 2
    return kd_lambda * label + (1 - kd_lambda) * kd


@pytest.mark.parametrize("kd_lambda,temperature", [(0.1, 1.0), (0.5, 2.0)])
def test_matches_hand_computation(kd_lambda: float, temperature: float) -> None:
    loss = BCEDistillationLoss(kd_lambda=kd_lambda, temperature=temperature)
    value = loss(torch.tensor(STUDENT), torch.tensor(LABELS), torch.tensor(TEACHER))
    assert value.item() == pytest.approx(hand_loss(kd_lambda, temperature, [1.0, 1.0]), rel=1e-6)


def test_defaults_and_zero_weight_for_clips_without_teacher() -> None:
    loss = BCEDistillationLoss()
    assert (loss.kd_lambda, loss.temperature) == (0.1, 1.0)
    value = loss(torch.tensor(STUDENT), torch.tensor(LABELS), torch.tensor(TEACHER), kd_weight=torch.tensor([1.0, 0.0]))
    assert value.item() == pytest.approx(hand_loss(0.1, 1.0, [1.0, 0.0]), rel=1e-6)
    parts = loss.components(torch.tensor(STUDENT), torch.tensor(LABELS), torch.tensor(TEACHER),
                            kd_weight=torch.zeros(2))
    assert parts["distillation_loss"].item() == 0.0
    assert parts["loss"].item() == pytest.approx(parts["label_loss"].item())


def test_mixed_targets_equal_mixed_losses() -> None:
    """Mixing labels and teacher probabilities with lambda equals mixing the two losses (BCE is linear in y)."""
    torch.manual_seed(0)
    loss = BCEDistillationLoss(kd_lambda=0.3)
    student, labels, teacher = torch.randn(4, 6), (torch.rand(4, 6) > 0.5).float(), torch.randn(4, 6)
    perm, lam = torch.tensor([2, 3, 0, 1]), torch.tensor([0.9, 0.6, 0.7, 0.8]).unsqueeze(1)
    probs = loss.teacher_targets(teacher)
    mixed = loss(student, lam * labels + (1 - lam) * labels[perm],
                 teacher_probs=lam * probs + (1 - lam) * probs[perm])
    per_clip = lambda y, t: (0.3 * torch.nn.functional.binary_cross_entropy_with_logits(student, y, reduction="none")
                             + 0.7 * torch.nn.functional.binary_cross_entropy_with_logits(student, t, reduction="none")
                             ).mean(dim=1)
    ref = (lam.squeeze(1) * per_clip(labels, probs) + (1 - lam.squeeze(1)) * per_clip(labels[perm], probs[perm])).mean()
    torch.testing.assert_close(mixed, ref)


def test_gradient_reaches_only_the_student() -> None:
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5, requires_grad=True)
    BCEDistillationLoss()(student, torch.rand(3, 5), teacher).backward()
    assert student.grad is not None and teacher.grad is None


def test_argument_checks() -> None:
    with pytest.raises(ValueError):
        BCEDistillationLoss(kd_lambda=1.5)
    with pytest.raises(ValueError):
        BCEDistillationLoss(temperature=0.0)
    loss = BCEDistillationLoss()
    s = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="exactly one"):
        loss(s, s)
    with pytest.raises(ValueError, match="shapes"):
        loss(s, s, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="kd_weight"):
        loss(s, s, s, kd_weight=torch.ones(3))


def test_frame_logits_follow_pretrainedsed_formula():
    """PretrainedSED students: 0.9 BCE(student, sigmoid(ensemble)) + 0.1 BCE(student, labels) over (B, C, T)."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    student, ensemble = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    labels = (torch.rand(2, 5, 7, generator=g) > 0.7).float()
    out = BCEDistillationLoss(kd_lambda=0.1).components(student, labels, teacher_logits=ensemble)
    expected = (0.9 * F.binary_cross_entropy_with_logits(student, torch.sigmoid(ensemble))
                + 0.1 * F.binary_cross_entropy_with_logits(student, labels))
    torch.testing.assert_close(out["loss"], expected)
    weighted = BCEDistillationLoss(kd_lambda=0.1).components(student, labels, teacher_logits=ensemble,
                                                              kd_weight=torch.tensor([1.0, 0.0]))
    only_first = 0.9 * F.binary_cross_entropy_with_logits(student[0], torch.sigmoid(ensemble[0])) / 2
    torch.testing.assert_close(weighted["distillation_loss"], only_first)
