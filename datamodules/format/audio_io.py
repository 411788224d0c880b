"""Encoding, decoding and resampling of audio held as bytes in HDF5 files.

Compressed audio (mp3, flac, ogg/vorbis) is decoded with PyAV, as the EfficientAT loaders do, falling back to
soundfile; int16 PCM is stored as is. Resampling is polyphase (Kaiser-windowed sinc) via ``scipy.signal``.
"""
from __future__ import annotations

import io
from functools import lru_cache
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
        samples = np.asarray(data, dtype=np.int16)
        if samples.size == 0:
            raise AudioDecodeError("empty pcm16 audio")
        return _mix_to_mono(samples.reshape(len(samples), -1).T), int(sample_rate)
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise AudioDecodeError(f"empty {codec} bytes")
    # PyAV (FFmpeg) first, the fastest; soundfile gets the second word. FFmpeg builds have not always honoured the
    # Ogg end trim (the last page's granule position: Vorbis came out up to a block too long or short), so an ogg
    # decode is kept only if it has exactly the samples that position declares; libvorbis (soundfile) decodes the rest.
    wave = None
    try:
        wave, rate = _decode_pyav(raw)
        trusted = codec != "ogg" or wave.size == _ogg_end_granule(raw)
    except Exception:  # decoders raise many error types
        trusted = False
    if not trusted:
        try:
            wave, rate = _decode_soundfile(raw)
        except Exception as err:
            if wave is None:
                raise AudioDecodeError(f"cannot decode {len(raw)} bytes as {codec}: {err}") from err
    if wave.size == 0:
        raise AudioDecodeError(f"{codec} bytes decode to no samples")
    return wave, int(rate)


def _ogg_end_granule(raw: bytes) -> Optional[int]:
    """Granule position (for Vorbis: samples from the start) of the Ogg page that ends ``raw``, if it is one.

    None when the bytes do not end with a complete end-of-stream page (cut files, other formats) or it leaves the
    position unset (-1).
    """
    at = raw.rfind(b"OggS")
    if at < 0 or len(raw) < at + 27 or raw[at + 4] != 0 or not raw[at + 5] & 0x04:  # version 0, end of stream
        return None
    segments = raw[at + 26]
    if at + 27 + segments + sum(raw[at + 27 : at + 27 + segments]) != len(raw):
        return None
    granule = int.from_bytes(raw[at + 6 : at + 14], "little", signed=True)
    return granule if granule >= 0 else None


def _decode_soundfile(raw: bytes) -> Tuple[np.ndarray, int]:
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=False)
    return to_mono_float32(wave), rate


# numpy dtype of each FFmpeg sample format (planar formats, "fltp" etc., by their packed name).
_PYAV_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32, "dbl": np.float64}


def _decode_pyav(raw: bytes) -> Tuple[np.ndarray, int]:
    import av

    # Python touches each ~1152-sample frame only to queue it in an FFmpeg FIFO (a C copy); the samples are read
    # back as one frame per run of frames of one layout, format and rate (the whole stream, in practice), then
    # converted and down-mixed once.
    runs = []
    with av.open(io.BytesIO(raw)) as container:
        stream = container.streams.audio[0]
        fifo, channels = av.AudioFifo(), None
        for frame in container.decode(stream):
            frame.pts = None  # the FIFO would insist on gap-free timestamps
            if frame.layout.nb_channels != channels:  # the FIFO itself does not check the layout
                runs.append(fifo.read())
                fifo, channels = av.AudioFifo(), frame.layout.nb_channels
            try:
                fifo.write(frame)
            except ValueError:  # the sample format or rate changed mid-stream
                runs.append(fifo.read())
                fifo = av.AudioFifo()
                fifo.write(frame)
        runs.append(fifo.read())
        rate = stream.rate
    waves = [_pyav_frame_to_mono(frame) for frame in runs if frame is not None]
    if not waves:
        return np.zeros(0, np.float32), rate
    return (waves[0] if len(waves) == 1 else np.concatenate(waves)), rate


def _pyav_frame_to_mono(frame) -> np.ndarray:
    """A new mono float32 array of a PyAV audio frame."""
    fmt, channels, n = frame.format, frame.layout.nb_channels, frame.samples
    dtype = np.dtype(_PYAV_DTYPES[fmt.packed.name])
    if fmt.is_planar:
        return _mix_to_mono([np.frombuffer(plane, dtype, n) for plane in frame.planes])
    return _mix_to_mono(np.frombuffer(frame.planes[0], dtype, n * channels).reshape(n, channels).T)


def _mix_to_mono(channels) -> np.ndarray:
    """A new mono float32 array of equally long sample arrays of one dtype, one per channel.

    The values :func:`to_mono_float32` gives, in fewer passes: each channel is converted and scaled (integers by
    the same power of two: exact) in one pass, then the channels are averaged along a contiguous axis.
    """
    dtype = channels[0].dtype
    scale = np.float32(1.0 / (np.iinfo(dtype).max + 1) if dtype.kind in "iu" else 1.0)
    x = np.empty((len(channels), channels[0].size), np.float32)
    for c, samples in enumerate(channels):
        np.multiply(samples, scale, out=x[c], casting="unsafe")
    return x[0] if len(x) == 1 else x.mean(axis=0)


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
    """Polyphase resampling of a 1-D (or (..., n)) float waveform along its last axis.

    The filter is ``scipy.signal.resample_poly``'s (Kaiser-windowed sinc, beta 5, 20 taps per input sample of the
    larger rate); so are the output length ``ceil(n * target_sr / orig_sr)`` and the alignment. Down-sampling by an
    integer factor (32 -> 16 kHz, 48 -> 16 kHz) runs as one float32 matrix product instead, several times faster;
    it equals ``resample_poly`` up to float32 rounding (within 1e-6 for samples in [-1, 1]). It uses numpy alone:
    torch's thread pool hangs in processes forked after it started (the packer's workers).
    """
    if orig_sr == target_sr:
        return wave
    g = gcd(int(orig_sr), int(target_sr))
    up, down = int(target_sr) // g, int(orig_sr) // g
    if up == 1 and np.asarray(wave).dtype.kind == "f" and np.shape(wave)[-1] > 0:
        return _decimate(np.asarray(wave), down)
    from scipy.signal import resample_poly

    return resample_poly(wave, up, down, axis=-1).astype(np.float32)


_DECIMATE_BLOCK = 32  # outputs per row of the Toeplitz product: larger rows multiply more zeros


@lru_cache(maxsize=None)
def _decimation_matrix(down: int):
    """(window, block) Toeplitz matrix of resample_poly's filter for down-sampling by ``down``: column ``b`` holds the
    filter at row offset ``b * down``, so a window of input times it gives ``block`` consecutive outputs."""
    from scipy.signal import firwin

    taps = firwin(20 * down + 1, 1.0 / down, window=("kaiser", 5.0)).astype(np.float32)  # symmetric
    matrix = np.zeros(((_DECIMATE_BLOCK - 1) * down + taps.size, _DECIMATE_BLOCK), np.float32)
    for b in range(_DECIMATE_BLOCK):
        matrix[b * down : b * down + taps.size, b] = taps
    return matrix


def _decimate(wave: np.ndarray, down: int) -> np.ndarray:
    """resample_poly(wave, 1, down) along the last axis, in float32: overlapping input windows times a matrix."""
    matrix = _decimation_matrix(down)
    window, block = matrix.shape
    rows = wave.reshape(-1, wave.shape[-1])
    n_rows, n = rows.shape
    n_out = -(-n // down)
    n_blocks = -(-n_out // block)
    # Zeros before (the filter's delay, 10 * down: output j is centred on input j * down) and after the signal.
    padded = np.zeros((n_rows, (n_blocks - 1) * block * down + window), np.float32)
    padded[:, 10 * down : 10 * down + n] = rows
    item = padded.itemsize
    windows = np.lib.stride_tricks.as_strided(padded, (n_rows, n_blocks, window),
                                              (padded.strides[0], block * down * item, item), writeable=False)
    out = np.matmul(windows, matrix).reshape(n_rows, -1)[:, :n_out]
    return np.ascontiguousarray(out).reshape(*wave.shape[:-1], n_out)


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
