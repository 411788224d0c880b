"""M2D (nttcslab/m2d, ``m2d_clap_vit_base-80x1001p16x16``) as PretrainedSED runs it, waveform in.

The state dict matches ``m2d_clap_vit_base_80x1001p16x16.json``: ``backbone.*`` (a timm ViT-B/16 with class token,
position table (1, 311, 768), a stored but unused ``norm_stats`` and the final ``norm``; 85,492,994 parameters) and
``to_spec.*``, the four buffers of nnAudio's ``MelSpectrogram`` (177,280 numbers), which the published files carry.

Frontend (nnAudio, 16 kHz): centred conv-STFT with reflect padding, 400-point kernels ``cos / sin(2 pi k n / 400)``
with the periodic Hann window folded in (``stft.wcos`` / ``stft.wsin``; ``stft.window_mask`` holds the window
itself and is only used by nnAudio's inverse), power 2, Slaney mel (area-normalised, 50 - 8000 Hz, 80 bands),
``log(x + float32 eps)``, then ``(x + 7.1) / 4.2`` with the constants fixed at construction whatever ``norm_stats``
holds. Encoder: 1001-frame chunks (the last one zero-padded to a multiple of 16), 16x16 patches frequency-major
(5 x 62), the position table cut to the chunk's frames per frequency row, class token dropped, and per time step the
5 frequency tokens concatenated (frequency-major) -> (B, 62 per chunk, 5 x 768).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.frontends.mel import mel_filterbank
from models.transformers.vit import (LN_EPS, PatchEmbed, TransformerInputError, check_spectrogram, init_vit_weights,
                                     vit_blocks)


def _default_device() -> torch.device:
    """The device new tensors land on (honours ``with torch.device(...)``)."""
    return torch.empty(0).device


class ConvSTFT(nn.Module):
    """nnAudio's conv-STFT buffers: ``wsin`` / ``wcos`` (bins, 1, n_fft) window-folded DFT kernels, ``window_mask``."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        with torch.device("cpu"):  # float64 phases, then float32 as nnAudio (numpy) computes them
            n = torch.arange(n_fft, dtype=torch.float64)
            k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
            phase = 2 * torch.pi * k[:, None] * n[None, :] / n_fft
            window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64).float()
            wsin = torch.sin(phase).float() * window
            wcos = torch.cos(phase).float() * window
        device = _default_device()
        self.register_buffer("wsin", wsin.unsqueeze(1).to(device))
        self.register_buffer("wcos", wcos.unsqueeze(1).to(device))
        self.register_buffer("window_mask", window.reshape(1, n_fft, 1).to(device))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n_fft // 2 + 1, n // hop + 1) power spectrogram."""
        x = F.pad(wave.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = F.conv1d(x, self.wcos, stride=self.hop_length)
        imag = F.conv1d(x, self.wsin, stride=self.hop_length)
        return real.pow(2) + imag.pow(2)


class NNAudioMel(nn.Module):
    """``to_spec``: Slaney mel (area norm) of the conv-STFT power, buffers ``mel_basis`` and ``stft.*``."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, fmin: float, fmax: float) -> None:
        super().__init__()
        self.stft = ConvSTFT(n_fft, hop_length)
        with torch.device("cpu"):
            basis = mel_filterbank(n_mels, n_fft, sample_rate, fmin, fmax, scale="slaney", area_norm=True)
        self.register_buffer("mel_basis", basis.to(_default_device()))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n_mels, frames) mel power."""
        return torch.matmul(self.mel_basis, self.stft(wave))


class M2DViT(nn.Module):
    """``backbone``: timm-style ViT with class token on one (B, 1, F, T <= chunk) mel chunk -> (B, 1 + F' T', D)."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_rate: float,
                 attn_drop_rate: float, drop_path_rate: float, grid: tuple[int, int], patch_size: int,
                 norm_stats: tuple[float, float]) -> None:
        super().__init__()
        self.grid = grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid[0] * grid[1], embed_dim))
        self.norm_stats = nn.Parameter(torch.tensor(norm_stats, device=_default_device()), requires_grad=False)
        self.patch_embed = PatchEmbed(1, embed_dim, (patch_size, patch_size), (patch_size, patch_size))
        self.blocks = vit_blocks(depth, embed_dim, num_heads, mlp_ratio, True, drop_rate, attn_drop_rate,
                                 drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        init_vit_weights(self, (self.cls_token, self.pos_embed))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(mel)  # (B, D, F', T')
        steps = x.shape[-1]
        pos = self.pos_embed[:, 1:].reshape(1, self.grid[0], self.grid[1], -1)[:, :, :steps].flatten(1, 2)
        x = x.flatten(2).transpose(1, 2) + pos  # frequency-major: token f * T' + t
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class M2D(nn.Module):
    """M2D encoder: (B, samples) 16 kHz waveform -> (B, frames, F' * D), one frame per 16 mel frames (160 ms).

    Args:
        embed_dim: ViT width (the output has ``embed_dim * n_mels // patch_size`` features: attribute ``embed_dim``).
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ViT width.
        drop_rate: Dropout on the attention projections and in the MLPs (training only; 0 as published).
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic depth of the last block (linear from 0 over the blocks).
        n_mels: Mel bands.
        chunk_frames: Mel frames per encoder chunk (the training input width, 1001 = 10 s).
        patch_size: Square patch size.
        sample_rate: Input rate in Hz.
        n_fft: STFT size (= window length).
        hop_length: STFT hop in samples.
        fmin: Lowest mel edge in Hz.
        fmax: Highest mel edge in Hz.
        norm_mean: Log-mel mean of the normalisation ``(x - mean) / std``.
        norm_std: Log-mel standard deviation of the normalisation.
    """

    TOP_NORM: tuple[str, ...] = ("backbone.norm.",)
    UNUSED_PARAMETERS: tuple[str, ...] = ()  # norm_stats is frozen (requires_grad False), as published

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        n_mels: int = 80,
        chunk_frames: int = 1001,
        patch_size: int = 16,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        fmin: float = 50.0,
        fmax: float = 8000.0,
        norm_mean: float = -7.1,
        norm_std: float = 4.2,
    ) -> None:
        super().__init__()
        if n_mels % patch_size or chunk_frames < patch_size:
            raise ValueError(f"M2D: n_mels ({n_mels}) must be a multiple of patch_size ({patch_size}) and "
                             f"chunk_frames ({chunk_frames}) at least one patch")
        self.freq_patches = n_mels // patch_size
        self.embed_dim = embed_dim * self.freq_patches
        self.n_mels, self.chunk_frames, self.patch_size, self.n_fft = n_mels, chunk_frames, patch_size, n_fft
        self.norm_mean, self.norm_std = norm_mean, norm_std
        self.backbone = M2DViT(embed_dim, depth, num_heads, mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate,
                               (self.freq_patches, chunk_frames // patch_size), patch_size, (norm_mean, norm_std))
        self.to_spec = NNAudioMel(sample_rate, n_fft, hop_length, n_mels, fmin, fmax)

    @property
    def blocks(self) -> nn.ModuleList:
        """The ViT blocks (``backbone.blocks``)."""
        return self.backbone.blocks

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, 1, n_mels, samples // hop + 1) normalised log-mel."""
        if wave.dim() != 2 or wave.shape[-1] <= self.n_fft // 2:
            raise TransformerInputError(f"M2D: expected a (B, samples) waveform with more than {self.n_fft // 2} "
                                        f"samples (reflect padding), got shape {tuple(wave.shape)}")
        x = torch.log(self.to_spec(wave.float()) + torch.finfo(torch.float32).eps)
        return ((x - self.norm_mean) / self.norm_std).unsqueeze(1)

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, T) normalised log-mel -> (B, frames, embed_dim), chunk by chunk."""
        check_spectrogram(mel, "M2D", self.n_mels)
        frames = mel.shape[-1]
        pad = (self.patch_size - frames % self.chunk_frames % self.patch_size) % self.patch_size
        mel = F.pad(mel, (0, pad))
        outputs = []
        for start in range(0, frames, self.chunk_frames):
            tokens = self.backbone(mel[..., start:start + self.chunk_frames])[:, 1:]
            grid = tokens.reshape(tokens.shape[0], self.freq_patches, -1, tokens.shape[-1])  # (B, F', T', D)
            outputs.append(grid.transpose(1, 2).flatten(2))  # (B, T', F' * D), frequency-major per step
        return torch.cat(outputs, dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, 62 per 1001 mel frames, embed_dim)."""
        return self.encode_mel(self.mel(wave))
