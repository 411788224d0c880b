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
        ("name\tevent_labels\na.wav\tdog\n",
         "(tab-separated), line 1: no 'filename' column; columns: name, event_labels"),
        ("filename\tonset\tevent_label\na.wav\t1\tdog\n", "line 1: no 'offset' column"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tdog\nb.wav\tabc\t1\tdog\n",
         "line 3, field 'onset': 'abc' is not a number"),
        ("filename\tonset\toffset\tevent_label\n\na.wav\t2\t1\tdog\n",
         "line 3, field 'offset': offset 1.0 is before onset 2.0"),
        ("filename\tonset\toffset\tevent_label\na.wav\t-1\t1\tdog\n", "line 2, field 'onset': negative"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\t\n", "line 2, field 'event_label': empty"),
        ("filename\tonset\toffset\tevent_label\tconfidence\na.wav\t0\t1\tdog\t1.5\n", "field 'confidence'"),
        ("filename\tscene_label\na.wav\tpark\na.wav\ttram\n", "line 3, field 'scene_label': scene 'tram' contradicts"),
        ("filename\tevent_labels\na.wav\tdog\textra\n", "(tab-separated), line 2: 3 fields"),
        ("filename\tevent_labels\n\tdog\n", "line 2, field 'filename'"),
        ("", "line 1: missing header"),
    ],
)
@pytest.mark.bad_input
def test_table_errors_name_file_line_field(tmp_path, audio_dir, text, message):
    table = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(LabelTableError) as err:
        read_label_tables([table], audio_dir)
    assert str(err.value).startswith(table) and message in str(err.value)


@pytest.mark.bad_input
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


@pytest.mark.bad_input
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


@pytest.mark.bad_input
def test_table_subset_must_name_known_files(tmp_path, audio_dir):
    table = _write(tmp_path / "weak.tsv", "filename\tevent_labels\na.wav\tdog\n")
    subset = _write(tmp_path / "split.csv", "filename\nz.wav\n")
    with pytest.raises(LabelTableError, match="split.csv: 1 files are in no label table"):
        read_label_tables([table], audio_dir, subset=subset)


@pytest.mark.bad_input
def test_comma_separated_tables_with_quoting(tmp_path, audio_dir):
    weak = _write(tmp_path / "labels.csv", 'filename,event_labels,caption\na.wav,"dog,cat","a dog, then a cat"\n'
                  "b.wav,bird,\n")
    labels = read_label_tables([weak], audio_dir)
    assert labels.class_names == ["bird", "cat", "dog"]
    assert [it.weak for it in labels.items] == [[1, 2], [0]]
    assert labels.items[0].captions == ["a dog, then a cat"]
    bad = _write(tmp_path / "bad.csv", "a,b\n1,2\n")
    with pytest.raises(LabelTableError) as err:
        read_label_tables([bad], audio_dir)
    assert str(err.value) == f"{bad} (comma-separated), line 1: no 'filename' column; columns: a, b"


@pytest.mark.bad_input
def test_tables_in_utf8_bom_and_utf16_bom_and_refused_latin1(tmp_path, audio_dir):
    text = "filename\tevent_labels\na.wav\tcafé\n"
    for name, data in (("bom8.tsv", b"\xef\xbb\xbf" + text.encode()), ("bom16.tsv", text.encode("utf-16"))):
        assert read_label_tables([str(_write_bytes(tmp_path / name, data))], audio_dir).class_names == ["café"]
    latin = _write_bytes(tmp_path / "latin.tsv", text.encode("latin-1"))
    with pytest.raises(LabelTableError, match=r"latin.tsv: not UTF-8 text at byte 31 \(line 2; save it as UTF-8\)"):
        read_label_tables([str(latin)], audio_dir)
    with pytest.raises(LabelTableError, match=r"classes.txt: not UTF-8 text at byte 3"):
        read_class_list(str(_write_bytes(tmp_path / "classes.txt", "café\n".encode("latin-1"))))


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.bad_input
def test_file_names_must_stay_inside_the_audio_folder(tmp_path, audio_dir):
    outside = tmp_path / "secret.wav"
    sf.write(outside, _tone(16000, 0.1, 500), 16000)
    os.symlink(outside, os.path.join(audio_dir, "link.wav"))
    os.symlink(os.path.join(audio_dir, "a.wav"), os.path.join(audio_dir, "inner.wav"))
    for name in ("../secret.wav", str(outside), "link.wav"):
        table = _write(tmp_path / "t.tsv", f"filename\tevent_labels\nb.wav\tdog\n{name}\tdog\n")
        with pytest.raises(LabelTableError) as err:
            read_label_tables([table], audio_dir)
        assert str(err.value) == (
            f"{table}, line 3, field 'filename': {name!r} resolves to {os.path.realpath(outside)}, outside the "
            f"audio folder {audio_dir} (--allow-outside-audio-dir / allow_outside=True accepts it)")
        labels = read_label_tables([table], audio_dir, allow_outside=True)
        assert labels.items[1].path == os.path.join(audio_dir, name)
    os.makedirs(os.path.join(audio_dir, "sub"))
    inside = os.path.join(audio_dir, "c.wav")
    table = _write(tmp_path / "t.tsv", f"filename\tevent_labels\ninner.wav\tdog\nsub/../a.wav\tdog\n{inside}\tdog\n")
    assert len(read_label_tables([table], audio_dir).items) == 3  # links, '..' and absolute paths that stay inside


def test_split_column_groups_items_with_shared_vocabularies(tmp_path, audio_dir):
    table = _write(tmp_path / "clips.csv", "filename,event_labels,scene_label,split\na.wav,dog,park,train\n"
                   "b.wav,cat,tram,val\nc.wav,bird,park,train\n")
    labels = read_label_tables([table], audio_dir, split_column="split")
    assert list(labels.splits) == ["train", "val"]
    assert [it.name for it in labels.splits["train"]] == ["a.wav", "c.wav"]
    assert [it.name for it in labels.splits["val"]] == ["b.wav"]
    assert labels.class_names == ["bird", "cat", "dog"] and labels.scene_names == ["park", "tram"]
    assert labels.splits["val"][0].weak == [1] and labels.splits["val"][0].scene == 1
    assert read_label_tables([table], audio_dir).splits == {}


@pytest.mark.parametrize("text,message", [
    ("filename,event_labels\na.wav,dog\n", "(comma-separated), line 1: no 'split' column; columns: filename, "
                                           "event_labels"),
    ("filename,split\na.wav,train\nb.wav,\n", "line 3, field 'filename': 'b.wav' has no 'split' value"),
    ("filename,split\na.wav,../../x\n", "line 2, field 'split': split '../../x' must be letters"),
    ("filename,split\na.wav,train\na.wav,val\n", "line 3, field 'split': split 'val' contradicts 'train'"),
])
@pytest.mark.bad_input
def test_split_column_errors(tmp_path, audio_dir, text, message):
    table = _write(tmp_path / "clips.csv", text)
    with pytest.raises(LabelTableError) as err:
        read_label_tables([table], audio_dir, split_column="split")
    assert str(err.value).startswith(table) and message in str(err.value)
