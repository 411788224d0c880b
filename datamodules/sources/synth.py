"""Synthetic sounds for the demo data: event classes, scene textures, recording devices, impulse responses.

Every generator takes a ``numpy.random.Generator`` and returns float32 mono audio, so a caller that seeds one
generator per clip gets clips that do not depend on the order in which they are made. The sounds are crude but
audibly distinct, which is all the demo data needs: a tiny model should be able to learn them in a few epochs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import fftconvolve, firwin2

EVENT_CLASSES: Tuple[str, ...] = (
    "am_noise",
    "bell",
    "chirp_down",
    "chirp_up",
    "click_train",
    "engine_hum",
    "noise_burst",
    "tone_vibrato",
)
# Plausible durations (seconds) per event class; bells and clicks are short, hums and tones can be long.
EVENT_DURATIONS: Dict[str, Tuple[float, float]] = {
    "am_noise": (0.8, 2.0),
    "bell": (0.6, 1.5),
    "chirp_down": (0.3, 1.0),
    "chirp_up": (0.3, 1.0),
    "click_train": (0.4, 1.5),
    "engine_hum": (1.0, 2.5),
    "noise_burst": (0.15, 0.6),
    "tone_vibrato": (0.5, 1.8),
}
SCENES: Tuple[str, ...] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
DEVICES: Tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------
def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def shaped_noise(
    rng: np.random.Generator, n: int, sr: int, freqs: Sequence[float], gains_db: Sequence[float]
) -> np.ndarray:
    """Gaussian noise whose magnitude spectrum follows a piecewise-linear (in log frequency) curve.

    Args:
        rng: Random generator.
        n: Number of samples.
        sr: Sample rate.
        freqs: Increasing frequencies (Hz) of the curve's break points.
        gains_db: Gain at each break point; constant beyond the ends.

    Returns:
        (n,) float32 noise with unit RMS.
    """
    # float32 FFTs: this is the hot loop of the demo generator, and the noise needs no more precision.
    spec = sp_fft.rfft(rng.standard_normal(n, dtype=np.float32))
    log_points = np.log(np.asarray(freqs, dtype=np.float64))
    gain_db = np.interp(_log_freqs(n, sr), log_points, np.asarray(gains_db, dtype=np.float64))
    out = sp_fft.irfft(spec * np.power(np.float32(10.0), gain_db.astype(np.float32) / np.float32(20.0)), n)
    return out / _rms(out)


@lru_cache(maxsize=8)
def _log_freqs(n: int, sr: int) -> np.ndarray:
    """log(frequency) of the rfft bins of ``n`` samples (0 Hz clamped to 1 Hz); cached, as clips share lengths."""
    return np.log(np.maximum(sp_fft.rfftfreq(n, 1.0 / sr), 1.0))


def band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float, slope_db: float = 30.0) -> np.ndarray:
    """Unit-RMS noise with a pass band [lo, hi] Hz and ``slope_db`` of attenuation one octave outside it."""
    hi = min(hi, 0.45 * sr)
    return shaped_noise(rng, n, sr, [lo / 2, lo, hi, hi * 2], [-slope_db, 0.0, 0.0, -slope_db])


def envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat sustain, exponential-looking (squared) release over ``n`` samples."""
    env = np.ones(n)
    a = max(1, min(n, int(attack * sr)))
    r = max(1, min(n - a, int(release * sr))) if n > a else 0
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r:
        env[n - r :] = np.linspace(1.0, 0.0, r) ** 2
    return env


def slow_modulation(rng: np.random.Generator, n: int, sr: int, rate: float, depth: float) -> np.ndarray:
    """Smooth random gain in [1 - depth, 1] varying at about ``rate`` Hz."""
    points = max(2, int(np.ceil(n / sr * rate)) + 2)
    knots = rng.uniform(1.0 - depth, 1.0, points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), knots)


def harmonic_tone(f0: np.ndarray, sr: int, amplitudes: Sequence[float], phase_rng: np.random.Generator) -> np.ndarray:
    """Sum of harmonics k * f0(t) (f0 may vary per sample) with given amplitudes, alias-free below Nyquist."""
    # Phase accumulated in float64 and wrapped, then float32 sines: precise enough and twice as fast.
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sr, 2 * np.pi).astype(np.float32)
    out = np.zeros_like(phase)
    top = float(np.max(f0))
    for k, amp in enumerate(amplitudes, start=1):
        if top * k < 0.45 * sr:
            out += np.float32(amp) * np.sin(np.float32(k) * phase + np.float32(phase_rng.uniform(0, 2 * np.pi)))
    return out


def decaying_partials(
    rng: np.random.Generator, n: int, sr: int, freqs: Sequence[float], decays: Sequence[float], amps: Sequence[float]
) -> np.ndarray:
    """Sinusoids with exponential decay (seconds to -60 dB), e.g. bells, chimes, clicks."""
    t = _time(n, sr)
    out = np.zeros(n)
    for f, d, a in zip(freqs, decays, amps):
        if f < 0.45 * sr:
            out += a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-6.9 * t / d)
    return out


def place(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Adds ``sound`` into ``out`` at sample ``start`` (truncated at the end)."""
    start = max(0, start)
    stop = min(len(out), start + len(sound))
    if stop > start:
        out[start:stop] += sound[: stop - start]


def sparse_events(
    rng: np.random.Generator, n: int, sr: int, rate: float, make: Callable[[np.random.Generator], np.ndarray]
) -> np.ndarray:
    """Poisson-distributed copies of ``make(rng)`` at ``rate`` per second."""
    out = np.zeros(n)
    for _ in range(rng.poisson(rate * n / sr)):
        place(out, make(rng), int(rng.integers(0, n)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Event classes
# ---------------------------------------------------------------------------------------------------------------
def _tone_vibrato(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _time(n, sr)
    f0 = rng.uniform(220, 520) * (1 + rng.uniform(0.015, 0.04) * np.sin(2 * np.pi * rng.uniform(4.5, 7.0) * t))
    return harmonic_tone(f0, sr, [1.0, 0.5, 0.3, 0.2, 0.1], rng) * envelope(n, sr, 0.05, 0.15)


def _noise_burst(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _time(n, sr)
    lo = rng.uniform(300, 1500)
    noise = band_noise(rng, n, sr, lo, lo * rng.uniform(4, 10))
    return noise * np.exp(-t / (0.3 * n / sr)) * envelope(n, sr, 0.003, 0.02)


def _chirp(rng: np.random.Generator, n: int, sr: int, up: bool) -> np.ndarray:
    lo, hi = rng.uniform(300, 700), rng.uniform(2500, 5000)
    f_start, f_end = (lo, hi) if up else (hi, lo)
    # Exponential sweep: equal time per octave, which sounds like a steady glide.
    f0 = f_start * (f_end / f_start) ** np.linspace(0, 1, n)
    return harmonic_tone(f0, sr, [1.0, 0.25], rng) * envelope(n, sr, 0.01, 0.05)


def _click_train(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    rate = rng.uniform(8, 25)
    click = decaying_partials(rng, int(0.01 * sr), sr, [rng.uniform(2000, 4000)], [0.004], [1.0])
    click += 0.5 * rng.standard_normal(len(click)) * np.exp(-np.arange(len(click)) / (0.001 * sr))
    out = np.zeros(n)
    for start in np.arange(0, n, sr / rate).astype(int):
        place(out, click, start)
    return out


def _am_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _time(n, sr)
    mod = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 7) * t - np.pi / 2))
    return band_noise(rng, n, sr, 600, 3000) * mod * envelope(n, sr, 0.05, 0.1)


def _bell(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f = rng.uniform(400, 900)
    ratios = np.array([1.0, 2.76, 5.40, 8.93])  # inharmonic partials of a struck bar/bell
    decay = rng.uniform(0.8, 1.6) / np.sqrt(ratios)
    return decaying_partials(rng, n, sr, f * ratios, decay, [1.0, 0.6, 0.4, 0.25]) * envelope(n, sr, 0.002, 0.05)


def _engine_hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _time(n, sr)
    f0 = rng.uniform(45, 80) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    buzz = harmonic_tone(f0, sr, [1.0 / k for k in range(1, 16)], rng)
    return buzz * (1 + 0.3 * np.sin(2 * np.pi * f0.mean() / 2 * t)) * envelope(n, sr, 0.2, 0.3)


_EVENT_MAKERS: Dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "am_noise": _am_noise,
    "bell": _bell,
    "chirp_down": lambda rng, n, sr: _chirp(rng, n, sr, up=False),
    "chirp_up": lambda rng, n, sr: _chirp(rng, n, sr, up=True),
    "click_train": _click_train,
    "engine_hum": _engine_hum,
    "noise_burst": _noise_burst,
    "tone_vibrato": _tone_vibrato,
}


def event_sound(name: str, rng: np.random.Generator, sr: int, duration: float) -> np.ndarray:
    """One event of class ``name`` lasting ``duration`` seconds, normalised to unit RMS.

    Args:
        name: One of :data:`EVENT_CLASSES`.
        rng: Random generator (draws the class's free parameters).
        sr: Sample rate.
        duration: Seconds.
    """
    if name not in _EVENT_MAKERS:
        raise ValueError(f"unknown event class {name!r}; known: {EVENT_CLASSES}")
    x = _EVENT_MAKERS[name](rng, max(1, int(round(duration * sr))), sr)
    return (x / _rms(x)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Scene textures
# ---------------------------------------------------------------------------------------------------------------
def _babble(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    # Speech-band noise with syllable-rate (3-6 Hz) modulation from a few talkers.
    out = np.zeros(n)
    for _ in range(2):
        out += band_noise(rng, n, sr, 250, 3000) * slow_modulation(rng, n, sr, rng.uniform(3, 6), 0.9)
    return out / _rms(out)


def _footsteps(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    def step(r: np.random.Generator) -> np.ndarray:
        m = int(0.06 * sr)
        return band_noise(r, m, sr, 100, 1500) * np.exp(-np.arange(m) / (0.012 * sr))

    return sparse_events(rng, n, sr, rate, step)


def _bird(rng: np.random.Generator, sr: int) -> np.ndarray:
    m = int(rng.uniform(0.05, 0.15) * sr)
    t = _time(m, sr)
    f = rng.uniform(2500, 5000) + rng.uniform(500, 1500) * np.sin(2 * np.pi * rng.uniform(15, 40) * t)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)


def _scene(name: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _time(n, sr)
    if name == "airport":
        chime = decaying_partials(rng, n, sr, [880.0, 1108.7], [0.8, 0.8], [1.0, 0.8]) if rng.random() < 0.3 else 0.0
        hall = shaped_noise(rng, n, sr, [100, 400, 3000, 12000], [-6, 0, -6, -24])
        return hall + 0.8 * _babble(rng, n, sr) + 0.5 * chime
    if name == "bus":
        f0 = np.full(n, rng.uniform(35, 55))
        engine = harmonic_tone(f0, sr, [1.0, 0.7, 0.5, 0.3, 0.2, 0.1], rng)
        rumble = shaped_noise(rng, n, sr, [30, 120, 400, 2000], [0, 0, -20, -40])
        return 2.0 * rumble + 0.7 * engine + 0.2 * _babble(rng, n, sr)
    if name == "metro":
        squeal = np.sin(2 * np.pi * rng.uniform(2500, 4000) * t) * slow_modulation(rng, n, sr, 2, 1.0)
        clacks = sparse_events(
            rng, n, sr, 3.0, lambda r: decaying_partials(r, int(0.05 * sr), sr, [300, 900], [0.03, 0.02], [1, 0.5])
        )
        return 1.5 * shaped_noise(rng, n, sr, [50, 200, 800, 3000], [-3, 0, -10, -35]) + 0.3 * squeal + 2.0 * clacks
    if name == "metro_station":
        room = np.exp(-np.arange(int(0.4 * sr)) / (0.08 * sr)) * rng.standard_normal(int(0.4 * sr))
        wet = fftconvolve(_babble(rng, n, sr) + _footsteps(rng, n, sr, 4.0), room)[:n]
        return wet / _rms(wet) + 0.6 * shaped_noise(rng, n, sr, [40, 150, 600], [0, 0, -30])
    if name == "park":
        wind = shaped_noise(rng, n, sr, [20, 100, 500, 2000], [0, 0, -15, -40]) * slow_modulation(rng, n, sr, 1.5, 0.8)
        return 0.5 * wind + 2.0 * sparse_events(rng, n, sr, 6.0, lambda r: _bird(r, sr))
    if name == "public_square":
        fountain = shaped_noise(rng, n, sr, [1000, 3000, 10000], [-30, 0, -3])
        return _babble(rng, n, sr) + 0.7 * fountain + 0.3 * shaped_noise(rng, n, sr, [50, 300, 1000], [0, 0, -20])
    if name == "shopping_mall":
        chord = rng.choice([[261.6, 329.6, 392.0], [220.0, 277.2, 329.6], [293.7, 370.0, 440.0]])
        music = sum(harmonic_tone(np.full(n, f), sr, [1.0, 0.3], rng) for f in chord)
        return _babble(rng, n, sr) + 0.25 * music + 0.3 * shaped_noise(rng, n, sr, [100, 1000, 8000], [-10, -10, -30])
    if name == "street_pedestrian":
        return 0.8 * _babble(rng, n, sr) + 3.0 * _footsteps(rng, n, sr, 5.0) + 0.7 * shaped_noise(
            rng, n, sr, [30, 150, 800, 4000], [0, 0, -15, -40]
        )
    if name == "street_traffic":
        out = 1.5 * shaped_noise(rng, n, sr, [30, 100, 1000, 6000], [-5, 0, -8, -25])
        for _ in range(rng.integers(1, 3)):
            center, width = rng.uniform(0, n / sr), rng.uniform(0.3, 0.8)
            swoosh = np.exp(-0.5 * ((t - center) / width) ** 2)
            out += 3.0 * band_noise(rng, n, sr, 200, 4000) * swoosh
        return out
    if name == "tram":
        f0 = rng.uniform(300, 500) * (1 + rng.uniform(0.2, 0.6) * t / max(t[-1], 1e-3))  # accelerating motor whine
        whine = harmonic_tone(f0, sr, [1.0, 0.5, 0.3], rng)
        clicks = sparse_events(
            rng, n, sr, 2.0, lambda r: decaying_partials(r, int(0.03 * sr), sr, [1800], [0.02], [1.0])
        )
        return 0.5 * whine + 2.0 * clicks + shaped_noise(rng, n, sr, [40, 150, 700, 3000], [0, 0, -12, -35])
    raise ValueError(f"unknown scene {name!r}; known: {SCENES}")


def scene_texture(name: str, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """``n`` samples of the background texture of scene ``name``, normalised to unit RMS.

    Args:
        name: One of :data:`SCENES`.
        rng: Random generator.
        sr: Sample rate.
        n: Number of samples.
    """
    x = _scene(name, rng, n, sr)
    return (x / _rms(x)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Recording devices and impulse responses
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceModel:
    """A simulated recording device: a linear-phase EQ followed by a noise floor.

    Attributes:
        name: Device id (a, b, c, s1-s6).
        freqs: Break points of the magnitude response, as fractions of Nyquist (0..1).
        gains_db: Gain at each break point.
        noise_db: Level of the added white noise floor relative to the signal RMS.
    """

    name: str
    freqs: Tuple[float, ...]
    gains_db: Tuple[float, ...]
    noise_db: float

    def fir(self, numtaps: int = 129) -> np.ndarray:
        """Linear-phase FIR taps of the device's EQ (odd length, delay ``numtaps // 2``)."""
        return firwin2(numtaps, self.freqs, 10.0 ** (np.asarray(self.gains_db) / 20.0))

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Records ``x`` with this device: EQ (delay-compensated, same length) plus noise floor."""
        taps = self.fir()
        y = fftconvolve(x, taps)[len(taps) // 2 : len(taps) // 2 + len(x)]
        y = y + rng.standard_normal(len(x)) * _rms(y) * 10.0 ** (self.noise_db / 20.0)
        return y.astype(np.float32)


def device_model(name: str, seed: int) -> DeviceModel:
    """The device ``name`` of the demo world of ``seed``: 'a' is nearly flat, the others are coloured.

    Args:
        name: One of :data:`DEVICES`.
        seed: World seed; the same (name, seed) always gives the same device.
    """
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; known: {DEVICES}")
    rng = np.random.default_rng([seed, 7919, DEVICES.index(name)])
    grid = (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0)
    if name == "a":  # the high-quality reference device of TAU
        gains = rng.normal(0.0, 0.5, len(grid))
        return DeviceModel(name, grid, tuple(np.round(gains, 2)), noise_db=-50.0)
    gains = rng.normal(0.0, 4.0, len(grid))
    low_cut = int(rng.integers(1, 4))  # small devices lose the bass ...
    gains[: low_cut + 1] -= np.linspace(25, 0, low_cut + 1)
    high_cut = int(rng.integers(7, 10))  # ... and the top octave(s)
    gains[high_cut:] -= np.linspace(0, 30, len(grid) - high_cut)
    return DeviceModel(name, grid, tuple(np.round(gains, 2)), noise_db=float(rng.uniform(-40, -25)))


def impulse_response(rng: np.random.Generator, sr: int, duration: float) -> np.ndarray:
    """A synthetic device/room impulse response: direct path, early reflections, coloured exponential tail.

    Args:
        rng: Random generator.
        sr: Sample rate.
        duration: Length in seconds.

    Returns:
        (n,) float32 with peak 0.9 at the start.
    """
    n = int(round(duration * sr))
    ir = np.zeros(n)
    ir[0] = 1.0
    for _ in range(int(rng.integers(3, 8))):
        ir[int(rng.integers(int(0.001 * sr), int(0.02 * sr)))] += rng.uniform(-0.5, 0.5)
    decay = rng.uniform(0.02, 0.08) * sr
    tail = shaped_noise(rng, n, sr, [100, 1000, 8000], list(rng.uniform(-12, 0, 3))) * np.exp(-np.arange(n) / decay)
    ir += 0.1 * tail
    return (0.9 * ir / np.max(np.abs(ir))).astype(np.float32)


def add_at_snr(out: np.ndarray, sound: np.ndarray, start: int, snr_db: float, noise_rms: float) -> None:
    """Adds ``sound`` into ``out`` (in place) at ``start``, scaled so that its RMS is ``snr_db`` above ``noise_rms``."""
    place(out, sound * (noise_rms * 10.0 ** (snr_db / 20.0) / _rms(sound)), start)
