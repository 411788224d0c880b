"""Kaldi log-mel filterbank features (``compute-fbank-feats``), batched, for BEATs and ASiT (specs/sed-transformers.md).

Per frame of ``frame_length_ms`` taken every ``frame_shift_ms`` (snip edges: only frames that fit completely): remove
the frame's mean, pre-emphasise within the frame (the first sample is its own predecessor), window, zero-pad on the
right to the next power of two, power spectrum, Kaldi mel filters, ``log(max(x, float32 eps))``. No dither and no
energy column, as BEATs and ASiT use it.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.frontends.efficientat_mel import kaldi_mel_banks

KaldiWindow = Literal["povey", "hanning"]
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


class FrontendInputError(ValueError):
    """A waveform a frontend cannot turn into a spectrogram (wrong rank, too short)."""


def kaldi_window(kind: KaldiWindow, length: int) -> torch.Tensor:
    """Kaldi's symmetric windows: "hanning" is ``0.5 - 0.5 cos(2 pi n / (N - 1))``, "povey" is hanning ** 0.85."""
    if kind not in ("povey", "hanning"):
        raise ValueError(f"window must be 'povey' or 'hanning', got {kind!r}")
    hann = torch.hann_window(length, periodic=False, dtype=torch.float64)
    return (hann.pow(0.85) if kind == "povey" else hann).float()


def waveform_batch(wave: torch.Tensor, name: str) -> torch.Tensor:
    """(B, n) or (B, 1, n) -> (B, n); anything else is a :class:`FrontendInputError` naming ``name``."""
    if wave.dim() == 3 and wave.shape[1] == 1:
        wave = wave.squeeze(1)
    if wave.dim() != 2:
        raise FrontendInputError(f"{name}: expected a waveform batch (B, n) or (B, 1, n), "
                                 f"got shape {tuple(wave.shape)}")
    return wave


class KaldiFbank(nn.Module):
    """Kaldi fbank on a waveform batch, normalised as ``(fbank - norm_mean) / norm_std``; output (B, 1, mels, frames).

    Args:
        sample_rate: Input rate in Hz.
        num_mel_bins: Mel filters.
        frame_length_ms: Frame (window) length in ms (25 ms = 400 samples at 16 kHz, FFT size 512).
        frame_shift_ms: Frame shift in ms.
        window: "povey" (Kaldi's default, symmetric Hann ** 0.85; BEATs) or "hanning" (symmetric Hann; ASiT).
        preemphasis: Per-frame pre-emphasis coefficient (0 = none).
        remove_dc_offset: Subtract each frame's mean before pre-emphasis.
        low_freq: Lowest mel edge in Hz.
        high_freq: Highest mel edge in Hz; ``<= 0`` is an offset from Nyquist (0 = Nyquist).
        waveform_scale: Factor applied to the waveform first (BEATs: 32768, int16 range).
        subtract_mean: Subtract each clip's waveform mean first (ASiT).
        norm_mean: Subtracted from the log-mel.
        norm_std: Divides the log-mel after ``norm_mean`` (BEATs and ASiT pass twice their dataset std).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mel_bins: int = 128,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        window: KaldiWindow = "povey",
        preemphasis: float = 0.97,
        remove_dc_offset: bool = True,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        waveform_scale: float = 1.0,
        subtract_mean: bool = False,
        norm_mean: float = 0.0,
        norm_std: float = 1.0,
    ) -> None:
        super().__init__()
        # Kaldi truncates: samples = int(rate * ms / 1000)
        self.win_length = int(sample_rate * frame_length_ms * 0.001)
        self.hop_length = int(sample_rate * frame_shift_ms * 0.001)
        if self.win_length < 2 or self.hop_length < 1:
            raise ValueError(f"frame_length_ms={frame_length_ms} / frame_shift_ms={frame_shift_ms} give a window of "
                             f"{self.win_length} and a shift of {self.hop_length} samples at {sample_rate} Hz")
        if not 0.0 <= preemphasis <= 1.0:
            raise ValueError(f"preemphasis must be in [0, 1], got {preemphasis}")
        if norm_std <= 0:
            raise ValueError(f"norm_std must be > 0, got {norm_std}")
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        self.sample_rate, self.num_mel_bins = sample_rate, num_mel_bins
        self.preemphasis, self.remove_dc_offset = preemphasis, remove_dc_offset
        self.waveform_scale, self.subtract_mean = waveform_scale, subtract_mean
        self.norm_mean, self.norm_std = norm_mean, norm_std
        fmax = high_freq if high_freq > 0 else sample_rate / 2 + high_freq
        self.register_buffer("window", kaldi_window(window, self.win_length), persistent=False)
        self.register_buffer("banks", kaldi_mel_banks(num_mel_bins, self.n_fft, sample_rate, low_freq, fmax),
                             persistent=False)

    def frames(self, n_samples: int) -> int:
        """Output frames for ``n_samples`` (snip edges: frames that fit completely; 998 for 10 s at 16 kHz)."""
        return 0 if n_samples < self.win_length else 1 + (n_samples - self.win_length) // self.hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) or (B, 1, n) waveform -> (B, 1, num_mel_bins, frames) normalised log-mel."""
        wave = waveform_batch(wave, type(self).__name__)
        if wave.shape[-1] < self.win_length:
            raise FrontendInputError(f"{type(self).__name__}: waveform of {wave.shape[-1]} samples is shorter than "
                                     f"one frame ({self.win_length} samples)")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            x = wave.float()
            if self.subtract_mean:
                x = x - x.mean(dim=-1, keepdim=True)
            x = x * self.waveform_scale
            frames = x.unfold(-1, self.win_length, self.hop_length)  # (B, frames, win)
            if self.remove_dc_offset:
                frames = frames - frames.mean(dim=-1, keepdim=True)
            if self.preemphasis != 0.0:
                previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
                frames = frames - self.preemphasis * previous
            spec = torch.fft.rfft(frames * self.window, n=self.n_fft)  # zero-padded on the right
            power = spec.real.pow(2) + spec.imag.pow(2)
            mel = torch.matmul(power, self.banks.T)  # (B, frames, mels)
            logmel = torch.log(torch.clamp(mel, min=FLOAT32_EPS))
            out = (logmel - self.norm_mean) / self.norm_std
        return out.transpose(1, 2).unsqueeze(1)
