"""Waveform batch augmentations: random circular time shift and random gain, active in training mode only.

Both take (B, n) or (B, C, n) batches and draw one value per example from torch's global CPU generator, so a seed
reproduces them on any device.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn

from datamodules.augment.frame_shift import roll_rows


class Roll(nn.Module):
    """Circular shift of every example by an integer drawn uniformly from ``[-max_shift, max_shift]``.

    ``out[..., i] = x[..., (i - shift) mod n]`` (``torch.roll`` per example). The shift is in samples at the rate
    of the signal it is applied to: the DCASE'24 baseline rolls the 44.1 kHz stored clips by up to 4410 samples
    (0.1 s) before resampling.

    Args:
        max_shift: Largest shift in samples (0: identity).
    """

    def __init__(self, max_shift: int = 4410) -> None:
        super().__init__()
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_shift == 0:
            return x
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (x.shape[0],))
        return roll_rows(x, shifts)

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}"


class Gain(nn.Module):
    """Multiplies every example by ``10 ** (g / 20)`` with ``g`` drawn uniformly from ``db_range`` (in dB).

    Args:
        db_range: (low, high) in dB, or a single value ``r`` meaning (-r, r).
    """

    def __init__(self, db_range: Union[float, Tuple[float, float]] = (-6.0, 6.0)) -> None:
        super().__init__()
        low, high = (-abs(float(db_range)), abs(float(db_range))) if isinstance(db_range, (int, float)) \
            else (float(db_range[0]), float(db_range[1]))
        if low > high:
            raise ValueError(f"db_range must be (low, high) with low <= high, got {db_range}")
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.low == self.high == 0.0:
            return x
        gain_db = self.low + (self.high - self.low) * torch.rand(x.shape[0])
        gain = (10.0 ** (gain_db / 20.0)).to(device=x.device, dtype=x.dtype)
        return x * gain.view(-1, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"db_range=({self.low}, {self.high})"
