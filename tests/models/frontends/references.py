"""Float64 numpy references of the transformer frontends, written from their defining formulas.

Deliberately naive and independent of ``models.frontends``: a loop over frames, an explicit DFT matrix, triangle
filters evaluated bin by bin. The golden tests compare the float32 torch modules against these.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def chirp_and_noise(n_samples: int, sample_rate: int, seed: int, dc: float = 0.0) -> np.ndarray:
    """A linear chirp (100 Hz to 0.4 sr) plus white noise of std 0.05 (fixed seed), plus a DC offset."""
    t = np.arange(n_samples) / sample_rate
    f0, f1, duration = 100.0, 0.4 * sample_rate, n_samples / sample_rate
    chirp = 0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / duration * t ** 2))
    return chirp + 0.05 * np.random.default_rng(seed).standard_normal(n_samples) + dc


def hann(length: int, periodic: bool) -> np.ndarray:
    """``0.5 - 0.5 cos(2 pi n / D)`` with D = length (periodic) or length - 1 (symmetric)."""
    n = np.arange(length)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / (length if periodic else length - 1))


@lru_cache(maxsize=None)
def _dft_matrix(n_fft: int) -> np.ndarray:
    """exp(-2 pi i k n / N) for k = 0..N/2, n = 0..N-1."""
    k, n = np.arange(n_fft // 2 + 1)[:, None], np.arange(n_fft)[None]
    return np.exp(-2j * np.pi * k * n / n_fft)


def dft_power(frame: np.ndarray, n_fft: int) -> np.ndarray:
    """|DFT|^2 of ``frame`` zero-padded on the right to ``n_fft``, bins 0..n_fft/2, by an explicit DFT sum."""
    padded = np.zeros(n_fft)
    padded[:len(frame)] = frame
    spectrum = _dft_matrix(n_fft) @ padded
    return spectrum.real ** 2 + spectrum.imag ** 2


@lru_cache(maxsize=None)
def kaldi_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's triangles, peak 1 in the mel (1127 ln(1 + f/700)) domain, at bins i sr / n_fft for i < n_fft / 2;
    the Nyquist column is zero. Shape (n_mels, n_fft // 2 + 1)."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)
    lo, delta = mel(fmin), (mel(fmax) - mel(fmin)) / (n_mels + 1)
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        for i in range(n_fft // 2):
            x = mel(i * sample_rate / n_fft)
            if left < x <= center:
                out[m, i] = (x - left) / (center - left)
            elif center < x < right:
                out[m, i] = (right - x) / (right - center)
    return out


@lru_cache(maxsize=None)
def htk_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Triangles linear in Hz between edges evenly spaced on the HTK mel scale (2595 log10(1 + f/700)), peak 1,
    no area normalisation, at bins i sr / n_fft for i <= n_fft / 2. Shape (n_mels, n_fft // 2 + 1)."""
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges = [hz(m) for m in np.linspace(mel(fmin), mel(fmax), n_mels + 2)]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, center, right = edges[m:m + 3]
        for i in range(n_fft // 2 + 1):
            f = i * sample_rate / n_fft
            if left < f <= center:
                out[m, i] = (f - left) / (center - left)
            elif center < f < right:
                out[m, i] = (right - f) / (right - center)
    return out


def kaldi_fbank(wave: np.ndarray, window: str, waveform_scale: float, subtract_mean: bool, norm_mean: float,
                norm_std: float, sample_rate: int = 16000, n_mels: int = 128) -> np.ndarray:
    """Kaldi fbank, 25 ms / 10 ms, snip edges, DC removal, pre-emphasis 0.97, 20 Hz - Nyquist; (mels, frames)."""
    x = (wave - wave.mean() if subtract_mean else wave) * waveform_scale
    win, hop, n_fft = 400, 160, 512
    taper = hann(win, periodic=False) ** (0.85 if window == "povey" else 1.0)
    banks = kaldi_banks(n_mels, n_fft, sample_rate, 20.0, sample_rate / 2)
    columns = []
    for start in range(0, len(x) - win + 1, hop):
        frame = x[start:start + win] - x[start:start + win].mean()
        emphasised = np.array([frame[j] - 0.97 * frame[max(j - 1, 0)] for j in range(win)])
        mel = banks @ dft_power(emphasised * taper, n_fft)
        columns.append(np.log(np.maximum(mel, np.finfo(np.float32).eps)))
    return (np.stack(columns, axis=1) - norm_mean) / norm_std


def centred_stft_power(x: np.ndarray, n_fft: int, win_length: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Reflect-pad n_fft/2 both sides, window of ``win_length`` centred in the ``n_fft`` frame; (bins, frames)."""
    padded_window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    padded_window[offset:offset + win_length] = window
    xp = np.pad(x, n_fft // 2, mode="reflect")
    return np.stack([dft_power(xp[i:i + n_fft] * padded_window, n_fft)
                     for i in range(0, len(xp) - n_fft + 1, hop)], axis=1)


def cpjku_mel(wave: np.ndarray, sample_rate: int, win_length: int, hop: int, n_fft: int, fmax: float, periodic: bool,
              log_floor: float | None) -> np.ndarray:
    """CP-JKU AugmentMelSTFT in eval: pre-emphasis, centred STFT power, Kaldi banks 0 - fmax, log, (x + 4.5) / 5."""
    x = wave[1:] - 0.97 * wave[:-1]
    power = centred_stft_power(x, n_fft, win_length, hop, hann(win_length, periodic))
    mel = kaldi_banks(128, n_fft, sample_rate, 0.0, fmax) @ power
    logmel = np.log(mel + 1e-5) if log_floor is None else np.log(np.maximum(mel, log_floor))
    return (logmel + 4.5) / 5.0


def atst_mel(waves: list[np.ndarray], scope: str) -> np.ndarray:
    """ATST-F: periodic Hann 1024 / hop 160, HTK 64 mels 60 - 7800 Hz, dB, top_db 80 below the batch or clip max,
    clamp [-50, 80], min-max with -79.6482 / 50.6842; (B, mels, frames)."""
    banks = htk_banks(64, 1024, 16000, 60.0, 7800.0)
    db = np.stack([10 * np.log10(np.maximum(banks @ centred_stft_power(w, 1024, 1024, 160, hann(1024, True)), 1e-10))
                   for w in waves])
    peak = db.max() if scope == "batch" else db.max(axis=(1, 2), keepdims=True)
    db = np.clip(np.maximum(db, peak - 80.0), -50.0, 80.0)
    return (db + 79.6482) / (50.6842 + 79.6482) * 2.0 - 1.0
