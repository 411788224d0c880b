"""The demo data generator: promised layouts and counts, packed files, determinism."""
import csv
import os
import re

import numpy as np
import pytest
import soundfile as sf

from datamodules.sources import synth
from datamodules.sources.demo import SPLITS, event_clip, generate
from experiments.commands.demo_data import main
from datamodules.format.hdf5 import AudioH5

TAU_SCENES = ["airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall",
              "street_pedestrian", "street_traffic", "tram"]
TAU_NAME = re.compile(r"^audio/([a-z_]+)-([a-z]+)-(\d+)-(\d+)-(\d)-(a|b|c|s[1-6])\.wav$")


def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def demo(demo_data):
    return demo_data


def test_event_layout_and_counts(demo):
    root, summary = demo
    events = os.path.join(root, "events")
    classes = open(os.path.join(events, "classes.txt")).read().split()
    assert classes == sorted(synth.EVENT_CLASSES) and len(classes) == 8
    expected = {"train": 240, "val": 60, "test": 60}
    n_events = []
    for split in SPLITS:
        files = sorted(os.listdir(os.path.join(events, "audio", split)))
        assert len(files) == expected[split] == summary.counts[f"events_{split}"]
        info = sf.info(os.path.join(events, "audio", split, files[0]))
        assert (info.samplerate, info.channels, info.frames) == (32000, 1, 128000)
        meta = os.path.join(events, "metadata")
        header, strong = _rows(os.path.join(meta, f"{split}_strong.tsv"))
        assert header == ["filename", "onset", "offset", "event_label"]
        assert sorted({r[0] for r in strong}) == files
        per_file = {}
        for name, onset, offset, label in strong:
            per_file.setdefault(name, [])
            if label:
                assert 0 <= float(onset) < float(offset) <= 4.0 and label in classes
                per_file[name].append(label)
            else:
                assert onset == offset == ""  # DESED style: a clip without events
        n_events += [len(v) for v in per_file.values()]
        header, weak = _rows(os.path.join(meta, f"{split}_weak.tsv"))
        assert header == ["filename", "event_labels"] and [r[0] for r in weak] == files
        assert all(set(filter(None, r[1].split(","))) == set(per_file[r[0]]) for r in weak)
        header, durations = _rows(os.path.join(meta, f"{split}_durations.tsv"))
        assert header == ["filename", "duration"] and all(float(r[1]) == 4.0 for r in durations)
        header, captions = _rows(os.path.join(meta, f"{split}_captions.tsv"))
        assert header == ["filename", "caption"]
        counts = {f: sum(r[0] == f for r in captions) for f in files}
        assert set(counts.values()) <= {2, 3}

        h5 = AudioH5(os.path.join(root, f"events_{split}.h5"))
        assert (len(h5), h5.codec, h5.sample_rate) == (expected[split], "mp3", 32000)
        assert h5.class_names == classes and list(h5.names) == files
        for i in (0, 1, len(h5) - 1):
            labels = sorted(classes[c] for c in h5.events(i)["class"])
            assert labels == sorted(per_file[files[i]])
            assert sorted(classes[c] for c in np.nonzero(h5.weak_target(i))[0]) == labels
            assert h5.captions(i) == [r[1] for r in captions if r[0] == files[i]]
        assert h5.waveform(0).shape == (128000,)
    assert set(n_events) == {0, 1, 2, 3} and n_events.count(0) >= 10


def test_scene_layout_and_counts(demo):
    root, summary = demo
    scenes = os.path.join(root, "scenes")
    header, meta = _rows(os.path.join(scenes, "meta.csv"))
    assert header == ["filename", "scene_label", "identifier", "source_label"]
    assert len(meta) == 300 and len(os.listdir(os.path.join(scenes, "audio"))) == 300
    recording = {}
    for name, scene, identifier, device in meta:
        m = TAU_NAME.match(name)
        assert m, name
        assert (m.group(1), f"{m.group(2)}-{m.group(3)}", m.group(6)) == (scene, identifier, device)
        recording[name] = name.rsplit("-", 2)[0]
    assert sorted({r[1] for r in meta}) == TAU_SCENES
    info = sf.info(os.path.join(scenes, meta[0][0]))
    assert (info.samplerate, info.frames) == (44100, 44100)

    splits = {}
    for p in (5, 10, 25, 50, 100):
        header, rows = _rows(os.path.join(scenes, f"split{p}.csv"))
        assert header == ["filename", "scene_label"]
        assert all(dict((r[0], r[1]) for r in meta)[name] == scene for name, scene in rows)
        splits[p] = {r[0] for r in rows}
    header, test_rows = _rows(os.path.join(scenes, "test.csv"))
    assert header == ["filename"]
    test = {r[0] for r in test_rows}
    assert splits[5] < splits[10] < splits[25] < splits[50] < splits[100]
    assert splits[100] | test == {r[0] for r in meta} and not splits[100] & test
    assert (len(splits[100]), len(test)) == (200, 100)
    assert (summary.counts["scenes_train"], summary.counts["scenes_test"]) == (200, 100)
    # A recording is entirely in or out of every split.
    for chosen in list(splits.values()) + [test]:
        recs = {recording[n] for n in chosen}
        assert {n for n in recording if recording[n] in recs} == chosen
    device = {r[0]: r[3] for r in meta}
    assert {device[n] for n in splits[100]} == {"a", "b", "c", "s1", "s2", "s3"}
    assert {"s4", "s5", "s6"} <= {device[n] for n in test}
    assert len({meta_row[1] for meta_row in meta if meta_row[0] in splits[100]}) == 10

    for part, names in (("train", splits[100]), ("test", test)):
        h5 = AudioH5(os.path.join(root, f"scenes_{part}.h5"))
        assert (len(h5), h5.codec, h5.sample_rate) == (len(names), "pcm16", 44100)
        assert set(h5.names) == names
        assert h5.scene_names == TAU_SCENES
        assert h5.device_names == ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"]
        assert h5.city_names == sorted({r[2].split("-")[0] for r in meta})
        row = {r[0]: r for r in meta}
        for i in (0, len(h5) - 1):
            name, scene, identifier, dev = row[h5.names[i]]
            assert h5.scene_names[h5.label("scene", i)] == scene
            assert h5.device_names[h5.label("device", i)] == dev
            assert h5.city_names[h5.label("city", i)] == identifier.split("-")[0]
            wave, _ = sf.read(os.path.join(scenes, name), dtype="float32")
            np.testing.assert_allclose(h5.waveform(i), wave, atol=1 / 32767)  # pcm16 is lossless


def test_impulse_responses(demo):
    root, summary = demo
    files = sorted(os.listdir(os.path.join(root, "dirs")))
    assert len(files) == summary.counts["dirs"] == 6
    rates = set()
    for name in files:
        info = sf.info(os.path.join(root, "dirs", name))
        rates.add(info.samplerate)
        assert info.channels == 1 and 0.3 <= info.duration <= 0.5
    assert rates == {44100, 48000}


def test_deterministic_for_a_seed(demo, tmp_path):
    """A second (smaller) run with the same seed writes the same clips; another seed does not."""
    root, _ = demo
    again = str(tmp_path / "again")
    generate(again, seed=0, event_clips=(6, 2, 2), workers=2)
    for split, n in zip(SPLITS, (6, 2, 2)):
        full = open(os.path.join(root, "events", "metadata", f"{split}_strong.tsv")).read().splitlines()
        small = open(os.path.join(again, "events", "metadata", f"{split}_strong.tsv")).read().splitlines()
        assert small == full[: len(small)] and len({line.split("\t")[0] for line in small[1:]}) == n
        a, b = AudioH5(os.path.join(root, f"events_{split}.h5")), AudioH5(os.path.join(again, f"events_{split}.h5"))
        for i in range(n):
            np.testing.assert_array_equal(a.waveform(i), b.waveform(i))
    for name in ("meta.csv", "split5.csv", "split25.csv", "split100.csv", "test.csv"):
        assert open(os.path.join(root, "scenes", name)).read() == open(os.path.join(again, "scenes", name)).read()
    a, b = AudioH5(os.path.join(root, "scenes_test.h5")), AudioH5(os.path.join(again, "scenes_test.h5"))
    np.testing.assert_array_equal(a.waveform(7), b.waveform(7))
    for name in sorted(os.listdir(os.path.join(root, "dirs"))):
        first, second = sf.read(os.path.join(root, "dirs", name))[0], sf.read(os.path.join(again, "dirs", name))[0]
        np.testing.assert_array_equal(first, second)

    assert not np.array_equal(event_clip(0, "train", 0)[0], event_clip(1, "train", 0)[0])
    wave, events, captions = event_clip(0, "val", 2)
    np.testing.assert_array_equal(wave, event_clip(0, "val", 2)[0])


@pytest.mark.bad_input
def test_cli_refuses_foreign_folder_and_replaces_demo(tmp_path, capsys, monkeypatch):
    import experiments.commands.demo_data as demo_data_command

    # A small world keeps this test quick; the CLI path is the same as for the full-size one. (The command holds
    # its own reference to generate: patch that one.)
    monkeypatch.setattr(demo_data_command, "generate", lambda out, seed, **kw: generate(
        out, seed, event_clips=(4, 2, 2), scene_recordings=(1, 1), snippets=2, n_dirs=2, **kw))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["--out", str(foreign), "--seed", "3"]) == 1
    assert (foreign / "thesis.tex").read_text() == "precious"
    out = tmp_path / "demo"
    args = ["--out", str(out), "--seed", "3", "--no-progress"]
    assert main(args) == 0
    (out / "events" / "stale.txt").write_text("x")
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "events_train" in text and "scenes_test.h5" in text
    assert not (out / "events" / "stale.txt").exists()
    assert len(os.listdir(out / "scenes" / "audio")) == 40
