"""Concurrent squeeze-excitation over channels, frequency and/or time (one SE per axis, fused element-wise)."""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from models.efficientat.layers import make_divisible

SE_AXES = {"c": 1, "f": 2, "t": 3}
SE_AGGREGATIONS = ("max", "avg", "add", "min")


class SqueezeExcitation(nn.Module):
    """Squeeze-excitation along one axis of a (B, C, F, T) map.

    The other two axes are averaged away, the remaining vector of length ``dim`` goes through
    Linear -> ReLU -> Linear -> Sigmoid, and the input is scaled by the result broadcast over the averaged axes.

    Args:
        dim: Size of the excited axis (channels, frequency bins or time frames of the input).
        squeeze_dim: Bottleneck width.
        axis: 1 (channels), 2 (frequency) or 3 (time).
    """

    def __init__(self, dim: int, squeeze_dim: int, axis: int) -> None:
        super().__init__()
        if axis not in (1, 2, 3):
            raise ValueError(f"axis must be 1, 2 or 3, got {axis}")
        self.dim, self.axis = dim, axis
        self.fc1 = nn.Linear(dim, squeeze_dim)
        self.fc2 = nn.Linear(squeeze_dim, dim)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Excitation weights, shaped to broadcast against ``x``."""
        if x.shape[self.axis] != self.dim:
            raise ValueError(
                f"squeeze-excitation over axis {self.axis} was built for size {self.dim}, got input {tuple(x.shape)}; "
                "frequency/time SE fixes the input size (set input_dim_f / input_dim_t)"
            )
        other = [a for a in (1, 2, 3) if a != self.axis]
        pooled = x.mean(dim=other, keepdim=True)
        shape = pooled.shape
        # A 2-D (B, dim) input keeps the Linear an addmm, which is what the MAC counts assume.
        s = self.fc2(self.activation(self.fc1(pooled.reshape(x.shape[0], self.dim))))
        return self.scale_activation(s).view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(x) * x


class ConcurrentSE(nn.Module):
    """One :class:`SqueezeExcitation` per letter of ``se_dims``; their outputs are fused by ``se_agg``.

    Args:
        channels: C of the input.
        freq: F of the input (used by an 'f' SE).
        time: T of the input (used by a 't' SE).
        se_dims: Any combination of 'c', 'f', 't'.
        se_agg: Fusion of the per-axis outputs: 'max', 'avg', 'add' or 'min'.
        se_r: Bottleneck reduction; the squeeze width is ``make_divisible(dim // se_r, 8)``.
    """

    def __init__(
        self, channels: int, freq: int, time: int, se_dims: str = "c", se_agg: str = "max", se_r: int = 4
    ) -> None:
        super().__init__()
        check_se_args(se_dims, se_agg)
        sizes = {"c": channels, "f": freq, "t": time}
        self.conc_se_layers = nn.ModuleList(
            SqueezeExcitation(sizes[d], make_divisible(sizes[d] // se_r, 8), SE_AXES[d]) for d in se_dims
        )
        self.se_agg = se_agg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: List[torch.Tensor] = [se(x) for se in self.conc_se_layers]
        if len(outs) == 1:
            return outs[0]
        stacked = torch.stack(outs, dim=0)
        if self.se_agg == "max":
            return stacked.amax(dim=0)
        if self.se_agg == "min":
            return stacked.amin(dim=0)
        if self.se_agg == "add":
            return stacked.sum(dim=0)
        return stacked.mean(dim=0)


def check_se_args(se_dims: str, se_agg: str) -> None:
    """Raises ``ValueError`` for an unknown axis letter, a repeated letter or an unknown aggregation."""
    if not se_dims or any(d not in SE_AXES for d in se_dims) or len(set(se_dims)) != len(se_dims):
        raise ValueError(f"se_dims must be distinct letters from 'cft' (or 'none'), got {se_dims!r}")
    if se_agg not in SE_AGGREGATIONS:
        raise ValueError(f"se_agg must be one of {SE_AGGREGATIONS}, got {se_agg!r}")
