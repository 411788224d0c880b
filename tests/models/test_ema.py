"""The mean teacher's moving average against a hand computation."""
import pytest
import torch
from torch import nn

from models.ema import EMATeacher


def test_alpha_schedule_and_average_follow_the_baseline_formula():
    student = nn.Linear(3, 2)
    teacher = EMATeacher(student, max_alpha=0.999)
    assert [teacher.alpha(t) for t in (0, 1, 3, 10_000)] == [0.0, 0.5, 0.75, 0.999]
    before = teacher.model.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    teacher.update(student, step=3)
    torch.testing.assert_close(teacher.model.weight, 0.75 * before + 0.25 * student.weight)
    teacher.update(student, step=0)  # alpha 0: a copy
    torch.testing.assert_close(teacher.model.weight, student.weight)


def test_teacher_is_frozen_and_gives_no_gradient():
    student = nn.Linear(3, 2)
    teacher = EMATeacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    out = teacher(torch.randn(4, 3))
    assert not out.requires_grad
    with pytest.raises(ValueError, match="max_alpha"):
        EMATeacher(student, max_alpha=1.0)
