"""Encoding, decoding and resampling of audio held as bytes in HDF5 files.

Compressed audio (mp3, flac, ogg/vorbis) is decoded with PyAV, as the EfficientAT loaders do, falling back to
soundfile; int16 PCM is stored as is. Resampling is polyphase (Kaiser-windowed sinc) via ``scipy.signal``.
"""
from __future__ import annotations

import io
from math import gcd
from typing import Optional, Tuple

import numpy as np

COMPRESSED_CODECS = ("mp3", "flac", "ogg")
CODECS = COMPRESSED_CODECS + ("pcm16",)
_SF_FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}


class AudioDecodeError(ValueError):
    """Raised when bytes cannot be decoded as audio, or decode to no samples."""


def to_mono_float32(x: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) audio of any numeric dtype -> (n,) float32 in [-1, 1]."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x


def encode_audio(wave: np.ndarray, sample_rate: int, codec: str, quality: float = 0.9) -> np.ndarray:
    """Encodes a mono float waveform.

    Args:
        wave: (n,) float waveform in [-1, 1] (clipped).
        sample_rate: Its rate in Hz.
        codec: One of :data:`CODECS`.
        quality: 0..1, for lossy codecs (higher is better).

    Returns:
        uint8 array of the file bytes, or an int16 array of samples for ``pcm16``.
    """
    wave = np.clip(np.asarray(wave, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if codec == "pcm16":
        return np.round(wave * 32767.0).astype(np.int16)
    if codec not in _SF_FORMATS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    import soundfile as sf

    fmt, subtype = _SF_FORMATS[codec]
    buf = io.BytesIO()
    kwargs = {"compression_level": 1.0 - quality} if codec != "flac" else {}
    sf.write(buf, wave, sample_rate, format=fmt, subtype=subtype, **kwargs)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def decode_audio(data: np.ndarray | bytes, codec: str, sample_rate: int | None = None) -> Tuple[np.ndarray, int]:
    """Decodes stored audio to a mono float32 waveform.

    Args:
        data: File bytes (uint8 array or ``bytes``) or int16 samples for ``pcm16``.
        codec: The stored codec.
        sample_rate: Rate of ``pcm16`` data (ignored for compressed codecs, which carry their own).

    Returns:
        (waveform, rate).

    Raises:
        AudioDecodeError: Unreadable or empty audio.
    """
    if codec == "pcm16":
        if sample_rate is None:
            raise ValueError("pcm16 data needs its sample_rate")
        x = to_mono_float32(np.asarray(data, dtype=np.int16))
        if x.size == 0:
            raise AudioDecodeError("empty pcm16 audio")
        return x, int(sample_rate)
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise AudioDecodeError(f"empty {codec} bytes")
    # PyAV ignores the Ogg end trim (last granule position): Vorbis comes out up to a block too long or short,
    # so ogg goes to libvorbis (soundfile) first. Everything else: PyAV first, soundfile gets the second word.
    first, second = (_decode_soundfile, _decode_pyav) if codec == "ogg" else (_decode_pyav, _decode_soundfile)
    try:
        wave, rate = first(raw)
    except Exception:  # decoders raise many error types
        try:
            wave, rate = second(raw)
        except Exception as err:
            raise AudioDecodeError(f"cannot decode {len(raw)} bytes as {codec}: {err}") from err
    if wave.size == 0:
        raise AudioDecodeError(f"{codec} bytes decode to no samples")
    return wave, int(rate)


def _decode_soundfile(raw: bytes) -> Tuple[np.ndarray, int]:
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=False)
    return to_mono_float32(wave), rate


def _decode_pyav(raw: bytes) -> Tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(raw)) as container:
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            channels = len(frame.layout.channels)
            arr = arr.reshape(channels, -1) if frame.format.is_planar else arr.reshape(-1, channels).T
            chunks.append(to_mono_float32(arr.T))
        rate = stream.rate
    if not chunks:
        return np.zeros(0, np.float32), rate
    return np.concatenate(chunks), rate


def read_audio_file(path: str) -> Tuple[np.ndarray, int]:
    """Reads an audio file from disk as mono float32 (soundfile first, PyAV for what it cannot read)."""
    try:
        import soundfile as sf

        wave, rate = sf.read(path, dtype="float32", always_2d=False)
        wave = to_mono_float32(wave)
    except Exception as sf_err:
        with open(path, "rb") as f:
            raw = f.read()
        if not raw:
            raise AudioDecodeError(f"{path}: empty file") from None
        try:
            wave, rate = decode_audio(raw, codec=path.rsplit(".", 1)[-1].lower())
        except AudioDecodeError as err:
            # soundfile's message names the file and the reason; the fallback's names only an in-memory buffer.
            raise AudioDecodeError(f"{path}: unreadable audio ({sf_err})") from err
    if wave.size == 0:
        raise AudioDecodeError(f"{path}: no samples")
    if not np.all(np.isfinite(wave)):
        raise AudioDecodeError(f"{path}: non-finite samples")
    return wave, int(rate)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling of a 1-D (or (..., n)) float waveform along its last axis."""
    if orig_sr == target_sr:
        return wave
    from scipy.signal import resample_poly

    g = gcd(int(orig_sr), int(target_sr))
    return resample_poly(wave, target_sr // g, orig_sr // g, axis=-1).astype(np.float32)


def pad_or_crop(wave: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Zero-pads at the end, or crops to ``length`` (at a random offset drawn from ``rng``, else from the start)."""
    n = wave.shape[-1]
    if n == length:
        return wave
    if n < length:
        return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, length - n)])
    start = int(rng.integers(0, n - length + 1)) if rng is not None else 0
    return wave[..., start : start + length]


def _window_samples(path: str, start: float, end: Optional[float], rate: int, frames: int) -> Tuple[int, int]:
    """First and one-past-last sample of the window [start, end) seconds in a file of ``frames`` samples."""
    first = int(round(start * rate))
    last = frames if end is None else min(int(round(end * rate)), frames)
    if first >= last:
        raise ValueError(
            f"{path}: the window {start:g}-{'end' if end is None else f'{end:g}'} s holds no samples "
            f"(the file has {frames / rate:.3f} s)"
        )
    return first, last


def read_audio_window(path: str, start: float = 0.0, end: Optional[float] = None) -> Tuple[np.ndarray, int]:
    """Reads the seconds [start, end) of an audio file as mono float32 (the whole file by default).

    soundfile seeks to the window, so a 10 s chunk of a 5 min recording costs 10 s of reading; files soundfile
    cannot open are read whole (PyAV) and cut. The window is cut at the end of the file, never zero-padded.

    Returns:
        (waveform, rate of the file).

    Raises:
        ValueError: The window holds no samples of the file; unreadable audio (:class:`AudioDecodeError`).
    """
    if start == 0.0 and end is None:
        return read_audio_file(path)
    import soundfile as sf

    try:
        handle = sf.SoundFile(path)
    except Exception:  # a format libsndfile does not read (e.g. m4a): decode it all, then cut
        wave, rate = read_audio_file(path)
        first, last = _window_samples(path, start, end, rate, wave.size)
        return wave[first:last], rate
    with handle as f:
        rate = int(f.samplerate)
        first, last = _window_samples(path, start, end, rate, f.frames)
        f.seek(first)
        wave = to_mono_float32(f.read(last - first, dtype="float32", always_2d=False))
    if wave.size == 0:
        raise AudioDecodeError(f"{path}: no samples in the window {start:g}-{end} s")
    if not np.all(np.isfinite(wave)):
        raise AudioDecodeError(f"{path}: non-finite samples")
    return wave, rate
