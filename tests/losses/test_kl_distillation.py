"""KD loss of CP-JKU's DCASE'23 recipe against a hand computation."""
import math

import pytest
import torch

from losses.kl_distillation import (
    DistillationLoss, KLDistillationLoss, kl_distillation_loss, teacher_log_probs,
)


def _softmax(row, t):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def test_kl_against_hand_computation():
    student = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    teacher = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    t = 2.0
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        ps, pt = _softmax(s_row, t), _softmax(t_row, t)
        total += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    expected = total / 6 * t * t  # mean over batch x classes, times T^2
    got = kl_distillation_loss(torch.tensor(student), teacher_log_probs(torch.tensor(teacher), t), t)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert KLDistillationLoss(t)(torch.tensor(student), teacher_log_probs(torch.tensor(teacher), t)).item() == \
        pytest.approx(expected, rel=1e-5)


def test_kl_is_zero_for_identical_predictions():
    logits = torch.randn(4, 10)
    assert kl_distillation_loss(logits, teacher_log_probs(logits)).abs().item() < 1e-6


def test_combined_loss_weights():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    loss = DistillationLoss(kd_lambda=0.02, temperature=2.0)
    terms = loss.terms(student, labels, teacher_log_probs(teacher, 2.0))
    ce = torch.nn.functional.cross_entropy(student, labels)
    kd = kl_distillation_loss(student, teacher_log_probs(teacher, 2.0), 2.0)
    torch.testing.assert_close(terms["loss"], 0.02 * ce + 0.98 * kd)
    torch.testing.assert_close(terms["label_loss"], 0.02 * ce)
    torch.testing.assert_close(terms["kd_loss"], 0.98 * kd)
    torch.testing.assert_close(loss(student, labels, teacher_log_probs(teacher, 2.0)), terms["loss"])


def test_lambda_one_is_plain_cross_entropy_without_teacher():
    student, labels = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(DistillationLoss(kd_lambda=1.0)(student, labels),
                               torch.nn.functional.cross_entropy(student, labels))
    with pytest.raises(ValueError):
        DistillationLoss()(student, labels)


def test_gradient_flows_to_student_only():
    student = torch.randn(4, 10, requires_grad=True)
    target = teacher_log_probs(torch.randn(4, 10))
    DistillationLoss()(student, torch.zeros(4, dtype=torch.long), target).backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_shape_mismatch_and_bad_arguments():
    with pytest.raises(ValueError):
        kl_distillation_loss(torch.randn(2, 10), torch.randn(2, 9))
    with pytest.raises(ValueError):
        DistillationLoss(kd_lambda=1.5)
    with pytest.raises(ValueError):
        KLDistillationLoss(temperature=0.0)
