"""PaSST-S (kkoutini/PaSST, clip tagger) and frame-level PaSST (fPaSST, PretrainedSED / cpjku_dcase24).

Both are DeiT-style ViTs with a class and a distillation token and *factorised* positions: a time table
(1, D, 1, T') and a frequency table (1, D, F', 1) are added to the (B, D, F', T') patch grid, and the two special
tokens get their own rows of ``new_pos_embed``. State dicts match ``passt_s_swa_p16_128_ap476.json`` (86,153,758
parameters) and ``fpasst_deit_b_frame.json`` (88,421,632).

Grids shorter than the time table use its first columns (training: a random window of it, as published); longer ones
are cut to the table (the published code does the same, PaSST-S with a warning, fPaSST silently; here both warn).
Structured patchout (dropping random whole time columns / frequency rows of the grid) only acts in training and is
off by default, so eval and inference are exact.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from models.transformers.vit import (LN_EPS, PatchEmbed, TransformerInputError, check_spectrogram, init_vit_weights,
                                     vit_blocks)


def keep_random(x: torch.Tensor, dim: int, drop: int) -> torch.Tensor:
    """Structured patchout: removes ``drop`` random entries of ``dim`` (kept ones stay in order)."""
    size = x.shape[dim]
    if drop <= 0:
        return x
    if drop >= size:
        raise TransformerInputError(f"patchout of {drop} columns leaves nothing of a grid dimension of size {size}")
    keep = torch.randperm(size, device="cpu")[:size - drop].sort().values.to(x.device)
    return x.index_select(dim, keep)


class DistilledViT(nn.Module):
    """Tokens, factorised positions, blocks and final norm shared by :class:`PaSST` and :class:`FramePaSST`.

    Subclasses register their stem / patch embedding and then call :meth:`_build_blocks` (registration order is the
    published key order).
    """

    TOP_NORM: tuple[str, ...] = ("norm.",)
    NAME = "PaSST"

    def __init__(self, embed_dim: int, freq_rows: int, time_cols: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, freq_rows, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, time_cols))

    def _build_blocks(self, depth: int, num_heads: int, mlp_ratio: float, drop_rate: float, attn_drop_rate: float,
                      drop_path_rate: float) -> None:
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = vit_blocks(depth, self.embed_dim, num_heads, mlp_ratio, True, drop_rate, attn_drop_rate,
                                 drop_path_rate)
        self.norm = nn.LayerNorm(self.embed_dim, eps=LN_EPS)

    def _positions(self, grid: torch.Tensor) -> torch.Tensor:
        """Adds the time and frequency tables to the (B, D, F', T') grid (cut as the module docstring says)."""
        rows, cols = self.freq_new_pos_embed.shape[2], self.time_new_pos_embed.shape[3]
        if grid.shape[2] != rows:
            raise TransformerInputError(
                f"{self.NAME}: the patch grid has {grid.shape[2]} frequency rows, the frequency position table "
                f"{rows}; feed the number of mel bands the model was built for")
        time_pos = self.time_new_pos_embed
        if grid.shape[3] > cols:
            warnings.warn(f"{self.NAME}: {grid.shape[3]} time patches exceed the {cols} of the time position table; "
                          f"the input is cut to its first {cols}", stacklevel=3)
            grid = grid[..., :cols]
        elif grid.shape[3] < cols:
            offset = int(torch.randint(1 + cols - grid.shape[3], (1,), device="cpu")) if self.training else 0
            time_pos = time_pos[..., offset:offset + grid.shape[3]]
        return grid + time_pos + self.freq_new_pos_embed

    def _encode(self, grid: torch.Tensor, drop_time: int = 0, drop_freq: int = 0) -> torch.Tensor:
        """(B, D, F', T') patch grid -> (B, 2 + N, D) normed tokens (cls, dist, then the grid frequency-major)."""
        grid = self._positions(grid)
        if self.training:
            grid = keep_random(keep_random(grid, 3, drop_time), 2, drop_freq)
        x = grid.flatten(2).transpose(1, 2)
        batch = x.shape[0]
        cls = self.cls_token.expand(batch, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(batch, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.pos_drop(torch.cat((cls, dist, x), dim=1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class PaSST(DistilledViT):
    """PaSST-S clip tagger: (B, 1, 128, T) mel (32 kHz) -> (logits (B, C), embedding (B, D)).

    16x16 patches with stride 10: 12 x 99 grid for 998 to 1000 frames (10 s). The embedding is the mean of the normed
    class and distillation tokens, the logits ``head`` (LayerNorm eps 1e-5, Linear) of it; ``head_dist`` is part of
    the published state dict but unused.

    Args:
        embed_dim: Model width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        drop_rate: Dropout on the token sequence, the attention projections and in the MLPs (training only).
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth of the last block (linear from 0 over the blocks).
        num_classes: Outputs of ``head`` and ``head_dist``.
        input_fdim: Mel bands the model is built for.
        input_tdim: Frames of the training input; with ``stride`` it fixes the position tables (998 // 10 = 99).
        patch_size: Square patch size.
        stride: Patch stride in both directions.
        s_patchout_t: Time columns of the grid dropped at random in training (published training: 40).
        s_patchout_f: Frequency rows dropped at random in training (published training: 4).
    """

    NAME = "PaSST"
    UNUSED_PARAMETERS: tuple[str, ...] = ("head_dist.weight", "head_dist.bias")

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        num_classes: int = 527,
        input_fdim: int = 128,
        input_tdim: int = 998,
        patch_size: int = 16,
        stride: int = 10,
        s_patchout_t: int = 0,
        s_patchout_f: int = 0,
    ) -> None:
        super().__init__(embed_dim, input_fdim // stride, input_tdim // stride)
        self.s_patchout_t, self.s_patchout_f = s_patchout_t, s_patchout_f
        self.patch_embed = PatchEmbed(1, embed_dim, (patch_size, patch_size), (stride, stride))
        self._build_blocks(depth, num_heads, mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate)
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        self.head_dist = nn.Linear(embed_dim, num_classes)
        init_vit_weights(self, (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                                self.time_new_pos_embed))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> (B, 2 + F' * T', D) normed tokens before the head (cls, dist, grid frequency-major)."""
        check_spectrogram(x, self.NAME)
        if x.shape[3] < self.patch_embed.proj.kernel_size[1]:
            raise TransformerInputError(f"{self.NAME}: input of shape {tuple(x.shape)} is shorter than one patch "
                                        f"({self.patch_embed.proj.kernel_size[1]} frames)")
        grid = self.patch_embed(x)
        return self._encode(grid, self.s_patchout_t, self.s_patchout_f)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, F, T) -> (logits (B, num_classes), embedding (B, embed_dim))."""
        tokens = self.forward_tokens(x)
        embedding = (tokens[:, 0] + tokens[:, 1]) / 2
        return self.head(embedding), embedding


class FramePaSST(DistilledViT):
    """fPaSST: (B, 1, 128, T) mel (16 kHz) -> (B, T // 4, D) frame sequence (40 ms per frame, at most 250).

    A conv stem (3x3 convs 1 -> 16 stride 2, 16 -> 32, 32 -> 64 stride 2, GELU after each) gives (B, 64, F/4, T/4),
    which a plain reshape regroups to (B, 16, F, T/4) (new channel c stacks old channels 4c..4c+3 along frequency).
    The patch embedding (kernel F x 2, stride 1, time padding 1) makes one token per step; its first output step is
    dropped. The class and distillation tokens are removed from the output.

    Args:
        embed_dim: Model width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        drop_rate: Dropout on the token sequence, the attention projections and in the MLPs (training only).
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth of the last block (linear from 0 over the blocks).
        n_mels: Mel bands (the patch kernel height).
        max_tokens: Columns of the time position table (250 = 10 s); longer inputs are cut to it.
        frame_patchout: Time steps dropped at random in training (PretrainedSED: 0).
    """

    NAME = "FramePaSST"
    UNUSED_PARAMETERS: tuple[str, ...] = ()
    STEM_CHANNELS = (16, 32, 64)

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        n_mels: int = 128,
        max_tokens: int = 250,
        frame_patchout: int = 0,
    ) -> None:
        super().__init__(embed_dim, 1, max_tokens)
        if n_mels % 4:
            raise ValueError(f"FramePaSST: n_mels must be a multiple of 4 (two stride-2 convs), got {n_mels}")
        self.n_mels, self.frame_patchout = n_mels, frame_patchout
        c1, c2, c3 = self.STEM_CHANNELS
        self.conv_in_1 = nn.Conv2d(1, c1, kernel_size=3, stride=2, padding=1)
        self.conv_in_2 = nn.Conv2d(c1, c2, kernel_size=3, stride=1, padding=1)
        self.conv_in_3 = nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1)
        self.patch_embed = PatchEmbed(c3 // 4, embed_dim, (n_mels, 2), (1, 1), (0, 1))
        self._build_blocks(depth, num_heads, mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate)
        init_vit_weights(self, (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                                self.time_new_pos_embed))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> (B, 16, F, ceil(T / 4)): the conv stem and the regrouping reshape."""
        x = F.gelu(self.conv_in_1(x))
        x = F.gelu(self.conv_in_2(x))
        x = F.gelu(self.conv_in_3(x))
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2] // self.n_mels, self.n_mels, x.shape[3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, T) -> (B, min(ceil(T / 4), max_tokens), embed_dim)."""
        check_spectrogram(x, self.NAME, self.n_mels)
        grid = self.patch_embed(self.stem(x))[..., 1:]
        return self._encode(grid, self.frame_patchout)[:, 2:]
