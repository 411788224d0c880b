"""Freq-MixStyle: mixes per-frequency-bin statistics between examples to simulate other recording devices.

A device's frequency response shows up as a per-bin offset and scale of the log-mel spectrogram. Each example is
normalised per frequency bin (statistics over channel and time), then de-normalised with a convex mix of its own
and another example's statistics (Kim et al. 2022; the DCASE'24 Task 1 baseline uses p 0.4, alpha 0.3).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Beta


def mix_frequency_statistics(
    x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """The deterministic core of Freq-MixStyle.

    Args:
        x: (B, C, F, T) log-mel batch.
        lam: (B,) mixing weights of each example's own statistics.
        perm: (B,) index of the example whose statistics are mixed in.
        eps: Added to the variance before the square root.

    Returns:
        ``(x - mu) / sigma * sigma_mix + mu_mix`` with ``mu``, ``sigma`` the mean and standard deviation (unbiased
        variance) over channel and time per example and bin, detached from the graph, and
        ``stat_mix = lam * stat + (1 - lam) * stat[perm]``.
    """
    mu = x.mean(dim=(1, 3), keepdim=True).detach()
    sigma = (x.var(dim=(1, 3), keepdim=True, unbiased=True) + eps).sqrt().detach()
    lam = lam.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    perm = perm.to(x.device)
    mu_mix = lam * mu + (1.0 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1.0 - lam) * sigma[perm]
    return (x - mu) / sigma * sigma_mix + mu_mix


class FreqMixStyle(nn.Module):
    """Freq-MixStyle on (B, C, F, T) log-mel batches, active in training mode only.

    Random draws, in this order, from torch's global CPU generator (so a seed reproduces them on any device):
    one coin ``torch.rand(1)`` per batch (the batch is returned unchanged when it exceeds ``p``), then
    ``lam ~ Beta(alpha, alpha)`` per example, then ``torch.randperm(B)``.

    Args:
        p: Probability of mixing a batch.
        alpha: Concentration of the symmetric Beta distribution of the mixing weights.
        eps: Added to the variance before the square root.
        keep_larger: Use ``max(lam, 1 - lam)``, so each example keeps most of its own statistics (PretrainedSED's
            mixstyle: alpha 0.4, statistics over time per bin, which is the same for one-channel inputs).
    """

    def __init__(self, p: float = 0.4, alpha: float = 0.3, eps: float = 1e-6, keep_larger: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.p, self.alpha, self.eps, self.keep_larger = float(p), float(alpha), float(eps), bool(keep_larger)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.dim() != 4:
            raise ValueError(f"expected a (B, C, F, T) batch, got shape {tuple(x.shape)}")
        if torch.rand(1).item() > self.p:
            return x
        batch = x.shape[0]
        lam = Beta(torch.tensor(self.alpha), torch.tensor(self.alpha)).sample((batch,))
        if self.keep_larger:
            lam = torch.maximum(lam, 1.0 - lam)
        perm = torch.randperm(batch)
        return mix_frequency_statistics(x, lam, perm, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}, keep_larger={self.keep_larger}"
