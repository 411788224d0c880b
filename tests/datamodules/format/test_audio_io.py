"""Encoding, decoding, reading and resampling of audio (datamodules/format/audio_io.py)."""
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


def test_encode_clips_and_flattens():
    y, _ = decode_audio(encode_audio(np.array([[2.0], [-2.0]]), 8000, "pcm16"), "pcm16", 8000)
    np.testing.assert_allclose(y, [32767 / 32768, -32767 / 32768])


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
