"""ATST-Frame (Audio-WestlakeU/audiossl) as a backbone of the transformer zoo.

The state dict is the one PretrainedSED and cpjku_dcase24 load (``atst_frame_base.json``: 138 keys, 85,419,264
parameters). The (B, 1, 64, T) mel is cut to a multiple of 4 frames; each patch covers all 64 bands x 4 frames and is
flattened band-major (feature ``band * 4 + frame``) before ``patch_embed.patch_embed`` (Linear 256 -> 768): one token
per 40 ms. Token i adds row i + 1 of ``pos_embed`` (row 0 is an unused class slot); ``mask_embed`` only serves the
self-supervised pre-training. Twelve pre-LN blocks without qkv bias and ``norm_frame`` follow.

Length limit: the position table has 250 usable rows (10 s). The published module cannot take more tokens (its
``pos_embed[:, 1:T + 1]`` is shorter than the sequence and the addition fails), and its users cut the audio first:
the PretrainedSED wrapper runs 10 s chunks, the audiossl downstream crops to 10 s. Here a longer input raises
:class:`~models.transformers.vit.TransformerInputError`; chunking belongs to the caller (``FrameSED`` does it).
"""
from __future__ import annotations

import torch
from torch import nn

from models.transformers.vit import TransformerInputError, check_spectrogram, init_vit_weights, vit_blocks


class PatchLinear(nn.Module):
    """Band-major patches of (B, 1, bands, T) -> (B, T // frames, embed_dim) via ``patch_embed`` (Linear)."""

    def __init__(self, bands: int, frames: int, embed_dim: int) -> None:
        super().__init__()
        self.bands, self.frames = bands, frames
        self.patch_embed = nn.Linear(bands * frames, embed_dim)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, bands, T) -> (B, T // frames, bands * frames) raw patches, feature index ``band * frames + f``."""
        steps = x.shape[-1] // self.frames
        x = x[:, 0, :self.bands, :steps * self.frames].reshape(x.shape[0], self.bands, steps, self.frames)
        return x.permute(0, 2, 1, 3).reshape(x.shape[0], steps, self.bands * self.frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(self.patchify(x))


class ATSTFrame(nn.Module):
    """ATST-Frame encoder: (B, 1, 64, T) ATST mel -> (B, T // 4, D) frame sequence (40 ms per frame).

    Args:
        embed_dim: Model width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        drop_rate: Dropout after the position embedding, the attention projection and in the MLPs (PretrainedSED's
            ``atst_dropout``, 0 there, sets this and ``drop_path_rate``).
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth of the last block (linear from 0 over the blocks).
        n_mels: Mel bands (one patch spans all of them).
        patch_frames: Frames per patch (4 = 40 ms at the 10 ms hop).
        max_tokens: Usable rows of the position table (250 = 10 s).
    """

    TOP_NORM: tuple[str, ...] = ("norm_frame.",)
    UNUSED_PARAMETERS: tuple[str, ...] = ("mask_embed",)  # pre-training only: never receives a gradient here

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        n_mels: int = 64,
        patch_frames: int = 4,
        max_tokens: int = 250,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.n_mels, self.patch_frames, self.max_tokens = n_mels, patch_frames, max_tokens
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_tokens + 1, embed_dim))
        self.patch_embed = PatchLinear(n_mels, patch_frames, embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = vit_blocks(depth, embed_dim, num_heads, mlp_ratio, False, drop_rate, attn_drop_rate,
                                 drop_path_rate)
        self.norm_frame = nn.LayerNorm(embed_dim, eps=1e-6)
        init_vit_weights(self, (self.pos_embed, self.mask_embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, T) -> (B, T // patch_frames, embed_dim); at most ``max_tokens`` tokens."""
        check_spectrogram(x, "ATSTFrame", self.n_mels)
        tokens = x.shape[-1] // self.patch_frames
        if not 0 < tokens <= self.max_tokens:
            raise TransformerInputError(
                f"ATSTFrame: {x.shape[-1]} frames give {tokens} tokens; the position table takes 1 to "
                f"{self.max_tokens} ({self.max_tokens * self.patch_frames} frames); cut longer audio into chunks")
        x = self.patch_embed(x) + self.pos_embed[:, 1:tokens + 1]
        x = self.pos_drop(x)
        for block in self.blocks:
            x = block(x)
        return self.norm_frame(x)
