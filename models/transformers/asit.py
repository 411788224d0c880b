"""ASiT ViT-B/16 (the ASiT authors' audio ViT, as PretrainedSED runs it) as a backbone of the transformer zoo.

The state dict matches ``asit_vit_base_128x592p16.json`` (150 keys, 85,482,240 parameters): class token, position
table (1, 297, 768) for the training input of 128 bands x 592 frames (class slot + 8 x 37 patches), a 16x16 conv patch
embedding, twelve pre-LN blocks with qkv bias and the final ``norm``; no head.

The (B, 1, F, T) fbank is transposed to (time, frequency) before patching, so the tokens are time-major
(token 1 + t * F' + f after the class token). Unless the input has the training size, the 296 patch rows are resized
exactly as the published code does it: viewed as an (8, 37) grid although they belong to time-major 37 x 8 tokens
(so the resize does not preserve the time / frequency axes) and bicubically interpolated (``size=(T', F')``,
align_corners False, no antialiasing), e.g. to (62, 8) for 998 frames. Whether the training size is met is decided,
as published, by ``(T / 16) * (F / 16) == 296`` in floating point (600 frames give 37.5 x 8: resized to (37, 8)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.transformers.vit import (LN_EPS, PatchEmbed, TransformerInputError, check_spectrogram, init_vit_weights,
                                     vit_blocks)


def resize_positions(table: torch.Tensor, trained_grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """ASiT's resize of a (1, N, D) patch position table (no class row) viewed as ``trained_grid`` to ``size``.

    Returns:
        (1, size[0] * size[1], D), row-major over ``size``.
    """
    dim = table.shape[-1]
    grid = table.transpose(1, 2).reshape(1, dim, *trained_grid)
    grid = F.interpolate(grid, size=size, mode="bicubic", align_corners=False)
    return grid.reshape(1, dim, size[0] * size[1]).transpose(1, 2)


class ASiT(nn.Module):
    """ASiT encoder: (B, 1, F, T) normalised fbank -> (B, 1 + (T // 16) * (F // 16), D) tokens incl. the class token.

    Args:
        embed_dim: Model width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        drop_rate: Dropout on the token sequence, the attention projections and in the MLPs (training only).
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth of the last block (linear from 0 over the blocks).
        input_fdim: Bands of the training input (128).
        input_tdim: Frames of the training input (592); with ``input_fdim`` it fixes the position table.
        patch_size: Square patch size (and stride).
    """

    TOP_NORM: tuple[str, ...] = ("norm.",)
    UNUSED_PARAMETERS: tuple[str, ...] = ()

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        input_fdim: int = 128,
        input_tdim: int = 592,
        patch_size: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim, self.patch_size = embed_dim, patch_size
        # the published module is built with audio_size [128, 592] and views its table as (128 // 16, 592 // 16)
        self.trained_grid = (input_fdim // patch_size, input_tdim // patch_size)
        self.patch_embed = PatchEmbed(1, embed_dim, (patch_size, patch_size), (patch_size, patch_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.trained_grid[0] * self.trained_grid[1], embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = vit_blocks(depth, embed_dim, num_heads, mlp_ratio, True, drop_rate, attn_drop_rate,
                                 drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        init_vit_weights(self, (self.pos_embed, self.cls_token))

    def positions(self, frames: int, bands: int) -> torch.Tensor:
        """The (1, 1 + T' F', D) position table for a (bands, frames) input (resized unless the training size)."""
        patches = self.pos_embed.shape[1] - 1
        if (frames / self.patch_size) * (bands / self.patch_size) == patches:
            return self.pos_embed
        size = (frames // self.patch_size, bands // self.patch_size)
        resized = resize_positions(self.pos_embed[:, 1:], self.trained_grid, size)
        return torch.cat((self.pos_embed[:, :1], resized), dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> (B, 1 + T' F', D) class + time-major patch tokens with positions, before the blocks."""
        check_spectrogram(x, "ASiT")
        bands, frames = x.shape[2], x.shape[3]
        if min(bands, frames) < self.patch_size:
            raise TransformerInputError(f"ASiT: input of shape {tuple(x.shape)} is smaller than one "
                                        f"{self.patch_size}x{self.patch_size} patch")
        patches = self.patch_embed(x.transpose(2, 3)).flatten(2).transpose(1, 2)  # (B, T' F', D), time-major
        tokens = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), patches), dim=1)
        return self.pos_drop(tokens + self.positions(frames, bands))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> (B, 1 + (T // 16) * (F // 16), embed_dim) normed tokens, class token first."""
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
