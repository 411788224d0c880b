"""MN: the MobileNetV3 of EfficientAT, adapted to single-channel spectrograms (specs/tagging.md, "MobileNetV3")."""
from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple, Union

import torch
from torch import nn

from models.efficientat.config import STEM_KERNEL, STEM_STRIDE, block_configs
from models.efficientat.heads import build_head
from models.efficientat.inverted_residual import InvertedResidual
from models.efficientat.layers import conv_bn_act, init_weights
from models.efficientat.se import check_se_args

MNOutput = Union[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]]


def run_network(stages: Iterable[nn.Module], classifier: nn.Module, x: torch.Tensor, return_fmaps: bool) -> MNOutput:
    """Runs ``stages`` in order, then the head: ``(logits, embedding[, feature maps])``.

    The embedding is the global average of the last feature map; the feature maps are every stage's output.
    """
    fmaps: List[torch.Tensor] = []
    for stage in stages:
        x = stage(x)
        if return_fmaps:
            fmaps.append(x)
    embedding = x.mean(dim=(2, 3))
    logits = classifier(x).flatten(1)
    if return_fmaps:
        return logits, embedding, fmaps
    return logits, embedding


class MN(nn.Module):
    """Stem, 15 inverted-residual blocks and a 1x1 expansion in ``features[0..16]``, then a ``classifier``.

    Args:
        width_mult: Channel multiplier (0.1 for mn01 ... 4.0 for mn40); widths are rounded to multiples of 8.
        num_classes: Output classes (527 for AudioSet).
        head_type: ``"mlp"``, ``"fully_convolutional"`` or ``"multihead_attention_pooling"``.
        multihead_attention_heads: Heads of the attention-pooling head.
        strides: Strides of blocks 2, 4, 7 and 13 (the four downsampling positions).
        dilated: Dilation 2 (and stride 1) in blocks 13-15.
        reduced_tail: Halve the widths of the tail (160/960/1280).
        input_dim_f: Frequency bins of the input; fixes the size of frequency SE layers.
        input_dim_t: Time frames of the input; fixes the size of time SE layers.
        se_dims: Squeeze-excitation axes, letters from 'cft', or ``"none"`` for no SE.
        se_agg: Fusion of concurrent SE outputs: 'max', 'avg', 'add' or 'min'.
        se_r: SE bottleneck reduction.
        dropout: Dropout of the MLP head.
        in_channels: Input channels (1: a mono spectrogram).
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
        input_dim_f: int = 128,
        input_dim_t: int = 1000,
        se_dims: str = "c",
        se_agg: str = "max",
        se_r: int = 4,
        dropout: float = 0.2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if se_dims != "none":
            check_se_args(se_dims, se_agg)
        configs, last_channel = block_configs(width_mult, strides, dilated, reduced_tail, input_dim_f, input_dim_t)
        stem_channels = configs[0].in_channels
        layers: List[nn.Module] = [
            conv_bn_act(in_channels, stem_channels, STEM_KERNEL, stride=STEM_STRIDE, activation=nn.Hardswish)
        ]
        layers += [InvertedResidual(c, None if se_dims == "none" else se_dims, se_agg, se_r) for c in configs]
        out_channels = 6 * configs[-1].out_channels
        layers.append(conv_bn_act(configs[-1].out_channels, out_channels, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = build_head(
            head_type, out_channels, last_channel, num_classes, dropout, multihead_attention_heads
        )
        self.embedding_dim = out_channels
        self.width_mult = width_mult
        init_weights(self)

    def forward(self, x: torch.Tensor, return_fmaps: bool = False) -> MNOutput:
        """(B, 1, F, T) spectrogram -> ``(logits, embedding)``, plus the 17 feature maps if ``return_fmaps``.

        The embedding is the global average of ``features[16]``; the feature maps are the outputs of
        ``features[0..16]`` in order.
        """
        return run_network(self.features, self.classifier, x, return_fmaps)
