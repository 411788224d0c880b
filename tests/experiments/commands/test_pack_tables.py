"""`sonolab pack` over label tables: comma-separated tables, one file per split, file names outside --audio-dir."""
import os

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.hdf5 import AudioH5
from experiments.commands.pack import main


@pytest.fixture()
def clips(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, name in enumerate(("a.wav", "b.wav", "c.wav")):
        sf.write(audio / name, (0.2 * np.sin(np.arange(8000) * (0.05 + 0.02 * i))).astype(np.float32), 16000)
    sf.write(tmp_path / "outside.wav", np.zeros(800, np.float32), 16000)
    return tmp_path


def _args(root, table, *extra):
    return ["--audio-dir", str(root / "audio"), "--labels", str(table), "--codec", "pcm16", "--sample-rate", "16000",
            "--workers", "0", "--no-progress", *extra]


def test_split_column_writes_one_file_per_split(clips, capsys):
    table = clips / "clips.csv"
    table.write_text('filename,event_labels,split\na.wav,"dog,cat",train\nb.wav,bird,val\nc.wav,cat,train\n')
    assert main(_args(clips, table, "--split-column", "split", "--out", str(clips / "data" / "clips.h5"))) == 0
    assert sorted(os.listdir(clips / "data")) == ["clips_train.h5", "clips_val.h5"]
    train, val = AudioH5(str(clips / "data" / "clips_train.h5")), AudioH5(str(clips / "data" / "clips_val.h5"))
    assert list(train.names) == ["a.wav", "c.wav"] and list(val.names) == ["b.wav"]
    assert train.class_names == val.class_names == ["bird", "cat", "dog"]  # one vocabulary for every split
    assert train.weak_targets().astype(int).tolist() == [[0, 1, 1], [0, 1, 0]]
    assert val.weak_targets().astype(int).tolist() == [[1, 0, 0]]


@pytest.mark.bad_input
def test_missing_column_and_outside_names_are_one_line(clips, capsys):
    table = clips / "clips.csv"
    table.write_text("file,label\na.wav,dog\n")
    assert main(_args(clips, table, "--out", str(clips / "x.h5"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(f"error: {table} (comma-separated), line 1: no 'filename' column; "
                                                  "columns: file, label\n")
    table.write_text("filename\tevent_labels\na.wav\tdog\n../outside.wav\tdog\n")
    assert main(_args(clips, table, "--out", str(clips / "x.h5"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{table}, line 3, field 'filename': '../outside.wav' resolves to" in err
    assert not os.path.exists(clips / "x.h5")
    assert main(_args(clips, table, "--out", str(clips / "x.h5"), "--allow-outside-audio-dir")) == 0
    assert list(AudioH5(str(clips / "x.h5")).names) == ["a.wav", "../outside.wav"]
