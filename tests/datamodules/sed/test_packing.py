"""`sonolab sed-pack` (datamodules/sed/packing.py) and packing time windows (datamodules/pack.py)."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from datamodules.audio_io import resample
from datamodules.h5format import AudioH5
from datamodules.label_tables import LabelTableError
from datamodules.pack import PackItem, item_signature, pack, read_audio_window, source_signature
from datamodules.sed import DESED_CLASSES, MAESTRO_REAL_CLASSES
from datamodules.sed import packing as sp

SR_MAESTRO = 44100
MAESTRO_NOTES = {  # recording -> (seconds, annotation lines)
    "cafe_restaurant_00": (25.5, ["2.0\t4.5\tpeople talking\t0.8", "9.5\t14.0\tcar\t0.4",
                                  "20.0\t25.5\tbirds_singing\t1.0"]),
    # events only near both ends: the hop 1 s chunks starting at 2..9 s have none
    "cafe_restaurant_06": (21.0, ["0.5\t2.0\tfootsteps\t0.6", "19.0\t21.0\tdoor opens/closes\t0.2"]),
    "cafe_restaurant_04": (17.3, ["0.0\t17.3\twind_blowing\t0.7"]),  # a dev-test recording
}


def _noise(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _write(path, seconds: float, rate: int, seed: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(str(path), _noise(seconds, rate, seed), rate)


def _table(path, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def desed_root(tmp_path_factory):
    """A tiny DCASE'24 DESED tree: synthetic train (44.1 kHz originals in dcase_synth/ only), weak (one listed
    file never downloaded), unlabeled (with a stray text file), validation with durations."""
    root = tmp_path_factory.mktemp("desed")
    synth = root / "dcase_synth"
    _write(synth / "audio/train/synthetic21_train/soundscapes/s0.wav", 2.0, 44100, 1)
    _write(synth / "audio/train/synthetic21_train/soundscapes/s1.wav", 1.5, 44100, 2)
    _table(synth / "metadata/train/synthetic21_train/soundscapes.tsv", [
        "filename\tonset\toffset\tevent_label", "s0.wav\t0.1\t0.9\tDog", "s0.wav\t0.5\t1.8\tSpeech", "s1.wav\t\t\t"])
    _write(root / "audio/train/weak_16k/w0.wav", 1.0, 16000, 3)
    _write(root / "audio/train/weak_16k/w1.wav", 1.0, 16000, 4)
    _table(root / "metadata/train/weak.tsv", [
        "filename\tevent_labels", "w0.wav\tDog,Cat", "w1.wav\tSpeech", "w2.wav\tFrying"])
    _write(root / "audio/train/unlabel_in_domain_16k/u0.wav", 1.0, 16000, 5)
    _write(root / "audio/train/unlabel_in_domain_16k/u1.flac", 1.2, 16000, 6)
    _table(root / "audio/train/unlabel_in_domain_16k/notes.txt", ["not audio"])
    _write(root / "audio/validation/validation_16k/v0.wav", 3.0, 16000, 7)
    _write(root / "audio/validation/validation_16k/v1.wav", 2.0, 16000, 8)
    _table(root / "metadata/validation/validation.tsv", [
        "filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tVacuum_cleaner", "v1.wav\t0.25\t1.5\tCat"])
    _table(root / "metadata/validation/validation_durations.tsv", [
        "filename\tduration", "v0.wav\t3.0", "v1.wav\t2.004"])
    return str(root)


@pytest.fixture(scope="module")
def maestro_root(tmp_path_factory):
    """MAESTRO real as the DCASE'24 baseline downloads it, with 3 recordings at 44.1 kHz and one unlisted one."""
    root = tmp_path_factory.mktemp("maestro")
    dev = root / "MAESTRO_original" / "maestro_dev"
    for seed, (name, (seconds, lines)) in enumerate(MAESTRO_NOTES.items()):
        _write(dev / "development_audio" / "cafe_restaurant" / f"{name}.wav", seconds, SR_MAESTRO, seed)
        _table(dev / "development_annotation" / "cafe_restaurant" / f"{name}.txt", lines)
    _write(dev / "development_audio" / "extra" / "harbour_01.wav", 1.0, SR_MAESTRO, 9)
    return str(root)


@pytest.fixture(scope="module")
def maestro_packed(maestro_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("maestro_out")
    reports = sp.pack_maestro(maestro_root, str(out), codec="pcm16", workers=0, progress=False)
    return str(out), reports


@pytest.fixture(scope="module")
def desed_packed(desed_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("desed_out")
    reports = sp.pack_desed(desed_root, str(out), codec="pcm16", workers=0, progress=False)
    return str(out), reports


# ---------------------------------------------------------------------------------------------------------------
# Windows in the packer
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# MAESTRO chunking and split
# ---------------------------------------------------------------------------------------------------------------
def test_chunk_bounds_hop_1_and_5():
    n = int(25.5 * SR_MAESTRO)
    hop1 = sp.chunk_bounds(n, SR_MAESTRO, 10.0, 1.0)
    assert len(hop1) == 17  # full windows starting at 0..15 s, then 16 s .. the end
    assert hop1[0] == (0, 441000) and hop1[15] == (15 * 44100, 25 * 44100) and hop1[16] == (16 * 44100, n)
    hop5 = sp.chunk_bounds(n, SR_MAESTRO, 10.0, 5.0)
    assert [b[0] // 44100 for b in hop5] == [0, 5, 10, 15, 20] and hop5[-1] == (20 * 44100, n)
    assert len(sp.chunk_bounds(25 * 44100, SR_MAESTRO, 10.0, 1.0)) == 16  # the last window ends with the file
    assert sp.chunk_bounds(5 * 44100, SR_MAESTRO, 10.0, 1.0) == [(0, 5 * 44100)]


def test_chunk_name_and_events():
    assert sp.chunk_name("cafe_restaurant_00", 16 * 44100, int(25.5 * 44100), 44100) == \
        "cafe_restaurant_00-001600-002550.wav"
    events = [(2.0, 4.5, "people talking", 0.8), (9.5, 14.0, "car", 0.4), (15.0, 15.0 + 1e-9, "car", 1.0)]
    car, talk = MAESTRO_REAL_CLASSES.index("car"), MAESTRO_REAL_CLASSES.index("people talking")
    assert sp.chunk_events(events, 0.0, 10.0) == [(2.0, 4.5, talk, 0.8), (9.5, 10.0, car, 0.4)]
    assert sp.chunk_events(events, 5.0, 15.0) == [(4.5, 9.0, car, 0.4)]  # touching at 15 s is no overlap


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
    recs = list(sp.MAESTRO_TRAIN_RECORDINGS)
    chunk_names = [f"{r}-{k * 100:06d}-{k * 100 + 1000:06d}.wav" for r in recs for k in range(3)]
    order = sorted(recs)
    train, val = sp.split_train_recordings(order)
    assert (set(train), set(val)) == _legacy_split(chunk_names)
    assert sp.split_train_recordings(order) == (train, val)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == order
    for scene in sp.MAESTRO_SCENES:  # 90/10 within each scene
        n = sum(sp.scene_of(r) == scene for r in recs)
        assert sum(sp.scene_of(r) == scene for r in train) == int(0.9 * n)
    assert sp.split_train_recordings(order, seed=0) != (train, val)
    with pytest.raises(sp.SedPackError, match="unknown scenes"):
        sp.split_train_recordings(["harbour_01"])


def test_maestro_items_sets_and_empty_chunks(maestro_root):
    sets = sp.maestro_items(maestro_root)
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
    kept = sp.maestro_items(maestro_root, ["maestro_train", "maestro_val"], keep_empty=True)
    assert sum(it.name.startswith("cafe_restaurant_06") for s in kept.values() for it in s) == 12


def test_pack_maestro_files(maestro_packed, maestro_root):
    out, reports = maestro_packed
    assert sorted(os.listdir(out)) == ["maestro_real_devtest.h5", "maestro_real_train.h5", "maestro_real_val.h5"]
    names = {}
    for key, file in sp.MAESTRO_FILES.items():
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


def test_maestro_annotation_errors_name_file_and_line(maestro_root, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(maestro_root, root)
    note = root / "MAESTRO_original/maestro_dev/development_annotation/cafe_restaurant/cafe_restaurant_04.txt"
    _table(note, ["0.0\t3.0\tcar\t1.0", "4.0\tsoon\tcar\t1.0"])
    with pytest.raises(sp.SedPackError, match=r"cafe_restaurant_04\.txt, line 2, field 'offset'"):
        sp.maestro_items(str(root), ["maestro_devtest"])
    _table(note, ["0.0\t3.0\ttram bell\t1.0"])
    with pytest.raises(sp.SedPackError, match=r"line 1, field 'event_label': unknown class 'tram bell'"):
        sp.maestro_items(str(root), ["maestro_devtest"])
    _table(note, ["0.0\t3.0\tcar\t1.5"])
    with pytest.raises(sp.SedPackError, match="confidence"):
        sp.maestro_items(str(root), ["maestro_devtest"])
    with pytest.raises(sp.SedPackError, match="development_audio"):
        sp.maestro_items(str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# DESED
# ---------------------------------------------------------------------------------------------------------------
def test_pack_desed_files(desed_packed, desed_root):
    out, reports = desed_packed
    assert sorted(reports) == ["synth_train", "unlabeled", "validation", "weak"]
    assert sorted(os.listdir(out)) == sorted(sp.DESED_SETS[s].out_file for s in reports)
    files = {s: AudioH5(os.path.join(out, sp.DESED_SETS[s].out_file)) for s in reports}
    for h5 in files.values():
        assert h5.class_names == list(DESED_CLASSES) and h5.sample_rate == 16000

    synth = files["synth_train"]
    assert list(synth.names) == ["s0.wav", "s1.wav"]
    ev = synth.events(0)
    assert [DESED_CLASSES[c] for c in ev["class"]] == ["Dog", "Speech"]
    np.testing.assert_allclose(ev["onset"], [0.1, 0.5], atol=1e-6)
    assert len(synth.events(1)["onset"]) == 0
    source, rate = sf.read(os.path.join(desed_root, "dcase_synth/audio/train/synthetic21_train/soundscapes/s0.wav"),
                           dtype="float32")
    np.testing.assert_allclose(synth.waveform(0), resample(source, rate, 16000), atol=2e-4)

    weak = files["weak"]
    assert list(weak.names) == ["w0.wav", "w1.wav"]  # w2.wav was never downloaded
    assert [DESED_CLASSES[c] for c in np.flatnonzero(weak.weak_target(0))] == ["Cat", "Dog"]

    unlabeled = files["unlabeled"]
    assert list(unlabeled.names) == ["u0.wav", "u1.flac"]
    assert not unlabeled.weak_targets().any()
    assert all(len(unlabeled.events(i)["onset"]) == 0 for i in range(len(unlabeled)))

    np.testing.assert_allclose(files["validation"].durations, [3.0, 2.004], atol=1e-6)  # from the durations table


def test_desed_missing_sets(desed_root, tmp_path, capsys):
    located = sp.select_desed_sets(desed_root, None, 16000)
    assert [s.spec.name for s in located] == ["synth_train", "weak", "unlabeled", "validation"]
    assert "skipping DESED set 'public_eval'" in capsys.readouterr().err
    with pytest.raises(sp.SedPackError, match="'public_eval': no audio folder"):
        sp.pack_desed(desed_root, str(tmp_path), ["public_eval"], workers=0, progress=False)
    with pytest.raises(LabelTableError, match="missing under"):
        sp.pack_desed(desed_root, str(tmp_path), ["weak"], skip_missing=False, workers=0, progress=False)
    with pytest.raises(sp.SedPackError, match="no DESED set found"):
        sp.pack_desed(str(tmp_path), str(tmp_path / "o"), workers=0, progress=False)


def test_desed_audio_folder_preference(desed_root, tmp_path):
    spec = sp.DESED_SETS["weak"]
    assert sp.audio_dir_candidates(spec, 16000)[0] == "audio/train/weak_16k"
    assert sp.audio_dir_candidates(spec, 32000)[0] == "audio/train/weak"
    located, _ = sp.locate_desed_set(desed_root, spec, 32000)
    assert located.audio_dir.endswith("weak_16k")  # the only one there


def test_malformed_desed_table_names_file_and_line(desed_root, tmp_path, capsys):
    root = tmp_path / "d"
    shutil.copytree(desed_root, root)
    tsv = root / "metadata/validation/validation.tsv"
    _table(tsv, ["filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tVacuum_cleaner", "v1.wav\tx\t1.5\tCat"])
    code = sp.main(["--desed-root", str(root), "--out-dir", str(tmp_path / "o"), "--sets", "validation",
                    "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"{tsv}, line 3, field 'onset'" in err
    _table(tsv, ["filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tToaster"])
    with pytest.raises(LabelTableError, match="line 2, field 'event_label': unknown class 'Toaster'"):
        sp.pack_desed(str(root), str(tmp_path / "o"), ["validation"], workers=0, progress=False)
    dur = root / "metadata/validation/validation_durations.tsv"
    _table(tsv, ["filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tCat"])
    _table(dur, ["filename\tduration", "v0.wav\t-1"])
    with pytest.raises(sp.SedPackError, match=r"validation_durations\.tsv, line 2, field 'duration'"):
        sp.pack_desed(str(root), str(tmp_path / "o"), ["validation"], workers=0, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def test_cli_both_roots(desed_root, maestro_root, tmp_path, capsys):
    from experiments.cli import main as sonolab

    out = tmp_path / "out"
    code = sonolab(["sed-pack", "--desed-root", desed_root, "--maestro-root", maestro_root, "--out-dir", str(out),
                    "--sets", "weak", "maestro_devtest", "--codec", "flac", "--workers", "0", "--no-progress"])
    assert code == 0
    assert sorted(os.listdir(out)) == ["desed_weak.h5", "maestro_real_devtest.h5"]
    assert "harbour_01" in capsys.readouterr().err  # the unlisted recording is reported and ignored
    assert AudioH5(str(out / "maestro_real_devtest.h5")).codec == "flac"
    assert sp.main(["--out-dir", str(out)]) == 1
    assert sp.main(["--desed-root", desed_root, "--out-dir", str(out), "--sets", "maestro_val"]) == 1
    assert "needs --maestro-root" in capsys.readouterr().err
