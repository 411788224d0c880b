"""Small building blocks shared by MN and DyMN: channel rounding, conv output sizes, conv-BN-activation triples."""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Optional

from torch import nn

# Every BN of the EfficientAT family (the published statistics were trained with these).
BatchNorm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Nearest multiple of ``divisor`` to ``value``, at least ``min_value``, never more than 10% below ``value``."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out_size(size: int, kernel: int, stride: int = 1, dilation: int = 1, padding: Optional[int] = None) -> int:
    """Output length of a convolution along one axis (``padding`` defaults to "same" for odd kernels)."""
    if padding is None:
        padding = (kernel - 1) // 2 * dilation
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1)


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    activation: Optional[Callable[[], nn.Module]] = None,
) -> nn.Sequential:
    """Bias-free conv with "same" padding, BN and an optional activation as children ``0, 1(, 2)``.

    The child indices are part of the published state-dict keys (``features.3.block.1.0.weight``).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2 * dilation,
            dilation=dilation, groups=groups, bias=False,
        ),
        BatchNorm(out_channels),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def activation_layer(name: str) -> Callable[[], nn.Module]:
    """``"RE"`` -> ReLU, ``"HS"`` -> Hardswish (the MobileNetV3 table's activation codes)."""
    if name == "RE":
        return nn.ReLU
    if name == "HS":
        return nn.Hardswish
    raise ValueError(f"activation must be 'RE' or 'HS', got {name!r}")


def init_weights(model: nn.Module) -> None:
    """The family's initialisation: convs Kaiming-normal (fan_out), norms 1/0, Linears N(0, 0.01) with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
