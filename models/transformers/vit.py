"""The pre-LN ViT pieces shared by ATST-Frame, fPaSST, PaSST-S, M2D and ASiT, with timm's key names.

One block (:class:`ViTBlock`) serves all five models: ``norm1`` -> ``attn`` (``qkv`` with or without bias, ``proj``)
-> residual, ``norm2`` -> ``mlp`` (``fc1``, exact GELU, ``fc2``) -> residual; LayerNorm eps 1e-6. Dropout, attention
dropout and stochastic depth only act in training, so an eval forward is deterministic. The attention goes through
:func:`models.transformers.attention.attend`; its ``sdpa`` flag switches between the fused kernel and the plain
reference form (:func:`models.transformers.attention.set_sdpa`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from models.transformers.attention import attend

LN_EPS = 1e-6


class TransformerInputError(ValueError):
    """An input whose shape a transformer backbone of the zoo cannot take (the message names shape and limit)."""


def check_spectrogram(x: torch.Tensor, model: str, bands: Optional[int] = None) -> None:
    """Raises :class:`TransformerInputError` unless ``x`` is a (B, 1, F, T) spectrogram (with F == ``bands``)."""
    if x.dim() != 4 or x.shape[1] != 1 or (bands is not None and x.shape[2] != bands):
        expected = f"(B, 1, {bands if bands is not None else 'F'}, T)"
        raise TransformerInputError(f"{model}: expected a {expected} spectrogram, got shape {tuple(x.shape)}")


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zeroes a whole residual branch per sample with probability ``p``, rescales the rest."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention with one ``qkv`` projection and an output ``proj``.

    Args:
        dim: Model width.
        num_heads: Heads (``dim`` must divide evenly).
        qkv_bias: Bias on the ``qkv`` projection (ATST-Frame has none).
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after ``proj`` (training only).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.sdpa = True
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, D) -> (B, S, D)."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = attend(q, k, v, dropout_p=self.attn_drop if self.training else 0.0, sdpa=self.sdpa)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, length, dim)))


class Mlp(nn.Module):
    """``fc1`` -> exact GELU -> dropout -> ``fc2`` -> dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ViTBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Args:
        dim: Model width.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``dim``.
        qkv_bias: Bias on the ``qkv`` projection.
        drop: Dropout after the attention projection and in the MLP.
        attn_drop: Dropout on the attention weights.
        drop_path: Stochastic-depth probability of both residual branches.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


def vit_blocks(depth: int, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
               drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> nn.ModuleList:
    """``depth`` blocks whose stochastic-depth rate rises linearly from 0 to ``drop_path_rate`` (timm's rule)."""
    rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
    return nn.ModuleList(ViTBlock(dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate)
                         for rate in rates)


class PatchEmbed(nn.Module):
    """Conv patch embedding (``proj``): (B, C, F, T) -> (B, D, F', T') grid, not flattened.

    Args:
        in_chans: Input channels.
        embed_dim: Output width.
        kernel: Patch size (frequency, time).
        stride: Patch stride (frequency, time).
        padding: Zero padding (frequency, time).
    """

    def __init__(self, in_chans: int, embed_dim: int, kernel: Sequence[int], stride: Sequence[int],
                 padding: Sequence[int] = (0, 0)) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=tuple(kernel), stride=tuple(stride),
                              padding=tuple(padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def init_vit_weights(module: nn.Module, tokens: Sequence[nn.Parameter] = ()) -> None:
    """timm's ViT initialisation: Linear weights and ``tokens`` (class tokens, position tables) truncated normal
    (std 0.02), Linear biases 0, LayerNorms 1 / 0. Published weights replace all of it."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.trunc_normal_(sub.weight, std=0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
    for token in tokens:
        nn.init.trunc_normal_(token, std=0.02)
