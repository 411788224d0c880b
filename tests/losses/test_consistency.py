"""Consistency MSE against a hand computation; the teacher gets no gradient."""
import pytest
import torch

from losses.consistency import masked_mse


def test_masked_mse_by_hand_and_teacher_detached():
    student = torch.tensor([[0.2, 0.9], [0.5, 0.1]], requires_grad=True)
    teacher = torch.tensor([[0.4, 0.0], [0.5, 0.6]], requires_grad=True)
    mask = torch.tensor([[True, False], [True, True]])
    loss = masked_mse(student, teacher, mask)
    assert loss.item() == pytest.approx((0.2 ** 2 + 0.0 + 0.5 ** 2) / 4)
    loss.backward()
    assert teacher.grad is None and student.grad[0, 1] == 0
    with pytest.raises(ValueError, match="differ in shape"):
        masked_mse(student, teacher[:1], mask)
