"""Batch mixing (mixup) shared by spectrogram mixup, waveform mix, and the targets that must follow them."""
from __future__ import annotations

import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
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


def draw_baseline_group_mix(groups: Sequence[torch.Tensor], batch_size: int, p: float, alpha: float,
                            draws: int = 1, device: torch.device | str = "cpu"
                            ) -> Optional[List[Tuple[torch.Tensor, torch.Tensor]]]:
    """Mixup draws of the DCASE'24 Task 4 baseline (DESED_task ``mixup`` called once per group of rows).

    One coin per batch, ``random.random() < p`` (Python's generator, as the baseline); when it fails nothing else
    is drawn and ``None`` is returned. Otherwise, for every group in the given order and ``draws`` times per group
    (the baseline draws once for the features and once more for the embeddings): one scalar ``c`` ~ Beta(alpha,
    alpha) from NumPy's global generator (``c`` as drawn, no ``max(c, 1 - c)``), then ``torch.randperm`` of the
    group's rows (torch's CPU generator). Empty groups draw nothing.

    Args:
        groups: Disjoint 1-D tensors of the row indices of every group; rows in no group are never mixed.
        batch_size: Rows of the batch.
        p: Probability of mixing the batch.
        alpha: Beta parameter (0.2 in the baseline).
        draws: Draws per group.
        device: Device of the returned tensors.

    Returns:
        ``draws`` pairs ``(lam, perm)``, pair k gathering every group's k-th draw, for :func:`mix`: rows outside the
        groups get ``lam = 1`` and themselves as partner, so they pass bit-for-bit unchanged; or ``None``.
    """
    if not random.random() < p:
        return None
    out = [(torch.ones(batch_size), torch.arange(batch_size)) for _ in range(draws)]
    for rows in groups:
        rows = rows.cpu().long()
        if rows.numel() == 0:
            continue
        for lam, perm in out:
            lam[rows] = float(np.random.beta(alpha, alpha))
            perm[rows] = rows[torch.randperm(rows.numel())]
    return [(lam.to(device), perm.to(device)) for lam, perm in out]


class AugmentInputError(ValueError):
    """A batch or a tensor that must follow it has the wrong shape."""


Followers = Tuple[Optional[torch.Tensor], ...]


def check_followers(followers: Followers, batch: int) -> None:
    """Raises :class:`AugmentInputError` unless every tensor in ``followers`` (``None`` allowed) has ``batch`` rows."""
    for i, tensor in enumerate(followers):
        if tensor is not None and (tensor.dim() == 0 or tensor.shape[0] != batch):
            raise AugmentInputError(f"tensor {i + 1} that follows the batch: expected {batch} rows first, got shape "
                                    f"{tuple(tensor.shape)}")


def mix_followers(followers: Followers, lam: torch.Tensor, perm: torch.Tensor) -> Followers:
    """:func:`mix` applied to every tensor in ``followers`` (``None`` passes through)."""
    return tuple(None if t is None else mix(t, lam.to(t.device), perm.to(t.device)) for t in followers)


def draw_example_mix(batch_size: int, p: float, alpha: float,
                     keep_larger: bool = True) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example mixing draws: each row is mixed with probability ``p`` with a uniformly drawn partner.

    Draws, in this order, from torch's global CPU generator: ``torch.rand(B)`` (a row is mixed when its value is
    below ``p``), ``lam`` ~ Beta(alpha, alpha) per row (``max(l, 1 - l)`` if ``keep_larger``), the partners
    ``torch.randint(B, (B,))`` (drawn with replacement, so a row may be its own partner, as when the reference
    datasets draw a second clip uniformly). Unmixed rows get ``lam = 1`` and themselves as partner.

    Returns:
        ``(lam, partner, chosen)``: (B,) float, (B,) long and (B,) bool CPU tensors; ``mix(x, lam, partner)`` mixes.
    """
    chosen = torch.rand(batch_size) < p
    lam = torch.distributions.Beta(alpha, alpha).sample((batch_size,))
    if keep_larger:
        lam = torch.maximum(lam, 1.0 - lam)
    partner = torch.randint(batch_size, (batch_size,))
    rows = torch.arange(batch_size)
    return torch.where(chosen, lam, torch.ones(())), torch.where(chosen, partner, rows), chosen


def _checked_mix_args(p: float, alpha: float) -> float:
    """``p`` as a float after checking that it is a probability and ``alpha`` a valid Beta parameter."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    return float(p)


class ExampleWaveformMix(torch.nn.Module):
    """Wavmix of PretrainedSED / CP-JKU DCASE'24: each clip is mixed, with probability ``p``, with another clip.

    For a mixed row: both clips lose their mean, ``out = lam * x + (1 - lam) * x[partner]`` (zero mean), and every
    follower (frame targets (B, C, T), teacher probabilities, ...) gets the same convex combination
    ``lam * y + (1 - lam) * y[partner]`` (lambda-weighted, not max-combined, as in the references). Unmixed rows,
    and every row in eval mode, pass unchanged (their mean is kept). Draws: :func:`draw_example_mix`, one partner
    per row from the same batch (the references draw it from the whole dataset).
    Mix teacher *probabilities*, not logits: the references apply the sigmoid before mixing.

    Args:
        p: Probability of mixing each clip (PretrainedSED 0.8, CP-JKU DCASE'24 0.5).
        alpha: Beta(alpha, alpha) of the weight (PretrainedSED 2.0, CP-JKU DCASE'24 0.2).
        keep_larger: Use ``max(lam, 1 - lam)`` so the row's own clip dominates (both references do).
    """

    def __init__(self, p: float = 0.8, alpha: float = 2.0, keep_larger: bool = True) -> None:
        super().__init__()
        self.p, self.alpha, self.keep_larger = _checked_mix_args(p, alpha), float(alpha), bool(keep_larger)

    def forward(self, wave: torch.Tensor, *followers: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, Followers, Optional[Tuple[torch.Tensor, torch.Tensor]]]:
        """(B, n) or (B, 1, n) waveforms and the tensors that follow them -> ``(wave, followers, (lam, partner))``.

        ``(lam, partner)`` (on the waveform's device) is ``None`` when nothing was mixed.
        """
        if not self.training or self.p == 0.0:
            return wave, followers, None
        if not (wave.dim() == 2 or (wave.dim() == 3 and wave.shape[1] == 1)):
            raise AugmentInputError(f"waveform mix: expected (B, n) or (B, 1, n) waveforms, got shape "
                                    f"{tuple(wave.shape)}")
        check_followers(followers, wave.shape[0])
        lam, partner, chosen = draw_example_mix(wave.shape[0], self.p, self.alpha, self.keep_larger)
        if not bool(chosen.any()):
            return wave, followers, None
        lam, partner = lam.to(wave.device), partner.to(wave.device)
        centred = wave - wave.mean(dim=-1, keepdim=True)
        keep = (~chosen).to(wave.device).view(-1, *[1] * (wave.dim() - 1))
        out = torch.where(keep, wave, mix(centred, lam, partner))
        return out, mix_followers(followers, lam, partner), (lam, partner)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, keep_larger={self.keep_larger}"


class Mixup(torch.nn.Module):
    """Batch mixup with the tensors that must follow (PretrainedSED / CP-JKU ``mixup``, 'soft' labels).

    One coin per batch ``torch.rand(())`` (skipped when it is not below ``p``), then :func:`draw_mix` on the CPU
    generator: ``lam`` ~ Beta(alpha, alpha) per row (``max(l, 1 - l)`` if ``keep_larger``) and a permutation.
    The input (spectrograms (B, C, F, T), waveforms, embeddings: any (B, ...)) and every follower get
    ``lam * y + (1 - lam) * y[perm]``: targets are convex combinations (the references' clamp to [0, 1] changes
    nothing for targets in [0, 1]). The returned ``(lam, perm)`` lets the caller mix more tensors the same way
    (e.g. teacher outputs for interpolation consistency training).

    Args:
        p: Probability of mixing a batch (PretrainedSED 0.3, CP-JKU DCASE'24 0.5).
        alpha: Beta(alpha, alpha) of the weights (0.2 in both).
        keep_larger: ``max(lam, 1 - lam)`` (PretrainedSED always; CP-JKU DCASE'24 ``mixup_max_coef=True``).
    """

    def __init__(self, p: float = 0.3, alpha: float = 0.2, keep_larger: bool = True) -> None:
        super().__init__()
        self.p, self.alpha, self.keep_larger = _checked_mix_args(p, alpha), float(alpha), bool(keep_larger)

    def forward(self, x: torch.Tensor, *followers: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, Followers, Optional[Tuple[torch.Tensor, torch.Tensor]]]:
        """(B, ...) batch and the tensors that follow it -> ``(x, followers, (lam, perm) or None)``."""
        if not self.training or self.p == 0.0:
            return x, followers, None
        check_followers(followers, x.shape[0])
        if float(torch.rand(())) >= self.p:
            return x, followers, None
        lam, perm = draw_mix(x.shape[0], self.alpha, "cpu", keep_larger=self.keep_larger)
        lam, perm = lam.to(x.device), perm.to(x.device)
        return mix(x, lam, perm), mix_followers(followers, lam, perm), (lam, perm)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, keep_larger={self.keep_larger}"
