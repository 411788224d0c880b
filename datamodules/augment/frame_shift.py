"""Frame shift (PretrainedSED / CP-JKU DCASE'24): a random circular time shift of every example of a batch, with
its frame targets (and teacher outputs, embeddings, ...) rolled by the same duration.

The references roll the mel spectrogram of each clip by ``s = int(gauss(0, int(0.125 * T_mel)))`` mel frames
(``torch.roll``: circular, no padding) and the labels by ``round(s / 4)`` label frames, so the labels can lag the
audio by up to two mel frames. Here the shift is drawn as a whole number ``k`` of target frames and every tensor is
rolled by ``round(k * L / T)`` of its own ``L`` time steps (``T``: the targets' frames), so audio and targets stay
aligned exactly whenever ``L`` is a multiple of ``T``: 160000 samples / 250 frames = 640 samples (40 ms at 16 kHz),
1000 mel frames / 250 = 4. Otherwise a tensor is off by less than half of one of its own steps.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from datamodules.augment.mixing import AugmentInputError, Followers, check_followers


def roll_rows(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circular shift of the last axis of each row: ``out[b, ..., i] = x[b, ..., (i - shifts[b]) mod L]``."""
    length = x.shape[-1]
    index = (torch.arange(length, device=x.device).unsqueeze(0) - shifts.to(x.device).unsqueeze(1)) % length
    index = index.view(x.shape[0], *([1] * (x.dim() - 2)), length).expand_as(x)
    return torch.gather(x, -1, index)


def shift_by_frames(x: torch.Tensor, frames: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Rolls each row of ``x`` (B, ..., L) by ``round(frames[b] * L / n_frames)`` steps of its last axis.

    Args:
        x: Any tensor whose last axis is time over the same clip duration as ``n_frames`` target frames.
        frames: (B,) integer shifts in target frames (positive: later in time).
        n_frames: Number of target frames spanning the clip.
    """
    steps = torch.round(frames.double() * x.shape[-1] / n_frames).long()
    return roll_rows(x, steps)


class FrameShift(nn.Module):
    """Random circular time shift of a batch and of the frame-level tensors that must follow it.

    Random draws from torch's global CPU generator, in this order: one coin ``torch.rand(())`` per batch (skipped
    unless below ``p``), then ``torch.randn(B)``; example ``b`` is shifted by ``k_b = round(randn_b * shift_std *
    T)`` target frames (``T``: frames of the targets, the first follower), which may exceed the clip length (the
    roll is circular). Identity in eval mode and when ``p`` or ``shift_std`` is 0.

    Args:
        shift_std: Standard deviation of the shift as a fraction of the clip length (the references'
            ``shift_range``: PretrainedSED 0.125, i.e. 1.25 s for 10 s clips; CP-JKU DCASE'24 0.075, off in stage 2).
        p: Probability of shifting a batch (the references always shift: 1.0).
    """

    def __init__(self, shift_std: float = 0.125, p: float = 1.0) -> None:
        super().__init__()
        if shift_std < 0:
            raise ValueError(f"shift_std must be >= 0, got {shift_std}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.shift_std, self.p = float(shift_std), float(p)

    def forward(self, x: torch.Tensor, targets: torch.Tensor, *followers: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, Followers, Optional[torch.Tensor]]:
        """Shifts ``x`` (waveforms (B, n) / (B, 1, n), spectrograms (B, C, F, T'), ...: time last), ``targets``
        (B, C, T) and every further follower (time last, ``None`` passes) consistently.

        Returns:
            ``(x, (targets, *followers), frames)`` with ``frames`` the (B,) CPU shifts in target frames, or ``None``
            when nothing was shifted (then every tensor is returned as given).
        """
        tensors = (targets, *followers)
        if not self.training or self.p == 0.0 or self.shift_std == 0.0:
            return x, tensors, None
        if x.dim() < 2 or targets is None or targets.dim() < 2:
            raise AugmentInputError(f"frame shift: expected a (B, ..., time) batch and (B, C, frames) targets, got "
                                    f"shapes {tuple(x.shape)} and {None if targets is None else tuple(targets.shape)}")
        check_followers(tensors, x.shape[0])
        if float(torch.rand(())) >= self.p:
            return x, tensors, None
        n_frames = targets.shape[-1]
        frames = torch.round(torch.randn(x.shape[0]) * (self.shift_std * n_frames)).long()
        shifted = tuple(None if t is None else shift_by_frames(t, frames, n_frames) for t in tensors)
        return shift_by_frames(x, frames, n_frames), shifted, frames

    def extra_repr(self) -> str:
        return f"shift_std={self.shift_std}, p={self.p}"
