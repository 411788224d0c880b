"""Knowledge distillation with binary cross-entropy for multi-label tagging (specs/tagging.md, "Knowledge
distillation"): the student fits the labels and the teacher's sigmoid outputs at once.

    loss = kd_lambda * BCE(student, labels) + (1 - kd_lambda) * mean_b(w_b * BCE_b(student, sigmoid(teacher / T)))

``w_b`` is a per-clip KD weight: 0 for clips without a teacher row, so they learn from their labels only.
Every BCE is averaged over classes, then over the batch (the per-element mean of the reference recipe).

Mixup: BCE is linear in its target, so mixing targets equals mixing the two losses. The caller mixes the labels
and the teacher *probabilities* (:meth:`BCEDistillationLoss.teacher_targets` of each clip, combined with the same
lambda and permutation as the inputs) and passes them as ``teacher_probs``; mixing teacher logits instead would
change the target.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn


class BCEDistillationLoss(nn.Module):
    """Label BCE plus teacher BCE, weighted by ``kd_lambda``.

    Args:
        kd_lambda: Weight of the label loss; the distillation loss gets ``1 - kd_lambda``.
        temperature: Teacher logits are divided by it before the sigmoid.
    """

    def __init__(self, kd_lambda: float = 0.1, temperature: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= kd_lambda <= 1.0:
            raise ValueError(f"kd_lambda must lie in [0, 1], got {kd_lambda}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.kd_lambda = kd_lambda
        self.temperature = temperature

    def teacher_targets(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Soft targets ``sigmoid(teacher_logits / T)`` (what mixup should mix)."""
        return torch.sigmoid(teacher_logits.detach() / self.temperature)

    def components(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: Optional[torch.Tensor] = None,
        kd_weight: Optional[torch.Tensor] = None,
        teacher_probs: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """The weighted label and distillation terms and their sum (``loss``), for logging.

        Args:
            student_logits: (B, C) clip logits, or (B, C, T) frame logits (PretrainedSED's strong students).
            labels: Targets in [0, 1] of the same shape (mixed or smoothed labels allowed).
            teacher_logits: Teacher logits of the same shape; converted with :meth:`teacher_targets`.
            kd_weight: (B,) per-clip weight of the distillation term (0: no teacher row). Default: all ones.
            teacher_probs: Ready soft targets in [0, 1] instead of ``teacher_logits`` (e.g. mixed ones).
        """
        if (teacher_logits is None) == (teacher_probs is None):
            raise ValueError("pass exactly one of teacher_logits and teacher_probs")
        targets = self.teacher_targets(teacher_logits) if teacher_probs is None else teacher_probs.detach()
        if targets.shape != student_logits.shape or labels.shape != student_logits.shape:
            raise ValueError(
                f"shapes differ: student {tuple(student_logits.shape)}, labels {tuple(labels.shape)}, "
                f"teacher {tuple(targets.shape)}"
            )
        label_loss = F.binary_cross_entropy_with_logits(student_logits, labels.to(student_logits.dtype))
        per_clip = F.binary_cross_entropy_with_logits(
            student_logits, targets.to(student_logits.dtype), reduction="none"
        ).flatten(1).mean(dim=1)
        if kd_weight is not None:
            if kd_weight.shape != per_clip.shape:
                raise ValueError(f"kd_weight must have shape ({per_clip.shape[0]},), got {tuple(kd_weight.shape)}")
            per_clip = per_clip * kd_weight.to(per_clip.dtype)
        label_term = self.kd_lambda * label_loss
        kd_term = (1.0 - self.kd_lambda) * per_clip.mean()
        return {"label_loss": label_term, "distillation_loss": kd_term, "loss": label_term + kd_term}

    def forward(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: Optional[torch.Tensor] = None,
        kd_weight: Optional[torch.Tensor] = None,
        teacher_probs: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Scalar loss; arguments as in :meth:`components`."""
        return self.components(student_logits, labels, teacher_logits, kd_weight, teacher_probs)["loss"]
