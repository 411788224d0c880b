"""SpecAugment-style frequency and time masking with an independent mask per example."""
from __future__ import annotations

import torch
from torch import nn


def mask_along_axis(x: torch.Tensor, max_width: int, axis: int, value: float = 0.0) -> torch.Tensor:
    """Masks one band per example along ``axis`` of ``x`` (B, ..., F, T).

    The band width is ``floor(u * max_width)`` and its start ``floor(v * (size - width))`` for uniform u, v, drawn
    independently per example (SpecAugment; torchaudio's ``iid_masks`` convention).
    """
    if max_width <= 0:
        return x
    size = x.shape[axis]
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    width = torch.rand(shape, device=x.device) * max_width
    start = torch.rand(shape, device=x.device) * (size - width)
    pos_shape = [1] * x.dim()
    pos_shape[axis] = size
    pos = torch.arange(size, device=x.device, dtype=width.dtype).view(pos_shape)
    mask = (pos >= start.floor()) & (pos < (start + width).floor())
    return x.masked_fill(mask, value)


class SpecMasking(nn.Module):
    """Frequency and time masks on (B, F, T) or (B, C, F, T), active in training mode only.

    Args:
        freqm: Maximum frequency-mask width in bins (0: none).
        timem: Maximum time-mask width in frames (0: none).
    """

    def __init__(self, freqm: int = 0, timem: int = 0) -> None:
        super().__init__()
        self.freqm = int(freqm)
        self.timem = int(timem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        x = mask_along_axis(x, self.freqm, axis=x.dim() - 2)
        return mask_along_axis(x, self.timem, axis=x.dim() - 1)
