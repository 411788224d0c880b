"""Knowledge distillation from stored teacher-ensemble predictions (CP-JKU's DCASE'23 Task 1 recipe).

Teacher predictions are stored per clip as ``log_softmax(teacher_logits / T)`` (:func:`teacher_log_probs`); the
student is trained on ``kd_lambda * CE(labels) + (1 - kd_lambda) * KD`` with ``kd_lambda = 0.02`` and
``KD = T^2 * mean over batch and classes of KL(teacher || student)`` at ``T = 2``. The ``T^2`` factor keeps the
gradient scale of the soft targets independent of the temperature.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn


def teacher_log_probs(teacher_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """The stored form of teacher predictions: ``log_softmax(logits / T)`` over the last axis, in float32."""
    return F.log_softmax(teacher_logits.float() / temperature, dim=-1)


def kl_distillation_loss(
    student_logits: torch.Tensor, teacher_log_p: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """``T^2 * mean_{b,c} p_t (log p_t - log p_s)`` with ``p = softmax(logits / T)``.

    Args:
        student_logits: (B, C) raw student logits.
        teacher_log_p: (B, C) teacher log-probabilities at temperature ``T`` (:func:`teacher_log_probs`).
        temperature: ``T``.

    Returns:
        Scalar loss. The mean runs over all B x C elements (``KLDivLoss(reduction="none").mean()``), not
        ``batchmean``: it is C times smaller than the per-example KL.
    """
    if student_logits.shape != teacher_log_p.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher log-probabilities "
                         f"{tuple(teacher_log_p.shape)} differ in shape")
    student_log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = F.kl_div(student_log_p, teacher_log_p.float(), reduction="none", log_target=True)
    return kl.mean() * temperature ** 2


class KLDistillationLoss(nn.Module):
    """:func:`kl_distillation_loss` as a module.

    Args:
        temperature: Softmax temperature ``T`` of student and (stored) teacher predictions.
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student_logits: torch.Tensor, teacher_log_p: torch.Tensor) -> torch.Tensor:
        return kl_distillation_loss(student_logits, teacher_log_p, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class DistillationLoss(nn.Module):
    """``kd_lambda * cross_entropy(logits, labels) + (1 - kd_lambda) * KD``.

    Args:
        kd_lambda: Weight of the label loss (0.02 in CP-JKU's recipe; 1 gives plain cross-entropy).
        temperature: Temperature ``T`` of the KD term; the teacher targets must be stored at the same ``T``.
    """

    def __init__(self, kd_lambda: float = 0.02, temperature: float = 2.0) -> None:
        super().__init__()
        if not 0.0 <= kd_lambda <= 1.0:
            raise ValueError(f"kd_lambda must be in [0, 1], got {kd_lambda}")
        self.kd_lambda = float(kd_lambda)
        self.kd = KLDistillationLoss(temperature)

    def terms(
        self, student_logits: torch.Tensor, labels: torch.Tensor, teacher_log_p: Optional[torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        """The weighted terms for logging: ``loss`` (their sum), ``label_loss`` and ``kd_loss``.

        ``teacher_log_p`` may be ``None`` only when ``kd_lambda == 1``.
        """
        label_loss = F.cross_entropy(student_logits.float(), labels)
        if self.kd_lambda == 1.0:
            zero = label_loss.new_zeros(())
            return {"loss": label_loss, "label_loss": label_loss, "kd_loss": zero}
        if teacher_log_p is None:
            raise ValueError("teacher log-probabilities are needed when kd_lambda < 1")
        weighted_label = self.kd_lambda * label_loss
        weighted_kd = (1.0 - self.kd_lambda) * self.kd(student_logits, teacher_log_p)
        return {"loss": weighted_label + weighted_kd, "label_loss": weighted_label, "kd_loss": weighted_kd}

    def forward(
        self, student_logits: torch.Tensor, labels: torch.Tensor, teacher_log_p: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Scalar total loss; see :meth:`terms`."""
        return self.terms(student_logits, labels, teacher_log_p)["loss"]

    def extra_repr(self) -> str:
        return f"kd_lambda={self.kd_lambda}, temperature={self.kd.temperature}"
