"""The MobileNetV3 block table adapted for audio, scaled to a width and resolved to per-block settings.

MN and DyMN share it: 15 inverted-residual blocks between a stride-2 stem and a 1x1 conv to 6x the last width.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from models.efficientat.layers import conv_out_size, make_divisible

# (in, kernel, expanded, out, SE, activation, stride slot) at width 1.0; the stride slot indexes ``strides``
# (None: stride 1). Blocks 13-15 hold the tail that ``reduced_tail`` halves and ``dilated`` dilates.
BLOCK_TABLE: Tuple[Tuple[int, int, int, int, bool, str, int | None], ...] = (
    (16, 3, 16, 16, False, "RE", None),
    (16, 3, 64, 24, False, "RE", 0),
    (24, 3, 72, 24, False, "RE", None),
    (24, 5, 72, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", None),
    (40, 5, 120, 40, True, "RE", None),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", None),
    (80, 3, 184, 80, False, "HS", None),
    (80, 3, 184, 80, False, "HS", None),
    (80, 3, 480, 112, True, "HS", None),
    (112, 3, 672, 112, True, "HS", None),
    (112, 5, 672, 160, True, "HS", 3),
    (160, 5, 960, 160, True, "HS", None),
    (160, 5, 960, 160, True, "HS", None),
)
TAIL_BLOCKS = (12, 13, 14)  # zero-based indices of blocks 13-15
STEM_KERNEL, STEM_STRIDE = 3, 2


@dataclass(frozen=True)
class BlockConfig:
    """One inverted-residual block, resolved to channels and to the spatial size its depthwise conv outputs.

    Attributes:
        in_channels: Input channels.
        kernel: Depthwise kernel size.
        expanded_channels: Channels after the 1x1 expansion (no expansion when equal to ``in_channels``).
        out_channels: Output channels.
        use_se: Whether this block position carries squeeze-excitation (MN) / is dynamic under "replace_se" (DyMN).
        activation: ``"RE"`` or ``"HS"``.
        stride: Stride of the depthwise conv.
        dilation: Dilation of the depthwise conv.
        out_f: Frequency bins of the depthwise output (what a frequency SE squeezes).
        out_t: Time frames of the depthwise output.
        width_mult: Width multiplier the channels were scaled with.
    """

    in_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    activation: str
    stride: int
    dilation: int
    out_f: int
    out_t: int
    width_mult: float

    @property
    def has_expansion(self) -> bool:
        return self.expanded_channels != self.in_channels

    @property
    def use_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def block_configs(
    width_mult: float,
    strides: Sequence[int] = (2, 2, 2, 2),
    dilated: bool = False,
    reduced_tail: bool = False,
    input_dim_f: int = 128,
    input_dim_t: int = 1000,
) -> Tuple[List[BlockConfig], int]:
    """Scales the block table and tracks the feature-map size through the network.

    Returns:
        The 15 block configs and ``last_channel`` (hidden width of the MLP head).
    """
    if len(strides) != 4 or any(s not in (1, 2) for s in strides):
        raise ValueError(f"strides must be four values in {{1, 2}}, got {tuple(strides)}")
    divider = 2 if reduced_tail else 1
    f = conv_out_size(input_dim_f, STEM_KERNEL, STEM_STRIDE)
    t = conv_out_size(input_dim_t, STEM_KERNEL, STEM_STRIDE)
    configs = []
    for i, (c_in, kernel, c_exp, c_out, use_se, act, slot) in enumerate(BLOCK_TABLE):
        if i in TAIL_BLOCKS:
            # Block 13 keeps its (un-reduced) 112 input; its expansion and output shrink with the tail.
            c_in = c_in if i == TAIL_BLOCKS[0] else c_in // divider
            c_exp = c_exp if i == TAIL_BLOCKS[0] else c_exp // divider
            c_out //= divider
        dilation = 2 if dilated and i in TAIL_BLOCKS else 1
        stride = 1 if slot is None else int(strides[slot])
        if dilation > 1:
            stride = 1  # dilation replaces the downsampling of the tail
        f = conv_out_size(f, kernel, stride, dilation)
        t = conv_out_size(t, kernel, stride, dilation)
        configs.append(
            BlockConfig(
                in_channels=make_divisible(c_in * width_mult, 8),
                kernel=kernel,
                expanded_channels=make_divisible(c_exp * width_mult, 8),
                out_channels=make_divisible(c_out * width_mult, 8),
                use_se=use_se,
                activation=act,
                stride=stride,
                dilation=dilation,
                out_f=f,
                out_t=t,
                width_mult=width_mult,
            )
        )
    last_channel = make_divisible(1280 // divider * width_mult, 8)
    return configs, last_channel
