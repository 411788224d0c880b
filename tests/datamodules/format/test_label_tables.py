"""Label tables -> pack items: merging, vocabularies, subsets and the errors that name file, line and field."""
import os

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.label_tables import LabelTableError, read_class_list, read_label_tables


def _tone(sr: int, seconds: float, freq: float, amp: float = 0.45) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@pytest.fixture()
def audio_dir(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        sf.write(folder / name, _tone(16000, 0.5, 500), 16000)
    return str(folder)


def test_tables_merge_strong_weak_captions(tmp_path, audio_dir):
    strong = _write(tmp_path / "strong.tsv", "filename\tonset\toffset\tevent_label\tconfidence\n"
                    "a.wav\t0.5\t1.0\tdog\t\nb.wav\t\t\t\n"
                    "a.wav\t0.1\t0.3\tcat\t0.25\n\nc.wav\t0\t0.4\tcat\t0.9\n")
    weak = _write(tmp_path / "weak.tsv", "filename\tevent_labels\nd.wav\tbird, dog\nb.wav\t\n")
    caps = _write(tmp_path / "captions.tsv",
                  'filename\tcaption\na.wav\ta dog barks\na.wav\ta "loud" dog\nd.wav\tbirds\n')
    durations = _write(tmp_path / "durations.tsv", "filename\tduration\na.wav\t10.0\n")
    labels = read_label_tables([strong, weak, caps, durations], audio_dir)
    assert labels.class_names == ["bird", "cat", "dog"]
    by_name = {it.name: it for it in labels.items}
    assert [it.name for it in labels.items] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    a = by_name["a.wav"]
    assert a.path == os.path.join(audio_dir, "a.wav")
    assert a.events == [(0.5, 1.0, 2, 1.0), (0.1, 0.3, 1, 0.25)]
    assert a.weak == [2]  # derived from strong events (the cat at confidence 0.25 is no weak positive)
    assert a.captions == ["a dog barks", 'a "loud" dog']
    assert by_name["b.wav"].events == [] and by_name["b.wav"].weak == []
    assert by_name["c.wav"].weak == [1]
    assert by_name["d.wav"].weak == [0, 2] and by_name["d.wav"].captions == ["birds"]
    assert all(it.scene == it.device == it.city == -1 for it in labels.items)


def test_tables_tau_layout_subset_and_vocabularies(tmp_path, audio_dir):
    os.makedirs(os.path.join(audio_dir, "audio"))
    for name in ("park-lyon-1-2-0-a.wav", "tram-paris-3-4-0-s4.wav", "bus-lyon-5-6-0-b.wav"):
        sf.write(os.path.join(audio_dir, "audio", name), _tone(44100, 0.2, 500), 44100)
    meta = _write(tmp_path / "meta.csv", "filename\tscene_label\tidentifier\tsource_label\n"
                  "audio/park-lyon-1-2-0-a.wav\tpark\tlyon-1\ta\n"
                  "audio/tram-paris-3-4-0-s4.wav\ttram\tparis-3\ts4\n"
                  "audio/bus-lyon-5-6-0-b.wav\tbus\tlyon-5\tb\n")
    split = _write(tmp_path / "split.csv", "filename\tscene_label\naudio/bus-lyon-5-6-0-b.wav\tbus\n"
                   "audio/park-lyon-1-2-0-a.wav\tpark\n")
    labels = read_label_tables([meta], audio_dir, subset=split)
    assert [it.name for it in labels.items] == ["audio/bus-lyon-5-6-0-b.wav", "audio/park-lyon-1-2-0-a.wav"]
    # Vocabularies come from all rows, so train and test files packed from one meta.csv agree.
    assert labels.scene_names == ["bus", "park", "tram"] and labels.device_names == ["a", "b", "s4"]
    assert labels.city_names == ["lyon", "paris"] and labels.class_names == []
    bus = labels.items[0]
    assert (bus.scene, bus.device, bus.city) == (0, 1, 0)


def test_tables_numbered_captions_and_device_column(tmp_path, audio_dir):
    table = _write(tmp_path / "captions.tsv", "file_name\tcaption_1\tcaption_2\tcaption_3\tdevice\tcity\n"
                   "a.wav\tone\ttwo\t\tb\tlyon\n")
    item = read_label_tables([table], audio_dir).items[0]
    assert item.captions == ["one", "two"] and item.device == 0 and item.city == 0


@pytest.mark.parametrize(
    "text,message",
    [
        ("name\tevent_labels\na.wav\tdog\n", "line 1: missing column 'filename'"),
        ("filename\tonset\tevent_label\na.wav\t1\tdog\n", "missing column 'offset'"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tdog\nb.wav\tabc\t1\tdog\n",
         "line 3, field 'onset': 'abc' is not a number"),
        ("filename\tonset\toffset\tevent_label\n\na.wav\t2\t1\tdog\n",
         "line 3, field 'offset': offset 1.0 is before onset 2.0"),
        ("filename\tonset\toffset\tevent_label\na.wav\t-1\t1\tdog\n", "line 2, field 'onset': negative"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\t\n", "line 2, field 'event_label': empty"),
        ("filename\tonset\toffset\tevent_label\tconfidence\na.wav\t0\t1\tdog\t1.5\n", "field 'confidence'"),
        ("filename\tscene_label\na.wav\tpark\na.wav\ttram\n", "line 3, field 'scene_label': scene 'tram' contradicts"),
        ("filename\tevent_labels\na.wav\tdog\textra\n", "line 2: 3 fields"),
        ("filename\tevent_labels\n\tdog\n", "line 2, field 'filename'"),
        ("", "line 1: missing header"),
    ],
)
def test_table_errors_name_file_line_field(tmp_path, audio_dir, text, message):
    table = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(LabelTableError) as err:
        read_label_tables([table], audio_dir)
    assert str(err.value).startswith(table) and message in str(err.value)


def test_table_unknown_class(tmp_path, audio_dir):
    classes = _write(tmp_path / "classes.txt", "cat\ndog\n\n")
    assert read_class_list(classes) == ["cat", "dog"]
    table = _write(tmp_path / "strong.tsv",
                   "filename\tonset\toffset\tevent_label\na.wav\t0\t1\tdog\nb.wav\t0\t1\tcow\n")
    with pytest.raises(LabelTableError, match=r"strong.tsv, line 3, field 'event_label': unknown class 'cow'"):
        read_label_tables([table], audio_dir, classes=read_class_list(classes))
    weak = _write(tmp_path / "weak.tsv", "filename\tevent_labels\na.wav\tcat,emu\n")
    with pytest.raises(LabelTableError, match=r"weak.tsv, line 2, field 'event_labels': unknown class 'emu'"):
        read_label_tables([weak], audio_dir, classes=["cat", "dog"])
    labels = read_label_tables([weak], audio_dir, classes=["cat", "dog", "emu", "zebra"])
    assert labels.class_names == ["cat", "dog", "emu", "zebra"] and labels.items[0].weak == [0, 2]
    with pytest.raises(LabelTableError, match="listed twice"):
        read_class_list(_write(tmp_path / "dup.txt", "cat\ncat\n"))


def test_table_missing_audio(tmp_path, audio_dir):
    rows = "".join(f"missing_{i:02d}.wav\tdog\n" for i in range(12))
    table = _write(tmp_path / "weak.tsv", "filename\tevent_labels\na.wav\tdog\n" + rows)
    with pytest.raises(LabelTableError) as err:
        read_label_tables([table], audio_dir)
    message = str(err.value)
    assert "12 of 13 audio files" in message and "weak.tsv" in message and "missing_09.wav" in message
    assert "missing_10.wav" not in message and "and 2 more" in message and "--skip-missing" in message
    labels = read_label_tables([table], audio_dir, skip_missing=True)
    assert [it.name for it in labels.items] == ["a.wav"] and len(labels.missing) == 12


def test_table_subset_must_name_known_files(tmp_path, audio_dir):
    table = _write(tmp_path / "weak.tsv", "filename\tevent_labels\na.wav\tdog\n")
    subset = _write(tmp_path / "split.csv", "filename\nz.wav\n")
    with pytest.raises(LabelTableError, match="split.csv: 1 files are in no label table"):
        read_label_tables([table], audio_dir, subset=subset)
