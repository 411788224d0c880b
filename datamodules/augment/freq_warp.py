"""Frequency warping of PretrainedSED / CP-JKU DCASE'24: a random band of mel bins is resized to the full axis.

The references use a random-resize-crop restricted to frequency (``RandomResizeCrop((1, 1.0), time_scale=(1.0,
1.0))``, i.e. freq_scale (0.6, 1.0)): a contiguous band of ``h = int(u * F)`` bins, ``u`` uniform in
``freq_scale``, starting at a uniform bin, is interpolated back to ``F`` bins (bicubic, ``align_corners=True``;
the time axis keeps its size, so it is left exactly as it was). With the canvas equal to the input this only
stretches (zooms into) the spectrum; a canvas larger than the input (``canvas_scale > 1``, the input centred on
``pad_value``) and ``freq_scale`` above 1 also squeeze it. One draw per batch, as in the references.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.augment.mixing import AugmentInputError


def warp_frequency(x: torch.Tensor, start: int, height: int, canvas: int, pad_value: float = 0.0) -> torch.Tensor:
    """Bins ``start:start + height`` of ``x`` (B, C, F, T) centred on a ``canvas``-bin axis, resized to ``F`` bins.

    Bicubic interpolation with ``align_corners=True`` over frequency; the time axis is unchanged.
    """
    n_freq, n_time = x.shape[2], x.shape[3]
    if canvas > n_freq:
        below = (canvas - n_freq) // 2
        x = F.pad(x, (0, 0, below, canvas - n_freq - below), value=pad_value)
    crop = x[:, :, start:start + height]
    if height == n_freq:
        return crop
    dtype = crop.dtype
    out = F.interpolate(crop.float() if dtype in (torch.float16, torch.bfloat16) else crop, size=(n_freq, n_time),
                        mode="bicubic", align_corners=True)
    return out.to(dtype)


class FrequencyWarp(nn.Module):
    """Random frequency stretch (or squeeze) of (B, C, F, T) features, in training mode only.

    Random draws from torch's global CPU generator, in this order: one coin ``torch.rand(())`` per batch (applied
    when below ``p``), ``u = low + (high - low) * torch.rand(())``, the band height ``h = clamp(int(u * F), 1,
    canvas)`` with ``canvas = int(F * canvas_scale)``, then its first bin ``torch.randint(canvas - h + 1, ())``.
    ``freq_scale=(1, 1)`` with ``canvas_scale=1`` is the identity.

    Args:
        p: Probability of warping a batch (PretrainedSED 0.8, CP-JKU DCASE'24 stage 2: 0.5).
        freq_scale: (low, high) band height as a fraction of the bins (the references: (0.6, 1.0)).
        canvas_scale: Height of the zero-padded canvas the band is cut from, as a fraction of the bins (>= 1;
            the references: 1.0).
        pad_value: Value of the canvas around the input (0 as in the references' RandomResizeCrop).
    """

    def __init__(self, p: float = 0.8, freq_scale: Tuple[float, float] = (0.6, 1.0), canvas_scale: float = 1.0,
                 pad_value: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if not 0.0 < freq_scale[0] <= freq_scale[1]:
            raise ValueError(f"freq_scale must be (low, high) with 0 < low <= high, got {freq_scale}")
        if canvas_scale < 1.0:
            raise ValueError(f"canvas_scale must be >= 1, got {canvas_scale}")
        self.p, self.freq_scale = float(p), (float(freq_scale[0]), float(freq_scale[1]))
        self.canvas_scale, self.pad_value = float(canvas_scale), float(pad_value)

    def draw(self, n_freq: int) -> Tuple[int, int, int]:
        """``(start, height, canvas)`` in bins for one batch (the draws after the coin)."""
        low, high = self.freq_scale
        canvas = max(int(n_freq * self.canvas_scale), n_freq)
        scale = low + (high - low) * float(torch.rand(()))
        height = min(max(int(scale * n_freq), 1), canvas)
        start = int(torch.randint(canvas - height + 1, ()))
        return start, height, canvas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) features -> warped features of the same shape and dtype."""
        if not self.training or self.p == 0.0:
            return x
        if x.dim() != 4:
            raise AugmentInputError(f"frequency warp: expected (B, C, F, T) features, got shape {tuple(x.shape)}")
        if float(torch.rand(())) >= self.p:
            return x
        start, height, canvas = self.draw(x.shape[2])
        if height == canvas == x.shape[2]:
            return x
        return warp_frequency(x, start, height, canvas, self.pad_value)

    def extra_repr(self) -> str:
        return f"p={self.p}, freq_scale={self.freq_scale}, canvas_scale={self.canvas_scale}, " \
               f"pad_value={self.pad_value}"
