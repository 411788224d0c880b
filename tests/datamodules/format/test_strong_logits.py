import h5py
import numpy as np
import pytest

from datamodules.format.strong_logits import (LogitsFileError, LogitsFileWriter, average_files, logits_shape,
                                              merge_parts, read_names)
from experiments.commands.ensemble_logits import main as ensemble_main


def _write(path, names, logits, class_names=None):
    writer = LogitsFileWriter(str(path), logits.shape[1], logits.shape[2], class_names)
    for start in range(0, len(names), 2):  # several appends
        writer.append(names[start:start + 2], logits[start:start + 2])
    return writer.close()


def test_writer_appends_and_renames_on_close(tmp_path):
    logits = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    path = tmp_path / "t.h5"
    writer = LogitsFileWriter(str(path), 3, 4, ["a", "b", "c"])
    writer.append(["x0", "x1"], logits[:2])
    assert not path.exists()  # only the .tmp file while writing
    writer.append(["x2", "x3", "x4"], logits[2:])
    writer.close()
    assert read_names(str(path)) == ["x0", "x1", "x2", "x3", "x4"]
    with h5py.File(path) as f:
        assert f["strong_logits"].dtype == np.float16
        np.testing.assert_array_equal(f["strong_logits"][()], logits.astype(np.float16))
        assert list(f.attrs["class_names"]) == ["a", "b", "c"]


def test_writer_rejects_wrong_shape(tmp_path):
    writer = LogitsFileWriter(str(tmp_path / "t.h5"), 3, 4)
    with pytest.raises(LogitsFileError, match=r"shape \(1, 3, 5\), expected \(1, 3, 4\)"):
        writer.append(["x"], np.zeros((1, 3, 5)))
    writer.abort()
    assert not list(tmp_path.iterdir())


@pytest.mark.bad_input
def test_merge_parts_keeps_first_row_of_each_clip(tmp_path):
    a = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    b = -np.arange(2 * 2 * 2, dtype=np.float32).reshape(2, 2, 2)
    _write(tmp_path / "p0", ["c0", "c1", "c2"], a)
    _write(tmp_path / "p1", ["c3", "c0"], b)  # c0 repeated by a padding distributed sampler
    count = merge_parts([str(tmp_path / "p0"), str(tmp_path / "p1")], str(tmp_path / "all.h5"))
    assert count == 4
    assert read_names(str(tmp_path / "all.h5")) == ["c0", "c1", "c2", "c3"]
    with h5py.File(tmp_path / "all.h5") as f:
        np.testing.assert_array_equal(f["strong_logits"][()], np.concatenate([a, b[:1]]))
    assert not (tmp_path / "p0").exists() and not (tmp_path / "p1").exists()


def test_average_matches_clips_by_name(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 2, 3)).astype(np.float16).astype(np.float32)
    b = rng.normal(size=(4, 2, 3)).astype(np.float16).astype(np.float32)
    names = ["w", "x", "y", "z"]
    _write(tmp_path / "a.h5", names, a)
    order = [2, 0, 3, 1]  # the second teacher wrote the clips in another order
    _write(tmp_path / "b.h5", [names[i] for i in order], b[order])
    assert ensemble_main(["--inputs", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"),
                          "--out", str(tmp_path / "e.h5")]) == 0
    assert read_names(str(tmp_path / "e.h5")) == names
    with h5py.File(tmp_path / "e.h5") as f:
        np.testing.assert_allclose(f["strong_logits"][()].astype(np.float32), (a + b) / 2, atol=2e-3)
    assert logits_shape(str(tmp_path / "e.h5")) == (4, 2, 3)


@pytest.mark.bad_input
def test_average_refuses_different_clip_sets(tmp_path, capsys):
    _write(tmp_path / "a.h5", ["x", "y"], np.zeros((2, 2, 3), np.float32))
    _write(tmp_path / "b.h5", ["x", "q"], np.zeros((2, 2, 3), np.float32))
    with pytest.raises(LogitsFileError, match=r"b.h5: clips differ from .*a.h5: 1 missing \(e.g. \['y'\]\), 1 extra"):
        average_files([str(tmp_path / "a.h5"), str(tmp_path / "b.h5")], str(tmp_path / "e.h5"))
    assert not (tmp_path / "e.h5").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("case", ["missing", "not_logits", "shape"])
def test_bad_inputs_give_one_line(tmp_path, capsys, case):
    good = _write(tmp_path / "a.h5", ["x"], np.zeros((1, 2, 3), np.float32))
    bad = str(tmp_path / "bad.h5")
    if case == "not_logits":
        with h5py.File(bad, "w") as f:
            f["audio_name"] = np.array([b"x"])
    elif case == "shape":
        _write(tmp_path / "bad.h5", ["x"], np.zeros((1, 2, 4), np.float32))
    assert ensemble_main(["--inputs", good, bad, "--out", str(tmp_path / "e.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sonolab ensemble-logits: error:") and "\n" not in err
    expected = {"missing": "does not exist", "not_logits": "expected datasets 'filenames' and 'strong_logits'",
                "shape": "inputs of different (classes, frames)"}[case]
    assert expected in err
