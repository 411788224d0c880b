"""The convolutional front of the DCASE Task 4 baseline CRNN: conv/BN/gating/dropout/pool blocks.

Module names reproduce the DESED baseline (``conv{i}``, ``batchnorm{i}``, ``glu{i}``, ``dropout{i}``,
``pooling{i}`` inside a ``cnn`` sequential), so published state dicts load without renaming.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn


class GLU(nn.Module):
    """The baseline's channel "GLU": a linear map over channels, gated by the sigmoid of the *input*.

    ``out = Linear_C(x) * sigmoid(x)``, the linear layer acting on the channel axis at every (time, freq) position.
    (Context gating, ``x * sigmoid(Linear_C(x))``, is the other arrangement; the DCASE'24 baseline uses this one.)

    Args:
        channels: Number of channels ``C`` of the (B, C, T, F) input.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) -> (B, C, T, F)."""
        lin = self.linear(x.movedim(1, -1)).movedim(-1, 1)
        return lin * torch.sigmoid(x)


class CNN(nn.Module):
    """Stack of blocks ``Conv2d -> BatchNorm2d -> GLU -> Dropout -> AvgPool2d`` on (B, C, time, freq) maps.

    Args:
        in_channels: Input channels (1 for a log-mel).
        channels: Output channels of each block.
        pooling: (time, freq) average-pooling kernel (= stride) of each block.
        dropout: Dropout probability after each gating.
        kernel_size: Square convolution kernel.
        padding: Convolution padding.
        bn_eps: BatchNorm epsilon.
        bn_momentum: BatchNorm momentum in PyTorch's sense (weight of the *new* batch statistic).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 128, 128, 128),
        pooling: Sequence[Sequence[int]] = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
        dropout: float = 0.2,
        kernel_size: int = 3,
        padding: int = 1,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.99,
    ) -> None:
        super().__init__()
        if len(channels) != len(pooling):
            raise ValueError(f"need one pooling per block: {len(channels)} channels, {len(pooling)} poolings")
        if any(len(p) != 2 for p in pooling):
            raise ValueError(f"every pooling must be a (time, freq) pair, got {pooling}")
        self.channels = [int(c) for c in channels]
        self.pooling = [(int(t), int(f)) for t, f in pooling]
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        c_in = in_channels
        for i, (c_out, pool) in enumerate(zip(self.channels, self.pooling)):
            layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size, stride=1, padding=padding)
            layers[f"batchnorm{i}"] = nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum)
            layers[f"glu{i}"] = GLU(c_out)
            layers[f"dropout{i}"] = nn.Dropout(dropout)
            layers[f"pooling{i}"] = nn.AvgPool2d(pool)
            c_in = c_out
        self.cnn = nn.Sequential(layers)

    @property
    def out_channels(self) -> int:
        """Channels of the last block."""
        return self.channels[-1]

    def output_size(self, n_frames: int, n_freq: int) -> tuple[int, int]:
        """(time, freq) size of the output map for an (n_frames, n_freq) input (pooling floors)."""
        for t, f in self.pooling:
            n_frames, n_freq = n_frames // t, n_freq // f
        return n_frames, n_freq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, F) -> (B, C_out, T', F')."""
        return self.cnn(x)
