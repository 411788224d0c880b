"""Dynamic components of DyMN (specs/tagging.md, "DyMN"): context generator, dynamic convolution, DyReLU-B and
coordinate attention. All of them are parameterised by a per-block context computed from the block input."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.efficientat.layers import BatchNorm


class Context(NamedTuple):
    """What a context generator hands to the other dynamic components of its block.

    Attributes:
        h: (B, H) global context vector (drives the dynamic convs and DyReLU).
        g_f: (B, C_exp, F_out, 1) frequency coordinate-attention logits.
        g_t: (B, C_exp, 1, T_out) time coordinate-attention logits.
    """

    h: torch.Tensor
    g_f: torch.Tensor
    g_t: torch.Tensor


class ContextGenerator(nn.Module):
    """Frequency and time profiles of the input, transformed jointly into the block's context.

    Means over time (B, C, F) and over frequency (B, C, T) are concatenated into one sequence of length F + T and
    mapped by a shared 1x1 conv (C_in -> H), BN and Hardswish. The mean over the whole sequence is the global
    context; the frequency and time parts, pooled to the block's output resolution when it is strided, become
    coordinate-attention logits through 1x1 convs H -> C_exp.

    Args:
        in_channels: C_in of the block input.
        context_dim: H.
        expanded_channels: C_exp the attention maps act on.
        stride: Stride of the block's depthwise conv.
    """

    def __init__(self, in_channels: int, context_dim: int, expanded_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.joint_conv = nn.Conv2d(in_channels, context_dim, kernel_size=1, bias=False)
        self.joint_norm = BatchNorm(context_dim)
        self.joint_act = nn.Hardswish()
        self.conv_f = nn.Conv2d(context_dim, expanded_channels, kernel_size=1)
        self.conv_t = nn.Conv2d(context_dim, expanded_channels, kernel_size=1)
        if stride > 1:
            self.pool_f: nn.Module = nn.AvgPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0))
            self.pool_t: nn.Module = nn.AvgPool2d(kernel_size=(1, 3), stride=(1, stride), padding=(0, 1))
        else:
            self.pool_f = self.pool_t = nn.Identity()

    def forward(self, x: torch.Tensor) -> Context:
        n_f, n_t = x.shape[2], x.shape[3]
        profile_f = x.mean(dim=3, keepdim=True)  # (B, C, F, 1)
        profile_t = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (B, C, T, 1)
        seq = self.joint_act(self.joint_norm(self.joint_conv(torch.cat([profile_f, profile_t], dim=2))))
        h_f, h_t = torch.split(seq, [n_f, n_t], dim=2)
        h = seq.mean(dim=(2, 3))
        g_f = self.conv_f(self.pool_f(h_f))
        g_t = self.conv_t(self.pool_t(h_t.transpose(2, 3)))
        return Context(h, g_f, g_t)


class DynamicConv(nn.Module):
    """Convolution whose kernel is a per-sample mixture of K kernels.

    Attention over the kernels is ``softmax(Linear(h) / temperature)``. The mixed kernels of the whole batch are run
    as one grouped convolution with the batch folded into the groups, so operator-level MAC counters see it.
    The K kernels are stored flattened in a (1, 1, K, C_out * C_in/groups * k * k) parameter, the published layout.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        context_dim: Size H of the context vector.
        kernel_size: Square kernel size.
        stride: Stride.
        dilation: Dilation.
        groups: Groups (``in_channels`` for a depthwise conv).
        num_kernels: K.
        temperature: Initial softmax temperature (30 at the start of training from ImageNet, 1 for trained models).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        context_dim: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        num_kernels: int = 4,
        temperature: float = 30.0,
    ) -> None:
        super().__init__()
        if in_channels % groups:
            raise ValueError(f"in_channels={in_channels} is not divisible by groups={groups}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.padding = (kernel_size - 1) // 2 * dilation
        self.num_kernels = num_kernels
        self.temperature = float(temperature)
        kernel_shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        kernels = torch.empty(num_kernels, *kernel_shape)
        for k in range(num_kernels):
            nn.init.kaiming_normal_(kernels[k], mode="fan_out")
        self.weight = nn.Parameter(kernels.reshape(1, 1, num_kernels, -1))
        self.residuals = nn.Sequential(nn.Linear(context_dim, num_kernels))

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        """(B, H) context -> (B, K) kernel weights."""
        return F.softmax(self.residuals(h) / self.temperature, dim=-1)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        b, _, f, t = x.shape
        attention = self.attention(ctx.h)
        kernels = attention @ self.weight.view(self.num_kernels, -1)  # (B, C_out * C_in/groups * k * k)
        k = self.kernel_size
        kernels = kernels.view(b * self.out_channels, self.in_channels // self.groups, k, k)
        out = F.conv2d(
            x.reshape(1, b * self.in_channels, f, t), kernels, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=self.groups * b,
        )
        return out.view(b, self.out_channels, out.shape[-2], out.shape[-1])


class DyReLUB(nn.Module):
    """DyReLU-B: per-channel maximum of M context-dependent affine maps, ``y = max_m(a_m x + b_m)``.

    ``theta = 2 sigmoid(Linear(h)) - 1`` gives 2M coefficients per channel; they are scaled by ``lambdas`` and
    offset by ``init_v`` (both persistent buffers, part of the published state dict), so theta = 0 is a ReLU.

    Args:
        channels: C.
        context_dim: H.
        num_maps: M.
    """

    def __init__(self, channels: int, context_dim: int, num_maps: int = 2) -> None:
        super().__init__()
        self.channels, self.num_maps = channels, num_maps
        self.register_buffer("lambdas", torch.tensor([1.0] * num_maps + [0.5] * num_maps))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * num_maps - 1)))
        self.coef_net = nn.Sequential(nn.Linear(context_dim, 2 * num_maps * channels))

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        theta = 2.0 * torch.sigmoid(self.coef_net(ctx.h)) - 1.0
        coefs = theta.view(-1, self.channels, 1, 1, 2 * self.num_maps) * self.lambdas + self.init_v
        m = self.num_maps
        out = x * coefs[..., 0] + coefs[..., m]
        for i in range(1, m):
            out = torch.maximum(out, x * coefs[..., i] + coefs[..., m + i])
        return out


def coordinate_attention(x: torch.Tensor, ctx: Context) -> torch.Tensor:
    """``x * sigmoid(g_f) * sigmoid(g_t)``: recalibrates channel-frequency and channel-time positions."""
    return x * torch.sigmoid(ctx.g_f) * torch.sigmoid(ctx.g_t)


def set_temperature(modules: Sequence[nn.Module] | nn.Module, temperature: float) -> None:
    """Sets the kernel-attention temperature of every :class:`DynamicConv` under ``modules``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    roots = [modules] if isinstance(modules, nn.Module) else list(modules)
    for root in roots:
        for m in root.modules():
            if isinstance(m, DynamicConv):
                m.temperature = float(temperature)


def temperature_schedule(
    epoch: int, t_max: float = 30.0, t_min: float = 1.0, t0_slope: float = 1.0, t1_slope: float = 0.02
) -> float:
    """Kernel-attention temperature for ``epoch``: ``max(t_max - t0_slope e, 1 + t1_slope (t_max - 1) / t0_slope -
    t1_slope e, t_min)`` -- a fast linear drop, then a slow one, floored at ``t_min``.

    With ``t_max = 1`` (fine-tuning AudioSet weights) it is constant 1.
    """
    fast = t_max - t0_slope * epoch
    slow = 1.0 + t1_slope * (t_max - 1.0) / t0_slope - t1_slope * epoch
    return max(fast, slow, t_min)
