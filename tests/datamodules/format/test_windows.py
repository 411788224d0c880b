"""Packing time windows of long recordings (PackItem start/end) and their resume signatures."""
import os

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.audio_io import read_audio_window
from datamodules.format.hdf5 import AudioH5
from datamodules.format.pack import PackItem, item_signature, pack
from datamodules.format.parts import source_signature


def _write(path, seconds: float, rate: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    wave = 0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), rate)


@pytest.mark.bad_input
def test_read_audio_window_is_the_segment_and_is_cut_at_the_end(tmp_path):
    path = str(tmp_path / "x.wav")
    _write(path, 2.0, 8000, 0)
    whole, rate = read_audio_window(path)
    part, _ = read_audio_window(path, 0.5, 1.25)
    np.testing.assert_array_equal(part, whole[4000:10000])
    tail, _ = read_audio_window(path, 1.5, 9.0)  # past the end: cut there, not padded
    np.testing.assert_array_equal(tail, whole[12000:])
    with pytest.raises(ValueError, match="holds no samples"):
        read_audio_window(path, 2.5, 3.0)


def test_window_signature_changes_with_the_window(tmp_path):
    path = str(tmp_path / "x.wav")
    _write(path, 1.0, 8000, 0)
    whole = PackItem(path=path, name="a")
    assert item_signature(whole) == source_signature(path)  # work directories of whole files stay valid
    sigs = {item_signature(PackItem(path=path, name="a", start=s, end=e)) for s, e in ((0.0, 0.5), (0.0, 0.6),
                                                                                     (0.1, 0.5), (0.1, None))}
    assert len(sigs) == 4 and source_signature(path) not in sigs


@pytest.mark.bad_input
def test_pack_windows_and_declared_duration(tmp_path):
    path = str(tmp_path / "x.wav")
    _write(path, 2.0, 8000, 0)
    items = [PackItem(path=path, name="a", start=0.5, end=1.0), PackItem(path=path, name="b", start=1.5, end=3.0),
             PackItem(path=path, name="c", duration=2.5), PackItem(path=path, name="late", start=5.0, end=6.0)]
    report = pack(items, str(tmp_path / "w.h5"), codec="pcm16", sample_rate=8000, workers=2, progress=False)
    assert report.packed == 3 and [e[0] for e in report.errors] == ["late"]
    h5 = AudioH5(str(tmp_path / "w.h5"))
    np.testing.assert_allclose(h5.durations, [0.5, 0.5, 2.5])
    whole, _ = read_audio_window(path)
    np.testing.assert_allclose(h5.waveform(0), whole[4000:8000], atol=1e-4)
    with pytest.raises(ValueError, match="bad window"):
        pack([PackItem(path=path, name="x", start=1.0, end=0.5)], str(tmp_path / "bad.h5"), workers=0)
