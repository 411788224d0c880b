"""Encoding, decoding, reading and resampling of audio (datamodules/format/audio_io.py)."""
import io

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.audio_io import (
    CODECS,
    AudioDecodeError,
    decode_audio,
    encode_audio,
    pad_or_crop,
    read_audio_file,
    resample,
    to_mono_float32,
)


def _signal(sr: int, seconds: float = 1.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)


def _snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - test).astype(np.float64) ** 2)))


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("sr", [16000, 32000, 44100])
def test_encode_decode_round_trip(codec, sr):
    x = _signal(sr)
    data = encode_audio(x, sr, codec)
    assert data.dtype == (np.int16 if codec == "pcm16" else np.uint8)
    y, rate = decode_audio(data, codec, sr)
    assert rate == sr and y.dtype == np.float32
    assert len(y) == len(x)  # every codec, ogg included, keeps the exact length
    if codec == "pcm16":
        assert np.max(np.abs(x - y)) <= 1 / 32767
    elif codec == "flac":
        assert np.max(np.abs(x - y)) <= 1e-4
    else:
        assert _snr_db(x, y) > 25


@pytest.mark.bad_input
def test_encode_clips_and_flattens():
    y, _ = decode_audio(encode_audio(np.array([[2.0], [-2.0]]), 8000, "pcm16"), "pcm16", 8000)
    np.testing.assert_allclose(y, [32767 / 32768, -32767 / 32768])


@pytest.mark.bad_input
def test_decode_errors():
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(b"", "mp3")
    with pytest.raises(AudioDecodeError, match="cannot decode"):
        decode_audio(np.frombuffer(b"not audio at all" * 50, np.uint8), "mp3")
    with pytest.raises(AudioDecodeError):
        decode_audio(np.zeros(0, np.int16), "pcm16", 32000)
    with pytest.raises(ValueError, match="sample_rate"):
        decode_audio(np.zeros(10, np.int16), "pcm16")
    with pytest.raises(ValueError, match="codec"):
        encode_audio(np.zeros(10), 32000, "wma")


def test_read_audio_file(tmp_path):
    x = _signal(22050)
    sf.write(tmp_path / "mono.wav", x, 22050, subtype="FLOAT")
    sf.write(tmp_path / "stereo.flac", np.stack([x, -x * 0.5], axis=1), 22050)
    y, rate = read_audio_file(str(tmp_path / "mono.wav"))
    assert rate == 22050
    np.testing.assert_array_equal(y, x)
    y, rate = read_audio_file(str(tmp_path / "stereo.flac"))
    np.testing.assert_allclose(y, 0.25 * x, atol=1e-4)  # channels averaged
    mp3 = encode_audio(x, 22050, "mp3")
    (tmp_path / "clip.mp3").write_bytes(mp3.tobytes())
    y, rate = read_audio_file(str(tmp_path / "clip.mp3"))
    assert rate == 22050 and abs(len(y) - len(x)) < 1200


@pytest.mark.bad_input
def test_read_audio_file_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.wav").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(AudioDecodeError, match="empty file"):
        read_audio_file(str(tmp_path / "empty.wav"))
    with pytest.raises(AudioDecodeError, match="garbage.wav"):
        read_audio_file(str(tmp_path / "garbage.wav"))


def test_to_mono_float32():
    np.testing.assert_allclose(to_mono_float32(np.array([16384, -32768], np.int16)), [0.5, -1.0])
    np.testing.assert_allclose(to_mono_float32(np.array([[1.0, 0.0], [0.5, 0.5]])), [0.5, 0.5])


def test_resample():
    x = _signal(44100)
    assert resample(x, 44100, 44100) is x
    y = resample(x, 44100, 32000)
    assert y.dtype == np.float32 and len(y) == int(np.ceil(len(x) * 32000 / 44100))
    # A 440 Hz tone stays a 440 Hz tone.
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 32000 / len(y) - 440) < 2
    batch = resample(np.stack([x, x]), 44100, 16000)
    assert batch.shape == (2, int(np.ceil(len(x) * 16000 / 44100)))


def test_pad_or_crop():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_crop(x, 12), np.r_[x, 0, 0])
    np.testing.assert_array_equal(pad_or_crop(x, 4), x[:4])
    crops = {pad_or_crop(x, 4, np.random.default_rng(s))[0] for s in range(20)}
    assert len(crops) > 1 and crops <= set(range(7))
    assert pad_or_crop(np.ones((2, 3)), 5).shape == (2, 5)


def _per_frame_pyav(raw: bytes) -> np.ndarray:
    """The original PyAV path, kept as the oracle: every frame converted and down-mixed on its own."""
    import av

    chunks = []
    with av.open(io.BytesIO(raw)) as container:
        for frame in container.decode(container.streams.audio[0]):
            arr = frame.to_ndarray()
            channels = len(frame.layout.channels)
            arr = arr.reshape(channels, -1) if frame.format.is_planar else arr.reshape(-1, channels).T
            chunks.append(to_mono_float32(arr.T))
    return np.concatenate(chunks)


def _stored(wave: np.ndarray, sr: int, codec: str) -> np.ndarray:
    """Stored bytes (or int16 samples) of an (n,) or (n, channels) waveform."""
    if codec == "pcm16":
        return np.round(wave * 32767.0).astype(np.int16)
    if wave.ndim == 1:
        return encode_audio(wave, sr, codec)
    buf = io.BytesIO()
    fmt, subtype = {"mp3": ("MP3", "MPEG_LAYER_III"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}[codec]
    sf.write(buf, wave, sr, format=fmt, subtype=subtype)
    return np.frombuffer(buf.getvalue(), np.uint8)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_matches_per_frame_reference(codec, channels):
    x = _signal(32000, seconds=2.0)
    wave = x if channels == 1 else np.stack([x, -0.5 * x + 0.05], axis=1)
    data = _stored(wave, 32000, codec)
    y, rate = decode_audio(data, codec, 32000)
    if codec == "pcm16":
        expected = to_mono_float32(data)
    elif codec == "ogg":  # libvorbis first: it honours the Ogg end trim
        expected = to_mono_float32(sf.read(io.BytesIO(data.tobytes()), dtype="float32")[0])
    else:
        expected = _per_frame_pyav(data.tobytes())
    assert rate == 32000 and y.dtype == np.float32 and y.ndim == 1 and y.flags.writeable
    assert len(y) == len(expected)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)
    if codec != "pcm16":  # the PyAV path itself (ogg's fallback) matches the per-frame oracle too
        from datamodules.format.audio_io import _decode_pyav

        z, pyav_rate = _decode_pyav(data.tobytes())
        reference = _per_frame_pyav(data.tobytes())
        assert pyav_rate == 32000 and z.dtype == np.float32 and len(z) == len(reference)
        np.testing.assert_allclose(z, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("codec", ["mp3", "flac", "ogg"])
@pytest.mark.bad_input
def test_decode_truncated(codec):
    data = encode_audio(_signal(32000), 32000, codec)
    with pytest.raises(AudioDecodeError, match=f"cannot decode 40 bytes as {codec}: "):
        decode_audio(data[:40], codec)
    half = data[: data.size // 2]
    if codec == "mp3":  # a cut mp3 decodes up to the cut
        assert 0 < len(decode_audio(half, codec)[0]) < len(_signal(32000))
    else:  # flac loses sync, Vorbis misses its end: both decoders refuse
        with pytest.raises(AudioDecodeError, match=f"cannot decode {half.size} bytes as {codec}: "):
            decode_audio(half, codec)


@pytest.mark.bad_input
def test_ogg_end_granule():
    from datamodules.format.audio_io import _ogg_end_granule

    x = _signal(32000)
    data = encode_audio(x, 32000, "ogg").tobytes()
    assert _ogg_end_granule(data) == len(x)
    assert _ogg_end_granule(data[:-1]) is None  # the last page is cut
    assert _ogg_end_granule(encode_audio(x, 32000, "mp3").tobytes()) is None


def test_ogg_falls_back_to_soundfile_when_pyav_misses_the_end_trim(monkeypatch):
    import datamodules.format.audio_io as audio_io

    x = _signal(32000)
    data = encode_audio(x, 32000, "ogg")
    monkeypatch.setattr(audio_io, "_decode_pyav", lambda raw: (np.zeros(len(x) + 64, np.float32), 32000))
    y, _ = decode_audio(data, "ogg")
    assert len(y) == len(x) and _snr_db(x, y) > 25  # libvorbis, not the 64-sample-long zeros
    monkeypatch.setattr(audio_io, "_decode_soundfile", lambda raw: 1 / 0)
    y, _ = decode_audio(data, "ogg")  # soundfile fails too: PyAV's output is the answer
    np.testing.assert_array_equal(y, np.zeros(len(x) + 64))


@pytest.mark.parametrize("orig_sr", [32000, 48000, 44100])
@pytest.mark.parametrize("n", [1, 7, 40, 1001, 32000])
def test_resample_down_matches_resample_poly(orig_sr, n):
    from scipy.signal import resample_poly

    x = np.clip(np.random.default_rng(n).normal(0, 0.4, (2, n)), -1, 1).astype(np.float32)
    y = resample(x, orig_sr, 16000)
    g = np.gcd(orig_sr, 16000)
    expected = resample_poly(x, 16000 // g, orig_sr // g, axis=-1)
    assert y.dtype == np.float32 and y.shape == expected.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)  # the documented tolerance of the fast path
    np.testing.assert_allclose(resample(x[0], orig_sr, 16000), y[0], rtol=0, atol=1e-7)
