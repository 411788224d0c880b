"""CP-Mobile: the factorised receptive-field-regularised CNN of the DCASE Task 1 (low-complexity ASC) systems.

Two catalogue names:

* ``cp_mobile_dcase24``: the simplified CP-Mobile of the DCASE'24 Task 1 baseline (61,148 parameters,
  29,419,156 torchinfo mult-adds on a 1 s clip, i.e. a (1, 1, 256, 65) log-mel).
* ``cp_mobile_grn_dcase23``: CP-JKU's DCASE'23 student, CP-Mobile with Global Response Normalisation (GRN) after
  every block (126,952 parameters).

Layout: a two-conv stem (stride 4 overall), three stages of inverted-residual blocks and a 1x1 conv classifier
followed by BN and global average pooling. Module names follow the public CP-JKU code (``in_c``,
``stages.s1.b1.block.0.0``, ``after_block_norm``, ``feed_forward``), so its checkpoints load without key mapping.
Every conv is bias-free and followed by BN, so the conv/BN(/ReLU) triples are laid out as ``nn.Sequential`` with
children ``0, 1(, 2)`` that eager-mode quantisation can fuse (see :mod:`models.quantization`). The quant/dequant
stubs and the ``FloatFunctional`` residual add are identities in float mode and own no parameters, so they change
neither the state dict nor the complexity figures.

Forward: ``(B, 1, F, T)`` log-mel -> ``(logits (B, num_classes), embedding (B, C_last))``, the catalogue convention
(as ``demo_cnn`` and the EfficientAT models); the embedding is the global average of the last stage's feature map
(104-d for ``cp_mobile_dcase24``), computed beside the classifier and not part of the published MAC count.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub

from models.efficientat.layers import init_weights, make_divisible
from models.registry import register_model

Stride = Union[int, Tuple[int, int]]

DCASE24_STRIDES: Dict[str, Tuple[int, int]] = {"b2": (1, 1), "b3": (1, 2), "b4": (2, 1)}
DCASE23_STRIDES: Dict[str, Tuple[int, int]] = {"b2": (2, 2), "b4": (2, 1)}


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, stride: Stride = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """Bias-free conv ("same" padding for odd kernels), BN and optionally ReLU, as children ``0, 1, 2``."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


class GRN(nn.Module):
    """Global Response Normalisation (ConvNeXt V2) with scalar ``gamma`` and ``beta`` (both initialised to 0).

    ``g_c = ||x_c||_2`` over (F, T); ``n_c = g_c / (mean_c g_c + 1e-6)``; ``out = gamma * x * n + beta + x``.
    In a quantised model the input is dequantised and the output requantised, since the norm has no int8 kernel.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))
        self.dequant = DeQuantStub()
        self.quant = QuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dequant(x)
        gx = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)
        return self.quant(self.gamma * (x * nx) + self.beta + x)


class CPMobileBlock(nn.Module):
    """Inverted residual block: 1x1 expand-BN-ReLU, 3x3 depthwise (stride)-BN-ReLU, 1x1 project-BN.

    The residual exists only when ``in_channels == out_channels``; with a stride, the shortcut is a 3x3 average
    pool (padding 1) of the same stride. Then optional GRN, then ReLU (after the addition).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        expansion_rate: Hidden width is ``make_divisible(in_channels * expansion_rate, 8)``.
        stride: Stride of the depthwise conv (int or (freq, time)).
        use_grn: Insert :class:`GRN` before the final ReLU.
    """

    def __init__(
        self, in_channels: int, out_channels: int, expansion_rate: float, stride: Stride = 1, use_grn: bool = False
    ) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expansion_rate, 8)
        self.block = nn.Sequential(
            conv_bn(in_channels, hidden, 1),
            conv_bn(hidden, hidden, 3, stride=stride, groups=hidden),
            conv_bn(hidden, out_channels, 1, relu=False),
        )
        self.use_shortcut = in_channels == out_channels
        strided = tuple(stride) != (1, 1) if isinstance(stride, (tuple, list)) else stride != 1
        if self.use_shortcut and strided:
            self.shortcut: nn.Module = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
        else:
            self.shortcut = nn.Identity()
        # only where used: an unused FloatFunctional would hold an uncalibrated observer after quantisation
        self.skip_add = FloatFunctional() if self.use_shortcut else None
        self.after_block_norm = GRN() if use_grn else nn.Identity()
        self.after_block_activation = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_shortcut:
            out = self.skip_add.add(out, self.shortcut(x))
        return self.after_block_activation(self.after_block_norm(out))


class CPMobile(nn.Module):
    """CP-Mobile on (B, in_channels, F, T) log-mel spectrograms.

    Stage widths are ``make_divisible(base_channels * channels_multiplier ** s, 8)`` for s = 0, 1, 2 (the stem ends
    at ``make_divisible(base_channels, 8)`` channels); blocks are numbered ``b1, b2, ...`` across stages and
    ``strides`` gives the depthwise stride of each named block (others use 1).

    Args:
        num_classes: Output classes.
        in_channels: Input channels.
        base_channels: Width after the stem.
        channels_multiplier: Width growth from stage to stage.
        expansion_rate: Hidden-width factor of the inverted residual blocks.
        n_blocks: Blocks per stage.
        strides: Block name -> (freq, time) stride; ``None`` gives the DCASE'24 baseline strides
            (b2 (1, 1), b3 (1, 2), b4 (2, 1)).
        use_grn: GRN after every block (the DCASE'23 CP-JKU variant).

    Forward returns ``(logits, embedding)``; see the module docstring.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        base_channels: int = 32,
        channels_multiplier: float = 1.8,
        expansion_rate: float = 2.1,
        n_blocks: Sequence[int] = (3, 2, 1),
        strides: Optional[Mapping[str, Sequence[int]]] = None,
        use_grn: bool = False,
    ) -> None:
        super().__init__()
        strides = dict(DCASE24_STRIDES if strides is None else strides)
        base = make_divisible(base_channels, 8)
        widths = [base] + [make_divisible(base * channels_multiplier ** s, 8) for s in range(len(n_blocks))]
        self.widths = widths
        self.quant = QuantStub()
        self.dequant = DeQuantStub()
        self.in_c = nn.Sequential(
            conv_bn(in_channels, base // 4, 3, stride=2),
            conv_bn(base // 4, base, 3, stride=2),
        )
        self.stages = nn.Sequential()
        block_id = 0
        for s, count in enumerate(n_blocks):
            stage = nn.Sequential()
            c_in = widths[s]
            for _ in range(count):
                block_id += 1
                name = f"b{block_id}"
                stride = tuple(strides.get(name, (1, 1)))
                stage.add_module(name, CPMobileBlock(c_in, widths[s + 1], expansion_rate, stride, use_grn))
                c_in = widths[s + 1]
            self.stages.add_module(f"s{s + 1}", stage)
        unknown = set(strides) - {f"b{i + 1}" for i in range(block_id)}
        if unknown:
            raise ValueError(f"strides name blocks that do not exist: {sorted(unknown)} (blocks b1..b{block_id})")
        self.feed_forward = nn.Sequential(
            nn.Conv2d(widths[-1], num_classes, kernel_size=1, bias=False),
            nn.BatchNorm2d(num_classes),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.embed_dim = widths[-1]
        init_weights(self)  # Kaiming-normal (fan_out) convs, BN weight 1 / bias 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) input -> last-stage feature map (in the quantised domain when quantised)."""
        return self.stages(self.in_c(self.quant(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, F, T) -> (logits (B, num_classes), embedding (B, embed_dim))."""
        features = self.forward_features(x)
        logits = self.feed_forward(features).flatten(1)
        embedding = features.mean(dim=(2, 3))
        return self.dequant(logits), self.dequant(embedding)


# The DCASE'24 baseline frontend: torchaudio's MelSpectrogram defaults (periodic Hann, HTK scale, no filter
# normalisation, centred reflect-padded STFT) with the baseline's arguments; masks act on the power mel.
DCASE24_MEL = dict(
    sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500, n_mels=256, fmin=0.0, fmax=16000.0,
    window="hann", power=2.0, scale="htk", area_norm=False, log="log", log_offset=1e-5, normalize="none",
    freqm=48, timem=0, mask_before_log=True, center=True,
)

# The DCASE'23 CP-JKU frontend (cpjku_dcase23 run_training.py defaults): fmax = 16000 - 1000 // 2 jittered by
# +-500 Hz in training, fmin not jittered; pre-emphasis, Kaldi banks and (x + 4.5) / 5 are built into the frontend.
DCASE23_MEL = dict(
    n_mels=256, sample_rate=32000, win_length=3072, hop_size=500, n_fft=4096, fmin=0.0, fmax=15500.0,
    fmin_aug_range=1, fmax_aug_range=1000, freqm=48, timem=0,
)

register_model(
    "cp_mobile_dcase24",
    CPMobile,
    frontend="mel",
    frontend_kwargs=DCASE24_MEL,
    input_shape=(1, 1, 256, 65),
    macs_convention="torchinfo",
    description="Simplified CP-Mobile, DCASE'24 Task 1 baseline (61,148 params, 29.4 M MACs per 1 s)",
    num_classes=10,
    in_channels=1,
    base_channels=32,
    channels_multiplier=1.8,
    expansion_rate=2.1,
    n_blocks=(3, 2, 1),
    strides=DCASE24_STRIDES,
    use_grn=False,
)

register_model(
    "cp_mobile_grn_dcase23",
    CPMobile,
    frontend="efficientat_mel",
    frontend_kwargs=DCASE23_MEL,
    input_shape=(1, 1, 256, 64),
    macs_convention="torchinfo",
    description="CP-Mobile with GRN, CP-JKU DCASE'23 Task 1 student (126,952 params)",
    num_classes=10,
    in_channels=1,
    base_channels=32,
    channels_multiplier=2.3,
    expansion_rate=3.0,
    n_blocks=(3, 2, 1),
    strides=DCASE23_STRIDES,
    use_grn=True,
)
