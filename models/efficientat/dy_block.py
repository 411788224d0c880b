"""The dynamic inverted-residual block of DyMN."""
from __future__ import annotations

import torch
from torch import nn

from models.efficientat.config import BlockConfig
from models.efficientat.dynamic import ContextGenerator, DynamicConv, DyReLUB, coordinate_attention
from models.efficientat.layers import BatchNorm, activation_layer, make_divisible


def context_size(
    expanded_channels: int, width_mult: float, ratio: int = 4, min_size: int = 32, max_size: int = 128
) -> int:
    """H = clip(make_divisible(C_exp // ratio, 8), make_divisible(min_size * w, 8), make_divisible(max_size * w, 8))."""
    low, high = make_divisible(min_size * width_mult, 8), make_divisible(max_size * width_mult, 8)
    return min(max(make_divisible(expanded_channels // ratio, 8), low), high)


class DynamicInvertedResidual(nn.Module):
    """Context generator -> dynamic 1x1 expansion, BN, activation -> dynamic depthwise, BN, DyReLU-B ->
    coordinate attention -> dynamic 1x1 projection, BN -> residual.

    Args:
        cnf: Resolved block settings.
        context_ratio: H is ``C_exp // context_ratio`` before clipping.
        min_context_size: Lower clip of H at width 1.
        max_context_size: Upper clip of H at width 1.
        num_kernels: K of every dynamic conv.
        dyrelu_maps: M of DyReLU-B.
        temperature: Initial kernel-attention temperature.
    """

    def __init__(
        self,
        cnf: BlockConfig,
        context_ratio: int = 4,
        min_context_size: int = 32,
        max_context_size: int = 128,
        num_kernels: int = 4,
        dyrelu_maps: int = 2,
        temperature: float = 30.0,
    ) -> None:
        super().__init__()
        h = context_size(cnf.expanded_channels, cnf.width_mult, context_ratio, min_context_size, max_context_size)
        self.context_dim = h
        c_in, c_exp, c_out = cnf.in_channels, cnf.expanded_channels, cnf.out_channels
        # Registration order fixes the published key order: exp, depth, proj, then context_gen.
        if cnf.has_expansion:
            self.exp_conv = DynamicConv(c_in, c_exp, h, 1, num_kernels=num_kernels, temperature=temperature)
            self.exp_norm = BatchNorm(c_exp)
            self.exp_act = activation_layer(cnf.activation)()
        else:
            self.exp_conv = None
        self.depth_conv = DynamicConv(
            c_exp, c_exp, h, cnf.kernel, stride=cnf.stride, dilation=cnf.dilation, groups=c_exp,
            num_kernels=num_kernels, temperature=temperature,
        )
        self.depth_norm = BatchNorm(c_exp)
        self.depth_act = DyReLUB(c_exp, h, dyrelu_maps)
        self.proj_conv = DynamicConv(c_exp, c_out, h, 1, num_kernels=num_kernels, temperature=temperature)
        self.proj_norm = BatchNorm(c_out)
        self.context_gen = ContextGenerator(c_in, h, c_exp, cnf.stride)
        self.use_residual = cnf.use_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context_gen(x)
        out = x
        if self.exp_conv is not None:
            out = self.exp_act(self.exp_norm(self.exp_conv(out, ctx)))
        out = self.depth_act(self.depth_norm(self.depth_conv(out, ctx)), ctx)
        out = coordinate_attention(out, ctx)
        out = self.proj_norm(self.proj_conv(out, ctx))
        return out + x if self.use_residual else out
