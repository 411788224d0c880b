"""A configurable log-mel frontend (torch.stft) for the DCASE baselines.

Presets used by the shipped configs:
    * DCASE'24 Task 4 CRNN: sample_rate 16000, n_fft 2048, win 2048, hop 256, n_mels 128, fmax 8000, window
      "hamming_symmetric", power 1, log "db" (amin 1e-5, clamp [-50, 80]), normalize "minmax".
    * DCASE'24 Task 1 baseline: sample_rate 32000, n_fft 4096, win 3072, hop 500, n_mels 256, fmax 16000, power 2,
      scale "htk", freqm 48 with mask_before_log, log "log" (x + 1e-5).
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from models.frontends.efficientat_mel import kaldi_mel
from models.frontends.masking import SpecMasking

MelScale = Literal["htk", "kaldi", "slaney"]


def hz_to_mel(freq: torch.Tensor, scale: MelScale) -> torch.Tensor:
    """Hz -> mel on the HTK (2595 log10(1 + f/700)), Kaldi (1127 ln(1 + f/700)) or Slaney scale."""
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    if scale == "kaldi":
        return kaldi_mel(freq)
    if scale == "slaney":
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        min_log_mel, logstep = min_log_hz / f_sp, torch.log(torch.tensor(6.4)) / 27.0
        linear = freq / f_sp
        log_part = min_log_mel + torch.log(torch.clamp(freq, min=min_log_hz) / min_log_hz) / logstep
        return torch.where(freq >= min_log_hz, log_part, linear)
    raise ValueError(f"mel scale must be 'htk', 'kaldi' or 'slaney', got {scale!r}")


def mel_to_hz(mel: torch.Tensor, scale: MelScale) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if scale == "kaldi":
        return 700.0 * torch.expm1(mel / 1127.0)
    if scale == "slaney":
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        min_log_mel, logstep = min_log_hz / f_sp, torch.log(torch.tensor(6.4)) / 27.0
        return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)
    raise ValueError(f"mel scale must be 'htk', 'kaldi' or 'slaney', got {scale!r}")


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float, scale: MelScale = "htk",
    area_norm: bool = False,
) -> torch.Tensor:
    """Triangular filters over the ``n_fft // 2 + 1`` STFT bins, linear in Hz between mel-spaced edges.

    This is the torchaudio/librosa construction (``melscale_fbanks``); ``area_norm`` is Slaney's 2 / bandwidth.

    Returns:
        (n_mels, n_fft // 2 + 1) float32 matrix.
    """
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(torch.tensor(float(fmin)), scale)),
                                     float(hz_to_mel(torch.tensor(float(fmax)), scale)), n_mels + 2), scale)
    diff = edges[1:] - edges[:-1]
    slopes = edges.unsqueeze(0) - freqs.unsqueeze(1)  # (bins, n_mels + 2)
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    banks = torch.clamp(torch.minimum(down, up), min=0.0)
    if area_norm:
        banks = banks * (2.0 / (edges[2:] - edges[:-2])).unsqueeze(0)
    return banks.T.contiguous()


def _window(kind: str, length: int) -> torch.Tensor:
    windows = {
        "hann": lambda: torch.hann_window(length, periodic=True),
        "hann_symmetric": lambda: torch.hann_window(length, periodic=False),
        "hamming": lambda: torch.hamming_window(length, periodic=True),
        "hamming_symmetric": lambda: torch.hamming_window(length, periodic=False),
    }
    if kind not in windows:
        raise ValueError(f"window must be one of {sorted(windows)}, got {kind!r}")
    return windows[kind]()


class MelSpectrogram(nn.Module):
    """STFT -> mel -> (mask) -> log/dB -> (normalise), output (B, 1, n_mels, frames).

    Args:
        sample_rate: Input rate in Hz.
        n_fft: FFT size.
        win_length: Window length (zero-padded to ``n_fft``).
        hop_length: Hop in samples.
        n_mels: Mel bins.
        fmin: Lowest edge in Hz.
        fmax: Highest edge in Hz (``None``: Nyquist).
        window: "hann", "hann_symmetric", "hamming" or "hamming_symmetric" (periodic unless symmetric).
        power: 1 for magnitude, 2 for power.
        scale: Mel scale, "htk", "kaldi" or "slaney".
        area_norm: Slaney area normalisation of the filters.
        log: "log" (ln(x + log_offset)), "db" (20 or 10 log10 of max(x, amin), clamped), or "none".
        log_offset: Offset inside the natural log.
        amin: Floor before dB conversion.
        db_range: (low, high) clamp of the dB values, or ``None``.
        normalize: "none", "minmax" (per instance to [-1, 1]: ``2 (x - min) / (max - min + 1e-8) - 1``, the DESED
            ``TorchScaler("instance", "minmax")``) or "efficientat" ((x + 4.5) / 5).
        freqm: Frequency-mask width in training (0: none).
        timem: Time-mask width in training (0: none).
        mask_before_log: Apply the masks to the linear mel (the DCASE'24 Task 1 baseline) instead of the log-mel.
        center: Centre frames (reflect padding).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        win_length: Optional[int] = None,
        hop_length: int = 256,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: Optional[float] = None,
        window: str = "hann",
        power: float = 2.0,
        scale: MelScale = "htk",
        area_norm: bool = False,
        log: Literal["log", "db", "none"] = "log",
        log_offset: float = 1e-5,
        amin: float = 1e-5,
        db_range: Optional[tuple[float, float]] = None,
        normalize: Literal["none", "minmax", "efficientat"] = "none",
        freqm: int = 0,
        timem: int = 0,
        mask_before_log: bool = False,
        center: bool = True,
    ) -> None:
        super().__init__()
        win_length = win_length or n_fft
        if win_length > n_fft:
            raise ValueError(f"win_length={win_length} exceeds n_fft={n_fft}")
        if log not in ("log", "db", "none") or normalize not in ("none", "minmax", "efficientat"):
            raise ValueError(f"unknown log={log!r} or normalize={normalize!r}")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.power, self.log, self.log_offset, self.amin = n_mels, power, log, log_offset, amin
        self.db_range = tuple(db_range) if db_range is not None else None
        self.normalize, self.mask_before_log, self.center = normalize, mask_before_log, center
        fmax = sample_rate / 2 if fmax is None else fmax
        self.register_buffer("window", _window(window, win_length), persistent=False)
        self.register_buffer("banks", mel_filterbank(n_mels, n_fft, sample_rate, fmin, fmax, scale, area_norm),
                             persistent=False)
        self.masking = SpecMasking(freqm, timem)

    def frames(self, n_samples: int) -> int:
        """Output frames for an input of ``n_samples``."""
        if self.center:
            return n_samples // self.hop_length + 1
        return (n_samples - self.n_fft) // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) or (B, 1, n) waveform -> (B, 1, n_mels, frames): ``finish(linear(wave))``."""
        return self.finish(self.linear(wave))

    def linear(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) or (B, 1, n) waveform -> (B, n_mels, frames) linear mel (magnitude or power), before masking, log
        and normalisation: the point where the DCASE'24 Task 4 baseline mixes clips."""
        if wave.dim() == 3:
            wave = wave.squeeze(1)
        spec = torch.stft(
            wave.float(), self.n_fft, hop_length=self.hop_length, win_length=self.win_length, window=self.window,
            center=self.center, pad_mode="reflect", normalized=False, return_complex=True,
        ).abs()
        if self.power != 1.0:
            spec = spec.pow(self.power)
        return torch.matmul(self.banks, spec)

    def finish(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) linear mel (from :meth:`linear`) -> (B, 1, n_mels, frames): masks, log/dB (clamped),
        normalisation."""
        if self.mask_before_log:
            mel = self.masking(mel)
        if self.log == "log":
            mel = torch.log(mel + self.log_offset)
        elif self.log == "db":
            factor = 20.0 if self.power == 1.0 else 10.0
            mel = factor * torch.log10(torch.clamp(mel, min=self.amin))
            if self.db_range is not None:
                mel = mel.clamp(*self.db_range)
        if not self.mask_before_log:
            mel = self.masking(mel)
        if self.normalize == "minmax":
            lo = mel.amin(dim=(1, 2), keepdim=True)
            hi = mel.amax(dim=(1, 2), keepdim=True)
            mel = 2.0 * (mel - lo) / (hi - lo + 1e-8) - 1.0
        elif self.normalize == "efficientat":
            mel = (mel + 4.5) / 5.0
        return mel.unsqueeze(1)
