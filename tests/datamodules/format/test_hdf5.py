"""The HDF5 format: write_h5 / AudioH5 round trips, and reading files in the community AudioSet layout."""
import pickle

import h5py
import numpy as np
import pytest

from datamodules.format.audio_io import encode_audio
from datamodules.format.hdf5 import FORMAT_NAME, AudioH5, ClipRecord, write_h5


def _tone(freq: float, sr: int = 32000, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def test_community_audioset_layout(tmp_path):
    """Exactly the three datasets of the public AudioSet/FSD50K files, no attributes."""
    path = str(tmp_path / "balanced_train_segments_mp3.hdf")
    rng = np.random.default_rng(0)
    labels = rng.random((3, 527)) < 0.01
    labels[:, [0, 137, 526]] = True  # the first, a middle and the last class survive packbits
    with h5py.File(path, "w") as f:
        names = [b"Y--PJHxphWEs_30000_40000.mp3", b"Yabc.mp3", b"Ydef.mp3"]
        f.create_dataset("audio_name", data=np.array(names, "S20"))
        mp3 = f.create_dataset("mp3", (3,), dtype=h5py.vlen_dtype(np.uint8))
        for i, freq in enumerate((440, 880, 1320)):
            mp3[i] = encode_audio(_tone(freq, seconds=10.0), 32000, "mp3")
        f.create_dataset("target", data=np.packbits(labels, axis=1))
    assert h5py.File(path, "r")["target"].shape == (3, 66)

    h5 = AudioH5(path, num_classes=527)
    assert len(h5) == 3 and h5.codec == "mp3" and h5.sample_rate == 32000
    assert h5.names[0] == "Y--PJHxphWEs_30000_4"  # S20 truncates, as in the public files
    assert h5.num_classes == 527 and h5.class_names == []
    for i in range(3):
        np.testing.assert_array_equal(h5.weak_target(i), labels[i].astype(np.float32))
    np.testing.assert_array_equal(h5.weak_targets(), labels)
    wave = h5.waveform(1, length=320000)
    assert wave.shape == (320000,)
    assert abs(np.argmax(np.abs(np.fft.rfft(wave))) * 32000 / len(wave) - 880) < 2
    assert h5.waveform(0, sample_rate=16000).shape == (160000,)
    assert not h5.has_events() and h5.captions(0) == [] and h5.durations is None
    with pytest.raises(ValueError, match="scene"):
        h5.label("scene", 0)
    with pytest.raises(ValueError, match="events"):
        h5.events(0)


def _records():
    return [
        ClipRecord("a.wav", encode_audio(_tone(440), 32000, "pcm16"), 1.0, weak=[0, 9],
                   events=[(0.1, 0.5, 0, 1.0), (0.2, 0.9, 9, 0.4)], scene=1, device=0, city=2, captions=["one", "two"]),
        ClipRecord("b.wav", encode_audio(_tone(660), 32000, "pcm16"), 1.0),
        ClipRecord("a_much_longer_clip_name.wav", encode_audio(_tone(880, seconds=0.5), 32000, "pcm16"), 0.5,
                   weak=[3], events=[(0.0, 0.25, 3, 1.0)], scene=0, captions=["three"]),
    ]


def test_write_read_round_trip(tmp_path):
    path = str(tmp_path / "clips.h5")
    classes = [f"c{i}" for i in range(10)]
    write_h5(path, iter(_records()), 3, codec="pcm16", sample_rate=32000, class_names=classes,
             scene_names=["park", "tram"], device_names=["a"], city_names=["lyon", "milan", "paris"], name_width=40)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT_NAME and f["target"].shape == (3, 2)
        np.testing.assert_array_equal(f["events/index"][()], [0, 2, 2, 3])
        np.testing.assert_array_equal(f["captions/index"][()], [0, 2, 2, 3])
    h5 = AudioH5(path)
    assert h5.class_names == classes and h5.num_classes == 10 and h5.codec == "pcm16"
    assert h5.scene_names == ["park", "tram"] and h5.city_names == ["lyon", "milan", "paris"]
    assert list(h5.names) == ["a.wav", "b.wav", "a_much_longer_clip_name.wav"]
    assert h5.index_of("b.wav") == 1
    np.testing.assert_array_equal(np.nonzero(h5.weak_target(0))[0], [0, 9])
    assert h5.weak_target(1).sum() == 0
    ev = h5.events(0)
    np.testing.assert_allclose(ev["onset"], [0.1, 0.2])
    np.testing.assert_array_equal(ev["class"], [0, 9])
    np.testing.assert_allclose(ev["confidence"], [1.0, 0.4])
    assert len(h5.events(1)["onset"]) == 0
    assert h5.captions(0) == ["one", "two"] and h5.captions(1) == [] and h5.captions(2) == ["three"]
    assert [h5.label("scene", i) for i in range(3)] == [1, -1, 0]
    np.testing.assert_array_equal(h5.labels("city"), [2, -1, -1])
    np.testing.assert_allclose(h5.durations, [1.0, 1.0, 0.5])
    np.testing.assert_allclose(h5.waveform(0), _tone(440), atol=1 / 32767)
    assert h5.waveform(2, length=32000).shape == (32000,)
    # A random crop comes from the clip.
    crop = h5.waveform(0, length=1000, rng=np.random.default_rng(1))
    assert crop.shape == (1000,)
    # Readers travel to DataLoader workers without their file handle.
    h5.waveform(0)
    clone = pickle.loads(pickle.dumps(h5))
    assert clone._h5 is None
    np.testing.assert_array_equal(clone.waveform(1), h5.waveform(1))


@pytest.mark.bad_input
def test_write_errors(tmp_path):
    path = str(tmp_path / "x.h5")
    with pytest.raises(ValueError, match="codec"):
        write_h5(path, _records(), 3, codec="wav", sample_rate=32000)
    with pytest.raises(ValueError, match="expected 4 records"):
        write_h5(path, _records(), 4, codec="pcm16", sample_rate=32000, class_names=[f"c{i}" for i in range(10)],
                 name_width=40)
    with pytest.raises(ValueError, match="more than n_records"):
        write_h5(path, _records(), 2, codec="pcm16", sample_rate=32000, class_names=[f"c{i}" for i in range(10)],
                 name_width=40)
    with pytest.raises(ValueError, match="longer than name_width"):
        write_h5(path, _records(), 3, codec="pcm16", sample_rate=32000, class_names=[f"c{i}" for i in range(10)])


@pytest.mark.bad_input
def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        AudioH5(str(tmp_path / "missing.h5"))
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        AudioH5(str(tmp_path / "text.h5"))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="audio_name"):
        AudioH5(str(tmp_path / "other.h5"))
    path = str(tmp_path / "ok.h5")
    write_h5(path, _records(), 3, codec="pcm16", sample_rate=32000, class_names=[f"c{i}" for i in range(10)],
             name_width=40)
    with pytest.raises(ValueError, match="stores 10 classes"):
        AudioH5(path, num_classes=527)


def _community(path, target=None, names=3, audio_rows=3):
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.array([b"Ya.mp3", b"Yb.mp3", b"Yc.mp3"][:names], "S20"))
        f.create_dataset("mp3", (audio_rows,), dtype=h5py.vlen_dtype(np.uint8))
        if target is not None:
            f.create_dataset("target", data=target)
    return str(path)


@pytest.mark.parametrize("target,audio_rows,message", [
    (None, 3, "{p}: no 'target' dataset (the weak labels: uint8 (N, ceil(classes / 8)) packbits, as in the "
              "community AudioSet files)"),
    (np.zeros((3, 66), np.float32), 3, "{p}: dataset 'target' is float32, expected uint8 (packbits of the weak "
                                       "labels)"),
    (np.zeros((2, 66), np.uint8), 3, "{p}: dataset 'target' has shape (2, 66), expected (3, bytes per row) like the "
                                     "3 rows of 'audio_name'"),
    (np.zeros(3, np.uint8), 3, "{p}: dataset 'target' has shape (3,), expected (3, bytes per row) like the 3 rows "
                               "of 'audio_name'"),
    (np.zeros((3, 25), np.uint8), 3, "{p}: dataset 'target' has 25 bytes per row, 527 classes need 66 (packbits, "
                                     "8 per byte)"),
    (np.zeros((3, 66), np.uint8), 2, "{p}: dataset 'mp3' has shape (2,), expected 3 rows like 'audio_name'"),
])
@pytest.mark.bad_input
def test_community_file_with_a_bad_target_is_one_line(tmp_path, target, audio_rows, message):
    from datamodules.format.hdf5 import H5LayoutError

    path = _community(tmp_path / "balanced_train_segments_mp3.hdf", target, audio_rows=audio_rows)
    with pytest.raises(H5LayoutError) as err:
        AudioH5(path, num_classes=527)
    assert str(err.value) == message.format(p=path)
    assert AudioH5(_community(tmp_path / "ok.hdf", np.zeros((3, 66), np.uint8)), num_classes=527).num_classes == 527
