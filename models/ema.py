"""The mean teacher: an exponential moving average of a student network (Tarvainen & Valpola, 2017), as the
DCASE Task 4 baselines use it (specs/sed.md "Mean teacher").

At every training batch, with ``t`` the baseline scheduler's counter (1 at the first batch) and before the optimiser
changes the student (the SED task calls it from ``on_before_optimizer_step``, as the baseline's
``on_before_zero_grad``)::

    alpha = min(1 - 1 / (t + 1), max_alpha)
    teacher_param = alpha * teacher_param + (1 - alpha) * student_param

so the teacher starts as a copy of the student (alpha 0.5 of two equal copies), lags it by one step, and averages
over ~1 / (1 - max_alpha) steps later on. Only the
parameters are averaged; buffers (batch-norm statistics) are the teacher's own, updated by its own forward passes
in training mode, as in the baseline. The teacher is a submodule of the task, so its parameters and buffers are in
every checkpoint, and a resumed fit continues it (with the restored global step) exactly.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMATeacher(nn.Module):
    """A frozen copy of ``student`` updated as its exponential moving average.

    Args:
        student: The network to follow (copied once; its parameters are then read on every update).
        max_alpha: Upper bound of the averaging coefficient (0.999 in the DCASE'24 baseline).
    """

    def __init__(self, student: nn.Module, max_alpha: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= max_alpha < 1.0:
            raise ValueError(f"max_alpha must lie in [0, 1), got {max_alpha}")
        self.model = copy.deepcopy(student)
        self.max_alpha = float(max_alpha)
        for param in self.model.parameters():
            param.requires_grad_(False)

    def alpha(self, step: int) -> float:
        """The averaging coefficient after optimiser step ``step``."""
        return min(1.0 - 1.0 / (step + 1), self.max_alpha)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> float:
        """Moves the teacher towards ``student``; returns the coefficient used."""
        alpha = self.alpha(step)
        mine, theirs = list(self.model.parameters()), list(student.parameters())
        if len(mine) != len(theirs):
            raise ValueError(f"student has {len(theirs)} parameter tensors, the teacher {len(mine)}")
        torch._foreach_mul_(mine, alpha)
        torch._foreach_add_(mine, [p.detach().to(m.dtype) for p, m in zip(theirs, mine)], alpha=1.0 - alpha)
        return alpha

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.model(*args, **kwargs)
