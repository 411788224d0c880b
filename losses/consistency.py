"""Mean-teacher consistency: squared error between student and teacher outputs over the valid classes
(specs/sed.md "Mean teacher"); the teacher is a target, never a gradient path."""
from __future__ import annotations

import torch


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``student`` against the detached ``teacher`` where ``mask`` is true.

    Masked entries count as zero and the mean runs over every entry, as when both outputs are zeroed there (the
    convention of :func:`losses.masked_bce.masked_bce` with ``normalize="all"``).

    Args:
        student: Student outputs (e.g. (B, C, T) frame or (B, C) clip probabilities).
        teacher: Teacher outputs of the same shape.
        mask: Booleans broadcastable to ``student`` (e.g. (B, C, 1) for frames).
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ in shape")
    weight = torch.broadcast_to(mask, student.shape).to(student.dtype)
    return ((student - teacher.detach()) ** 2 * weight).mean()
