"""The ATST-Frame log-mel frontend (specs/sed-transformers.md, "Frontends").

Power mel (periodic Hann, centred reflect padding, HTK mel without filter norm), ``10 log10(max(x, 1e-10))``, a floor
``top_db`` below the maximum, clamp to ``db_range``, then a fixed min-max map to [-1, 1].
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.frontends.kaldi_fbank import FrontendInputError, waveform_batch
from models.frontends.mel import MelSpectrogram


class ATSTMel(nn.Module):
    """ATST-F mel: (B, n) waveform at 16 kHz -> (B, 1, n_mels, n // hop + 1) in about [-1, 1].

    Args:
        sample_rate: Input rate in Hz.
        n_fft: FFT size.
        win_length: Periodic Hann window length (zero-padded to ``n_fft``).
        hop_length: Hop in samples.
        n_mels: Mel bands (HTK scale, no filter normalisation).
        fmin: Lowest mel edge in Hz.
        fmax: Highest mel edge in Hz.
        top_db: dB values below ``max - top_db`` are raised to it.
        top_db_scope: Where that maximum is taken. "batch" (the published ATST-F code, torchaudio's AmplitudeToDB on
            a (B, mels, frames) tensor): over the whole batch, so a clip's mel depends on its batch mates.
            "clip": each clip's own maximum (batch-independent).
        db_min: Lower clamp of the dB values.
        db_max: Upper clamp of the dB values.
        norm_min: dB value mapped to -1.
        norm_max: dB value mapped to +1.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 160,
        n_mels: int = 64,
        fmin: float = 60.0,
        fmax: float = 7800.0,
        top_db: float = 80.0,
        top_db_scope: Literal["batch", "clip"] = "batch",
        db_min: float = -50.0,
        db_max: float = 80.0,
        norm_min: float = -79.6482,
        norm_max: float = 50.6842,
    ) -> None:
        super().__init__()
        if top_db_scope not in ("batch", "clip"):
            raise ValueError(f"top_db_scope must be 'batch' or 'clip', got {top_db_scope!r}")
        if not norm_min < norm_max:
            raise ValueError(f"need norm_min < norm_max, got {norm_min} and {norm_max}")
        self.power_mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length, n_mels=n_mels,
            fmin=fmin, fmax=fmax, window="hann", power=2.0, scale="htk", log="none",
        )
        self.n_fft, self.hop_length = n_fft, hop_length
        self.top_db, self.top_db_scope = top_db, top_db_scope
        self.db_min, self.db_max, self.norm_min, self.norm_max = db_min, db_max, norm_min, norm_max

    def frames(self, n_samples: int) -> int:
        """Output frames for ``n_samples`` (centred frames: 1001 for 10 s at 16 kHz)."""
        return self.power_mel.frames(n_samples)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) or (B, 1, n) waveform -> (B, 1, n_mels, frames)."""
        wave = waveform_batch(wave, type(self).__name__)
        if wave.shape[-1] <= self.n_fft // 2:
            raise FrontendInputError(f"ATSTMel: waveform of {wave.shape[-1]} samples is too short for centred "
                                     f"reflect padding of n_fft {self.n_fft} (needs > {self.n_fft // 2})")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            mel = self.power_mel(wave.float())  # (B, 1, mels, frames)
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        peak = db.amax() if self.top_db_scope == "batch" else db.amax(dim=(1, 2, 3), keepdim=True)
        db = torch.maximum(db, peak - self.top_db).clamp(self.db_min, self.db_max)
        return (db - self.norm_min) / (self.norm_max - self.norm_min) * 2.0 - 1.0
