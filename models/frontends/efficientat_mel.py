"""The log-mel frontend of the CP-JKU EfficientAT family (specs/tagging.md, "Mel frontend")."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from models.frontends.masking import SpecMasking


def kaldi_mel(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi's mel scale, 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> torch.Tensor:
    """Triangular mel filters as Kaldi computes them (no VTLN warp), plus a zero Nyquist column.

    ``n_mels + 2`` points evenly spaced on the Kaldi mel scale between ``fmin`` and ``fmax``; each filter is a
    triangle of peak 1 in the mel domain evaluated at the bin centres ``i * sr / n_fft`` for ``i < n_fft / 2``.

    Returns:
        (n_mels, n_fft // 2 + 1) float32 matrix.
    """
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    n_bins = n_fft // 2
    mel_lo, mel_hi = kaldi_mel(torch.tensor(float(fmin))), kaldi_mel(torch.tensor(float(fmax)))
    delta = (mel_hi - mel_lo) / (n_mels + 1)
    idx = torch.arange(n_mels, dtype=torch.float32).unsqueeze(1)
    left = mel_lo + idx * delta
    center = left + delta
    right = center + delta
    bin_mel = kaldi_mel(torch.arange(n_bins, dtype=torch.float32) * (sample_rate / n_fft)).unsqueeze(0)
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


class EfficientATMel(nn.Module):
    """Pre-emphasis, STFT power, Kaldi mel, ``log(x + 1e-5)``, masks, ``(x + 4.5) / 5``: CP-JKU's AugmentMelSTFT.

    The same module serves PaSST-S (the defaults) and fPaSST (16 kHz, periodic window, ``log(max(x, 1e-7))``).

    In training mode fmin/fmax are jittered once per batch; in eval mode they are fixed.

    Args:
        n_mels: Mel bins.
        sample_rate: Input rate in Hz.
        win_length: Hann window length in samples (zero-padded to ``n_fft``).
        hop_size: Hop in samples.
        n_fft: FFT size.
        fmin: Lowest mel edge in Hz.
        fmax: Highest mel edge in Hz; ``None`` gives ``sample_rate / 2 - fmax_aug_range / 2``.
        fmin_aug_range: Training jitter: fmin + randint(0, fmin_aug_range) (1 = none).
        fmax_aug_range: Training jitter: fmax + fmax_aug_range / 2 - randint(0, fmax_aug_range) (1 = none).
        freqm: Frequency-mask width (0 = none); masks act on the log-mel before the normalisation.
        timem: Time-mask width (0 = none).
        periodic_window: Periodic Hann (fPaSST) instead of the symmetric one (EfficientAT, PaSST-S).
        log_floor: ``None``: ``log(mel + 1e-5)`` (EfficientAT, PaSST-S); a number: ``log(max(mel, log_floor))``
            (fPaSST: 1e-7).
    """

    def __init__(
        self,
        n_mels: int = 128,
        sample_rate: int = 32000,
        win_length: int = 800,
        hop_size: int = 320,
        n_fft: int = 1024,
        fmin: float = 0.0,
        fmax: Optional[float] = None,
        fmin_aug_range: int = 10,
        fmax_aug_range: int = 2000,
        freqm: int = 0,
        timem: int = 0,
        periodic_window: bool = False,
        log_floor: Optional[float] = None,
    ) -> None:
        super().__init__()
        if fmin_aug_range < 1 or fmax_aug_range < 1:
            raise ValueError("fmin_aug_range and fmax_aug_range must be >= 1 (1 means no jitter)")
        if win_length > n_fft:
            raise ValueError(f"win_length={win_length} exceeds n_fft={n_fft}")
        if log_floor is not None and log_floor <= 0:
            raise ValueError(f"log_floor must be > 0 or None, got {log_floor}")
        self.log_floor = log_floor
        self.n_mels, self.sample_rate, self.n_fft = n_mels, sample_rate, n_fft
        self.win_length, self.hop_size = win_length, hop_size
        self.fmin = float(fmin)
        self.fmax = float(sample_rate // 2 - fmax_aug_range // 2 if fmax is None else fmax)
        self.fmin_aug_range, self.fmax_aug_range = fmin_aug_range, fmax_aug_range
        self.register_buffer("window", torch.hann_window(win_length, periodic=periodic_window), persistent=False)
        self.register_buffer("preemphasis", torch.tensor([[[-0.97, 1.0]]]), persistent=False)
        self.register_buffer("eval_banks", kaldi_mel_banks(n_mels, n_fft, sample_rate, self.fmin, self.fmax), persistent=False)
        self.masking = SpecMasking(freqm, timem)

    def frames(self, n_samples: int) -> int:
        """Output frames for an input of ``n_samples`` (pre-emphasis drops one sample, center=True pads)."""
        return (n_samples - 1) // self.hop_size + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) or (B, 1, n) waveform -> (B, 1, n_mels, frames) normalised log-mel."""
        if wave.dim() == 3:
            wave = wave.squeeze(1)
        x = nn.functional.conv1d(wave.unsqueeze(1), self.preemphasis).squeeze(1)
        spec = torch.stft(
            x, self.n_fft, hop_length=self.hop_size, win_length=self.win_length, window=self.window,
            center=True, pad_mode="reflect", normalized=False, return_complex=True,
        )
        power = spec.real.pow(2) + spec.imag.pow(2)
        banks = self.eval_banks
        if self.training and (self.fmin_aug_range > 1 or self.fmax_aug_range > 1):
            fmin = self.fmin + int(torch.randint(self.fmin_aug_range, (1,)))
            fmax = self.fmax + self.fmax_aug_range // 2 - int(torch.randint(self.fmax_aug_range, (1,)))
            banks = kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, fmin, min(fmax, self.sample_rate / 2))
            banks = banks.to(power.device)
        with torch.autocast(device_type=power.device.type, enabled=False):
            mel = torch.matmul(banks, power.float())
        mel = mel + 1e-5 if self.log_floor is None else torch.clamp(mel, min=self.log_floor)
        logmel = self.masking(torch.log(mel))
        return ((logmel + 4.5) / 5.0).unsqueeze(1)
