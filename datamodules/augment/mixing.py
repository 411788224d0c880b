"""Batch mixing (mixup) shared by spectrogram mixup, waveform mix, and the targets that must follow them."""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def draw_mix(batch_size: int, alpha: float, device: torch.device | str = "cpu",
             keep_larger: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mixing weights ``lam`` ~ Beta(alpha, alpha) per example (``max(l, 1 - l)`` if ``keep_larger``) and a batch
    permutation."""
    lam = torch.distributions.Beta(alpha, alpha).sample((batch_size,)).to(device)
    if keep_larger:
        lam = torch.maximum(lam, 1.0 - lam)
    return lam, torch.randperm(batch_size, device=device)


def mix(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``lam * x + (1 - lam) * x[perm]`` with ``lam`` broadcast over all but the batch axis."""
    lam = lam.to(x.dtype).view(-1, *[1] * (x.dim() - 1))
    return lam * x + (1.0 - lam) * x[perm]


class WaveformMix(torch.nn.Module):
    """Mixes zero-mean waveforms of a batch with probability ``p`` (one coin per batch), lambda ~ Beta(alpha, alpha).

    Returns the mixed batch and the (lam, perm) used, or ``None`` when not applied, so that targets can follow.

    Args:
        p: Probability of mixing a batch.
        alpha: Beta parameter (2: lambdas concentrate around 0.5).
    """

    def __init__(self, p: float = 0.5, alpha: float = 2.0) -> None:
        super().__init__()
        self.p, self.alpha = p, alpha

    def forward(self, wave: torch.Tensor) -> Tuple[torch.Tensor, Optional[Tuple[torch.Tensor, torch.Tensor]]]:
        if not self.training or self.p <= 0 or torch.rand(()) > self.p:
            return wave, None
        lam, perm = draw_mix(wave.shape[0], self.alpha, wave.device, keep_larger=False)
        wave = wave - wave.mean(dim=-1, keepdim=True)
        return mix(wave, lam, perm), (lam, perm)


def draw_group_mix(groups: torch.Tensor, p: float, alpha: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mixup inside groups of a batch (DCASE Task 4: each data source mixes only with itself).

    Every group (rows with equal ``groups`` value) is mixed with probability ``p``; a mixed group draws one
    ``c`` ~ Beta(alpha, alpha) and a permutation of its own rows. Rows of unmixed groups get ``lam = 1`` and
    themselves as partner, so ``mix(x, lam, perm)`` leaves them unchanged.

    Args:
        groups: (B,) integer group id of every row.
        p: Probability of mixing each group.
        alpha: Beta parameter (0.2 in the DCASE baselines).

    Returns:
        ``(lam, perm)`` for :func:`mix`.
    """
    batch = groups.shape[0]
    lam = torch.ones(batch, device=groups.device)
    perm = torch.arange(batch, device=groups.device)
    for group in torch.unique(groups):
        rows = torch.nonzero(groups == group).flatten()
        if rows.numel() < 2 or p <= 0 or float(torch.rand(())) >= p:
            continue
        lam[rows] = float(torch.distributions.Beta(alpha, alpha).sample())
        perm[rows] = rows[torch.randperm(rows.numel(), device=groups.device)]
    return lam, perm
