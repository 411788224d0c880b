"""The MobileNetV3 inverted-residual block: expand (1x1), depthwise, optional SE, project (1x1), residual."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from models.efficientat.config import BlockConfig
from models.efficientat.layers import activation_layer, conv_bn_act
from models.efficientat.se import ConcurrentSE


class InvertedResidual(nn.Module):
    """One block; its layers live in ``self.block`` so the keys read ``block.<i>.<j>`` as published.

    A block whose expanded width equals its input has no expansion conv, which shifts the indices after it.

    Args:
        cnf: Resolved block settings.
        se_dims: Squeeze-excitation axes for blocks with ``cnf.use_se`` (``None``: no SE anywhere).
        se_agg: Fusion of concurrent SE outputs.
        se_r: SE bottleneck reduction.
    """

    def __init__(self, cnf: BlockConfig, se_dims: Optional[str] = "c", se_agg: str = "max", se_r: int = 4) -> None:
        super().__init__()
        act = activation_layer(cnf.activation)
        layers: list[nn.Module] = []
        if cnf.has_expansion:
            layers.append(conv_bn_act(cnf.in_channels, cnf.expanded_channels, 1, activation=act))
        layers.append(
            conv_bn_act(
                cnf.expanded_channels, cnf.expanded_channels, cnf.kernel, stride=cnf.stride, dilation=cnf.dilation,
                groups=cnf.expanded_channels, activation=act,
            )
        )
        if cnf.use_se and se_dims is not None:
            layers.append(ConcurrentSE(cnf.expanded_channels, cnf.out_f, cnf.out_t, se_dims, se_agg, se_r))
        layers.append(conv_bn_act(cnf.expanded_channels, cnf.out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = cnf.use_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out
