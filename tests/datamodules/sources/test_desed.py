"""DESED: located sets, packed files, missing sets and malformed tables."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.audio_io import resample
from datamodules.format.hdf5 import AudioH5
from datamodules.format.label_tables import LabelTableError
from datamodules.sed import DESED_CLASSES
from datamodules.sources import desed
from datamodules.sources.common import LayoutError
from experiments.commands import sed_pack


def _table(path, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")



def test_pack_desed_files(desed_packed, desed_root):
    out, reports = desed_packed
    assert sorted(reports) == ["synth_train", "unlabeled", "validation", "weak"]
    assert sorted(os.listdir(out)) == sorted(desed.DESED_SETS[s].out_file for s in reports)
    files = {s: AudioH5(os.path.join(out, desed.DESED_SETS[s].out_file)) for s in reports}
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


@pytest.mark.bad_input
def test_desed_missing_sets(desed_root, tmp_path, capsys):
    located = desed.select_desed_sets(desed_root, None, 16000)
    assert [s.spec.name for s in located] == ["synth_train", "weak", "unlabeled", "validation"]
    assert "skipping DESED set 'public_eval'" in capsys.readouterr().err
    with pytest.raises(LayoutError, match="'public_eval': no audio folder"):
        desed.pack_desed(desed_root, str(tmp_path), ["public_eval"], workers=0, progress=False)
    with pytest.raises(LabelTableError, match="missing under"):
        desed.pack_desed(desed_root, str(tmp_path), ["weak"], skip_missing=False, workers=0, progress=False)
    with pytest.raises(LayoutError, match="no DESED set found"):
        desed.pack_desed(str(tmp_path), str(tmp_path / "o"), workers=0, progress=False)


def test_desed_audio_folder_preference(desed_root, tmp_path):
    spec = desed.DESED_SETS["weak"]
    assert desed.audio_dir_candidates(spec, 16000)[0] == "audio/train/weak_16k"
    assert desed.audio_dir_candidates(spec, 32000)[0] == "audio/train/weak"
    located, _ = desed.locate_desed_set(desed_root, spec, 32000)
    assert located.audio_dir.endswith("weak_16k")  # the only one there


@pytest.mark.bad_input
def test_malformed_desed_table_names_file_and_line(desed_root, tmp_path, capsys):
    root = tmp_path / "d"
    shutil.copytree(desed_root, root)
    tsv = root / "metadata/validation/validation.tsv"
    _table(tsv, ["filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tVacuum_cleaner", "v1.wav\tx\t1.5\tCat"])
    code = sed_pack.main(["--desed-root", str(root), "--out-dir", str(tmp_path / "o"), "--sets", "validation",
                    "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"{tsv}, line 3, field 'onset'" in err
    _table(tsv, ["filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tToaster"])
    with pytest.raises(LabelTableError, match="line 2, field 'event_label': unknown class 'Toaster'"):
        desed.pack_desed(str(root), str(tmp_path / "o"), ["validation"], workers=0, progress=False)
    dur = root / "metadata/validation/validation_durations.tsv"
    _table(tsv, ["filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tCat"])
    _table(dur, ["filename\tduration", "v0.wav\t-1"])
    with pytest.raises(LayoutError, match=r"validation_durations\.tsv, line 2, field 'duration'"):
        desed.pack_desed(str(root), str(tmp_path / "o"), ["validation"], workers=0, progress=False)


@pytest.mark.bad_input
def test_sed_pack_classes_replaces_the_desed_label_space(desed_root, tmp_path, capsys):
    """A DESED-layout set with its own classes: rejected against DESED's 10, packed with --classes."""
    root = tmp_path / "custom"
    shutil.copytree(desed_root, root)
    _table(root / "metadata/train/weak.tsv", ["filename\tevent_labels", "w0.wav\tGoat,Hen", "w1.wav\tHen"])
    args = ["--desed-root", str(root), "--out-dir", str(tmp_path / "out"), "--sets", "weak", "--codec", "pcm16",
            "--workers", "0", "--no-progress"]
    assert sed_pack.main(args) == 1
    assert "weak.tsv, line 2, field 'event_labels': unknown class 'Goat'" in capsys.readouterr().err
    _table(tmp_path / "classes.txt", ["Hen", "Goat", "Pig"])
    assert sed_pack.main(args + ["--classes", str(tmp_path / "classes.txt")]) == 0
    weak = AudioH5(str(tmp_path / "out" / "desed_weak.h5"))
    assert weak.class_names == ["Hen", "Goat", "Pig"]  # the list's order, not sorted
    assert weak.weak_targets().astype(int).tolist() == [[1, 1, 0], [1, 0, 0]]


@pytest.mark.bad_input
def test_desed_tables_must_be_utf8(desed_root, tmp_path):
    root = tmp_path / "latin"
    shutil.copytree(desed_root, root)
    (root / "metadata/validation/validation_durations.tsv").write_bytes("filename\tduration\nv\xe9.wav\t3.0\n"
                                                                         .encode("latin-1"))
    with pytest.raises(ValueError, match=r"validation_durations\.tsv: not UTF-8 text at byte 19 \(line 2; save it"):
        desed.pack_desed(str(root), str(tmp_path / "o"), ["validation"], workers=0, progress=False)
    (root / "metadata/train/weak.tsv").write_bytes("filename\tevent_labels\nw0.wav\tDog\n".encode("utf-16"))
    items, _ = desed.desed_items(desed.select_desed_sets(str(root), ["weak"], 16000)[0])  # UTF-16 with BOM: fine
    assert [it.name for it in items] == ["w0.wav"]
