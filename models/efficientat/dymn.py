"""DyMN: MobileNetV3 with dynamic blocks (dynamic convs, DyReLU-B, coordinate attention), specs/tagging.md "DyMN"."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.efficientat.config import STEM_KERNEL, STEM_STRIDE, block_configs
from models.efficientat.dy_block import DynamicInvertedResidual
from models.efficientat.dynamic import DynamicConv, set_temperature
from models.efficientat.heads import build_head
from models.efficientat.inverted_residual import InvertedResidual
from models.efficientat.layers import conv_bn_act, init_weights
from models.efficientat.mn import MNOutput, run_network

DY_BLOCK_CHOICES = ("all", "replace_se")


class DyMN(nn.Module):
    """Stem ``in_c``, 15 blocks ``layers[0..14]``, 1x1 expansion ``out_c``, ``classifier``.

    With ``use_dy_blocks="replace_se"`` only the SE positions of MN (blocks 4-6, 11-15) are dynamic; the others are
    plain inverted residuals without SE.

    Args:
        width_mult: Channel multiplier (0.4, 1.0, 2.0 for dymn04/10/20).
        num_classes: Output classes.
        head_type: ``"mlp"``, ``"fully_convolutional"`` or ``"multihead_attention_pooling"``.
        multihead_attention_heads: Heads of the attention-pooling head.
        strides: Strides of blocks 2, 4, 7 and 13.
        dilated: Dilation 2 (and stride 1) in blocks 13-15.
        reduced_tail: Halve the widths of the tail.
        use_dy_blocks: ``"all"`` or ``"replace_se"``.
        context_ratio: H is ``C_exp // context_ratio`` before clipping.
        min_context_size: Lower clip of H at width 1 (scaled by the width).
        max_context_size: Upper clip of H at width 1 (scaled by the width).
        dyconv_k: Kernels per dynamic conv.
        dyrelu_k: Affine maps M of DyReLU-B.
        temperature: Initial kernel-attention temperature (T_max = 30 to train from scratch or from ImageNet
            weights; 1 for AudioSet-trained weights). Change it with :meth:`set_temperature`.
        dropout: Dropout of the MLP head.
        in_channels: Input channels.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 527,
        head_type: str = "mlp",
        multihead_attention_heads: int = 4,
        strides: Sequence[int] = (2, 2, 2, 2),
        dilated: bool = False,
        reduced_tail: bool = False,
        use_dy_blocks: str = "all",
        context_ratio: int = 4,
        min_context_size: int = 32,
        max_context_size: int = 128,
        dyconv_k: int = 4,
        dyrelu_k: int = 2,
        temperature: float = 30.0,
        dropout: float = 0.2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if use_dy_blocks not in DY_BLOCK_CHOICES:
            raise ValueError(f"use_dy_blocks must be one of {DY_BLOCK_CHOICES}, got {use_dy_blocks!r}")
        configs, last_channel = block_configs(width_mult, strides, dilated, reduced_tail)
        # ``layers`` is registered before the stem: the published state dict lists the blocks first.
        self.layers = nn.ModuleList()
        for cnf in configs:
            if use_dy_blocks == "all" or cnf.use_se:
                block: nn.Module = DynamicInvertedResidual(
                    cnf, context_ratio, min_context_size, max_context_size, dyconv_k, dyrelu_k, temperature
                )
            else:
                block = InvertedResidual(cnf, se_dims=None)
            self.layers.append(block)
        self.in_c = conv_bn_act(in_channels, configs[0].in_channels, STEM_KERNEL, STEM_STRIDE, activation=nn.Hardswish)
        out_channels = 6 * configs[-1].out_channels
        self.out_c = conv_bn_act(configs[-1].out_channels, out_channels, 1, activation=nn.Hardswish)
        self.classifier = build_head(
            head_type, out_channels, last_channel, num_classes, dropout, multihead_attention_heads
        )
        self.embedding_dim = out_channels
        self.width_mult = width_mult
        init_weights(self)  # dynamic kernels keep their own per-kernel Kaiming init

    def set_temperature(self, temperature: float) -> None:
        """Sets the softmax temperature of the kernel attention in every dynamic conv (the schedule's hook)."""
        set_temperature(self, temperature)

    @property
    def temperature(self) -> float:
        """Current kernel-attention temperature (that of the first dynamic conv)."""
        for m in self.modules():
            if isinstance(m, DynamicConv):
                return m.temperature
        raise AttributeError("this DyMN has no dynamic convs")

    def forward(self, x: torch.Tensor, return_fmaps: bool = False) -> MNOutput:
        """(B, 1, F, T) spectrogram -> ``(logits, embedding)``, plus 17 feature maps if ``return_fmaps``.

        The feature maps are the outputs of ``in_c``, ``layers[0..14]`` and ``out_c`` (the MN ``features[0..16]``).
        """
        return run_network((self.in_c, *self.layers, self.out_c), self.classifier, x, return_fmaps)
