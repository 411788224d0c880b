"""ESC-50 layout (built from demo audio) -> one file per fold."""
import os

import numpy as np
import pytest

from datamodules.format.hdf5 import AudioH5
from datamodules.sources.esc50 import pack_esc50, read_esc50_meta


def test_esc50_folds_hold_their_clips_with_one_hot_targets(downstream_layouts, downstream_h5):
    rows, classes = read_esc50_meta(os.path.join(downstream_layouts["esc50"], "meta", "esc50.csv"))
    assert len(downstream_h5["esc50"]) == 5
    for fold, path in enumerate(downstream_h5["esc50"], start=1):
        h5 = AudioH5(path)
        expected = {r["filename"]: r["target"] for r in rows if r["fold"] == fold}
        assert sorted(h5.names) == sorted(expected) and h5.class_names == classes
        targets = h5.weak_targets()
        assert np.all(targets.sum(axis=1) == 1)
        assert [classes[t] for t in targets.argmax(axis=1)] == [classes[expected[n]] for n in h5.names]


@pytest.mark.bad_input
def test_esc50_table_errors_name_the_line(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("filename,fold,target,category\na.wav,1,0,dog\nb.wav,7,1,rain\n")
    with pytest.raises(ValueError, match=r"esc50.csv, line 3, field 'fold'"):
        pack_esc50(str(tmp_path), str(tmp_path / "out"))


@pytest.mark.parametrize("data,message", [
    ("filename,fold,target,category\na.wav,1,0,caf\xe9\n".encode("latin-1"),
     "{p}: not UTF-8 text at byte 43 (line 2; save it as UTF-8)"),
    (b"filename,fold,target,category\na.wav,1\n",
     "{p}, line 2: fields 'fold' and 'target' must be integers, got '1', None"),
    (b"filename,target,category\na.wav,0,dog\n", "{p}, line 1: missing columns ['fold']"),
])
@pytest.mark.bad_input
def test_downstream_pack_esc50_table_errors_are_one_line(tmp_path, capsys, data, message):
    from experiments.commands.downstream_pack import main

    (tmp_path / "meta").mkdir()
    table = tmp_path / "meta" / "esc50.csv"
    table.write_bytes(data)
    assert main(["esc50", "--root", str(tmp_path), "--out-dir", str(tmp_path / "out"), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"sonolab downstream-pack: error: {message.format(p=table)}\n"
