"""Binary cross-entropy over the known entries of a target only.

Two tasks need it: OpenMIC tagging (each clip labels only some of the 20 instruments; the targets are soft) and
sound event detection on mixed sources (a DESED clip says nothing about MAESTRO classes and vice versa;
specs/sed.md "Every sample carries a valid-class mask").

Masked entries contribute nothing. ``normalize="all"`` divides by every entry, which equals zeroing both
prediction and target of the masked entries in an unmasked BCE on probabilities (what the DCASE baselines do);
``normalize="valid"`` divides by the number of known entries (a plain mean over what is known).
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

Normalize = Literal["all", "valid"]


def masked_bce(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    logits: bool = True,
    normalize: Normalize = "all",
) -> torch.Tensor:
    """Mean BCE of the entries where ``mask`` is true.

    Args:
        prediction: Logits (``logits=True``) or probabilities, any shape.
        target: Targets in [0, 1] (soft labels allowed), same shape as ``prediction``.
        mask: Booleans broadcastable to ``prediction`` (e.g. (B, C) against (B, C, T) after ``unsqueeze(-1)``);
            None: every entry is known.
        logits: Whether ``prediction`` holds logits.
        normalize: ``"all"``: divide by the number of entries; ``"valid"``: by the number of known entries.

    Returns:
        The scalar loss (0 when nothing is known).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    if normalize not in ("all", "valid"):
        raise ValueError(f"normalize must be 'all' or 'valid', got {normalize!r}")
    target = target.to(prediction.dtype)
    if logits:
        loss = F.binary_cross_entropy_with_logits(prediction, target, reduction="none")
    else:
        loss = F.binary_cross_entropy(prediction, target, reduction="none")
    if mask is None:
        return loss.mean()
    weight = torch.broadcast_to(mask, loss.shape).to(loss.dtype)
    denominator = weight.numel() if normalize == "all" else weight.sum().clamp_min(1.0)
    return (loss * weight).sum() / denominator


class MaskedBCELoss(nn.Module):
    """:func:`masked_bce` as a module.

    Args:
        logits: Whether predictions are logits (else probabilities).
        normalize: ``"all"`` or ``"valid"`` (see :func:`masked_bce`).
    """

    def __init__(self, logits: bool = True, normalize: Normalize = "all") -> None:
        super().__init__()
        self.logits = logits
        self.normalize = normalize

    def forward(self, prediction: torch.Tensor, target: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return masked_bce(prediction, target, mask, logits=self.logits, normalize=self.normalize)
