"""MAESTRO real: chunking, the baseline's split, annotations, packed files."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.audio_io import resample
from datamodules.format.hdf5 import AudioH5
from datamodules.sed import MAESTRO_REAL_CLASSES
from datamodules.sources import maestro
from datamodules.sources.common import LayoutError

SR_MAESTRO = 44100  # the rate of the recordings in conftest.maestro_root


def _table(path, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")



def test_chunk_bounds_hop_1_and_5():
    n = int(25.5 * SR_MAESTRO)
    hop1 = maestro.chunk_bounds(n, SR_MAESTRO, 10.0, 1.0)
    assert len(hop1) == 17  # full windows starting at 0..15 s, then 16 s .. the end
    assert hop1[0] == (0, 441000) and hop1[15] == (15 * 44100, 25 * 44100) and hop1[16] == (16 * 44100, n)
    hop5 = maestro.chunk_bounds(n, SR_MAESTRO, 10.0, 5.0)
    assert [b[0] // 44100 for b in hop5] == [0, 5, 10, 15, 20] and hop5[-1] == (20 * 44100, n)
    assert len(maestro.chunk_bounds(25 * 44100, SR_MAESTRO, 10.0, 1.0)) == 16  # the last window ends with the file
    assert maestro.chunk_bounds(5 * 44100, SR_MAESTRO, 10.0, 1.0) == [(0, 5 * 44100)]


def test_chunk_name_and_events():
    assert maestro.chunk_name("cafe_restaurant_00", 16 * 44100, int(25.5 * 44100), 44100) == \
        "cafe_restaurant_00-001600-002550.wav"
    events = [(2.0, 4.5, "people talking", 0.8), (9.5, 14.0, "car", 0.4), (15.0, 15.0 + 1e-9, "car", 1.0)]
    car, talk = MAESTRO_REAL_CLASSES.index("car"), MAESTRO_REAL_CLASSES.index("people talking")
    assert maestro.chunk_events(events, 0.0, 10.0) == [(2.0, 4.5, talk, 0.8), (9.5, 10.0, car, 0.4)]
    assert maestro.chunk_events(events, 5.0, 15.0) == [(4.5, 9.0, car, 0.4)]  # touching at 15 s is no overlap


def _legacy_split(chunk_names, fraction=0.9, seed=42):
    """The split as the baseline computes it: global numpy seed, per-scene masks over a sorted chunk table."""
    table = sorted(chunk_names)
    np.random.seed(seed)
    train, val = set(), set()
    for scene in ("cafe_restaurant", "city_center", "grocery_store", "metro_station", "residential_area"):
        in_scene = [n for n in table if "_".join(n.split("_")[:-1]) == scene]
        recs = np.array(list(dict.fromkeys(n.split("-")[0] for n in in_scene)), dtype=object)
        np.random.shuffle(recs)
        pivot = int(fraction * len(recs))
        train |= set(recs[:pivot])
        val |= set(recs[pivot:])
    return train, val


def test_split_reproduces_the_baseline_and_is_deterministic():
    recs = list(maestro.MAESTRO_TRAIN_RECORDINGS)
    chunk_names = [f"{r}-{k * 100:06d}-{k * 100 + 1000:06d}.wav" for r in recs for k in range(3)]
    order = sorted(recs)
    train, val = maestro.split_train_recordings(order)
    assert (set(train), set(val)) == _legacy_split(chunk_names)
    assert maestro.split_train_recordings(order) == (train, val)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == order
    for scene in maestro.MAESTRO_SCENES:  # 90/10 within each scene
        n = sum(maestro.scene_of(r) == scene for r in recs)
        assert sum(maestro.scene_of(r) == scene for r in train) == int(0.9 * n)
    assert maestro.split_train_recordings(order, seed=0) != (train, val)
    with pytest.raises(LayoutError, match="unknown scenes"):
        maestro.split_train_recordings(["harbour_01"])


def test_maestro_items_sets_and_empty_chunks(maestro_root):
    sets = maestro.maestro_items(maestro_root)
    train, val = _legacy_split([it.name for s in ("maestro_train", "maestro_val") for it in sets[s]])
    assert {it.name.split("-")[0] for it in sets["maestro_train"]} == train
    assert {it.name.split("-")[0] for it in sets["maestro_val"]} == val
    by_rec = {}
    for s in ("maestro_train", "maestro_val"):
        for it in sets[s]:
            by_rec.setdefault(it.name.split("-")[0], []).append(it.name)
    assert len(by_rec["cafe_restaurant_00"]) == 17
    # cafe_restaurant_06: 12 chunks, of which those starting at 2..9 s have no event and are dropped
    assert [n.split("-")[1] for n in by_rec["cafe_restaurant_06"]] == ["000000", "000100", "001000", "001100"]
    assert [it.name for it in sets["maestro_devtest"]] == [
        "cafe_restaurant_04-000000-001000.wav", "cafe_restaurant_04-000500-001500.wav",
        "cafe_restaurant_04-001000-001730.wav"]
    kept = maestro.maestro_items(maestro_root, ["maestro_train", "maestro_val"], keep_empty=True)
    assert sum(it.name.startswith("cafe_restaurant_06") for s in kept.values() for it in s) == 12


def test_pack_maestro_files(maestro_packed, maestro_root):
    out, reports = maestro_packed
    assert sorted(os.listdir(out)) == ["maestro_real_devtest.h5", "maestro_real_train.h5", "maestro_real_val.h5"]
    names = {}
    for key, file in maestro.MAESTRO_FILES.items():
        h5 = AudioH5(os.path.join(out, file))
        assert h5.class_names == list(MAESTRO_REAL_CLASSES) and h5.sample_rate == 16000
        assert list(h5.names) == sorted(h5.names) and reports[key].packed == len(h5)
        names.update({n: (h5, i) for i, n in enumerate(h5.names)})
    assert len(names) == 17 + 4 + 3

    h5, i = names["cafe_restaurant_00-000500-001500.wav"]
    ev = h5.events(i)
    assert ev["class"].tolist() == [MAESTRO_REAL_CLASSES.index("car")]
    np.testing.assert_allclose([ev["onset"][0], ev["offset"][0], ev["confidence"][0]], [4.5, 9.0, 0.4], atol=1e-6)
    assert not h5.weak_target(i).any()  # confidence 0.4 < 0.5: no weak label

    h5, i = names["cafe_restaurant_00-001600-002550.wav"]  # the short last chunk
    ev = h5.events(i)
    assert [MAESTRO_REAL_CLASSES[c] for c in ev["class"]] == ["birds_singing"]
    np.testing.assert_allclose([ev["onset"][0], ev["offset"][0]], [4.0, 9.5], atol=1e-5)
    assert h5.durations[i] == pytest.approx(9.5)
    source, rate = sf.read(os.path.join(maestro_root, "MAESTRO_original", "maestro_dev", "development_audio",
                                        "cafe_restaurant", "cafe_restaurant_00.wav"), dtype="float32")
    expected = resample(source[16 * rate:], rate, 16000)
    np.testing.assert_allclose(h5.waveform(i), expected, atol=2e-4)

    h5, i = names["cafe_restaurant_04-001000-001730.wav"]
    assert h5.weak_target(i)[MAESTRO_REAL_CLASSES.index("wind_blowing")] == 1
    np.testing.assert_allclose(h5.events(i)["offset"], [7.3], atol=1e-4)


@pytest.mark.bad_input
def test_maestro_annotation_errors_name_file_and_line(maestro_root, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(maestro_root, root)
    note = root / "MAESTRO_original/maestro_dev/development_annotation/cafe_restaurant/cafe_restaurant_04.txt"
    _table(note, ["0.0\t3.0\tcar\t1.0", "4.0\tsoon\tcar\t1.0"])
    with pytest.raises(LayoutError, match=r"cafe_restaurant_04\.txt, line 2, field 'offset'"):
        maestro.maestro_items(str(root), ["maestro_devtest"])
    _table(note, ["0.0\t3.0\ttram bell\t1.0"])
    with pytest.raises(LayoutError, match=r"line 1, field 'event_label': unknown class 'tram bell'"):
        maestro.maestro_items(str(root), ["maestro_devtest"])
    _table(note, ["0.0\t3.0\tcar\t1.5"])
    with pytest.raises(LayoutError, match="confidence"):
        maestro.maestro_items(str(root), ["maestro_devtest"])
    with pytest.raises(LayoutError, match="development_audio"):
        maestro.maestro_items(str(tmp_path))


@pytest.mark.bad_input
def test_maestro_annotations_with_another_label_space(tmp_path):
    note = tmp_path / "rec.txt"
    note.write_bytes("0.5\t2.0\thorn\t0.9\n1.0\t3.0\tbell\t0.3\n".encode("utf-16"))  # UTF-16 with BOM is read
    with pytest.raises(LayoutError, match=r"rec\.txt, line 1, field 'event_label': unknown class 'horn' \(not one "
                                          r"of the 17 classes\)"):
        maestro.read_maestro_annotation(str(note))
    events = maestro.read_maestro_annotation(str(note), ("bell", "horn"))
    assert events == [(0.5, 2.0, "horn", 0.9), (1.0, 3.0, "bell", 0.3)]
    assert maestro.chunk_events(events, 1.5, 11.5, ("bell", "horn")) == [(0.0, 0.5, 1, 0.9), (0.0, 1.5, 0, 0.3)]
    note.write_bytes(b"0.5\t2.0\thorn\t0.9\n1.0\t3.0\tb\xe9ll\t0.3\n")
    with pytest.raises(ValueError, match=r"rec\.txt: not UTF-8 text at byte 26 \(line 2; save it as UTF-8\)"):
        maestro.read_maestro_annotation(str(note), ("bell", "horn"))
