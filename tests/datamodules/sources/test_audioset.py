"""AudioSet lists (segments CSV + class_labels_indices.csv) with a few downloaded clips -> one packed file."""
import numpy as np
import pytest
import soundfile as sf

from datamodules.format.hdf5 import AudioH5
from datamodules.sources.audioset import pack_audioset, read_class_indices, read_segments
from datamodules.sources.common import LayoutError
from experiments.commands.audioset_pack import main

CLASSES = "index,mid,display_name\n0,/m/09x0r,\"Speech\"\n1,/m/05zppz,\"Male speech, man speaking\"\n2,/m/0jbk,Animal\n"
SEGMENTS = ("# Segments csv created Sun Mar  5 10:54:31 2017\n"
            "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
            "# YTID, start_seconds, end_seconds, positive_labels\n"
            "--PJHxphWEs, 30.000, 40.000, \"/m/09x0r,/m/05zppz\"\n"
            "--ZhevVpy1s, 50.000, 60.000, \"/m/0jbk\"\n"
            "--aE2O5G5WE, 0.000, 10.000, \"/m/09x0r\"\n")


@pytest.fixture()
def lists(tmp_path):
    (tmp_path / "class_labels_indices.csv").write_text(CLASSES)
    (tmp_path / "eval_segments.csv").write_text(SEGMENTS)
    audio = tmp_path / "audio"
    audio.mkdir()
    for ytid in ("--PJHxphWEs", "--ZhevVpy1s"):  # the third was never downloaded
        sf.write(audio / f"Y{ytid}.wav", 0.1 * np.sin(np.arange(16000) / 5.0).astype(np.float32), 16000)
    return tmp_path


def test_lists_parse_with_quoted_commas(lists):
    mids, names = read_class_indices(str(lists / "class_labels_indices.csv"))
    assert mids == ["/m/09x0r", "/m/05zppz", "/m/0jbk"] and names[1] == "Male speech, man speaking"
    segments = read_segments(str(lists / "eval_segments.csv"))
    assert [s.ytid for s in segments] == ["--PJHxphWEs", "--ZhevVpy1s", "--aE2O5G5WE"]
    assert segments[0].mids == ("/m/09x0r", "/m/05zppz") and segments[0].start == "30.000"


@pytest.mark.bad_input
def test_pack_keeps_community_ids_and_reports_missing_audio(lists, tmp_path):
    out, missing = pack_audioset(str(lists / "eval_segments.csv"), str(lists / "class_labels_indices.csv"),
                                 str(lists / "audio"), str(tmp_path / "eval.h5"), codec="pcm16", workers=0,
                                 progress=False)
    h5 = AudioH5(out)
    assert list(h5.names) == ["Y--PJHxphWEs.mp3", "Y--ZhevVpy1s.mp3"] and missing == ["--aE2O5G5WE"]
    assert h5.weak_targets().astype(int).tolist() == [[1, 1, 0], [0, 0, 1]]
    assert h5.class_names[1] == "Male speech, man speaking"


@pytest.mark.bad_input
def test_unknown_mid_and_bad_rows_name_the_list(lists, tmp_path, capsys):
    (lists / "bad.csv").write_text("--x, 0, 10, \"/m/nope\"\n")
    with pytest.raises(LayoutError, match=r"bad.csv: segment '--x' has labels \['/m/nope'\]"):
        pack_audioset(str(lists / "bad.csv"), str(lists / "class_labels_indices.csv"), str(lists / "audio"),
                      str(tmp_path / "o.h5"), workers=0, progress=False)
    (lists / "short.csv").write_text("--x, 0\n")
    code = main(["--segments", str(lists / "short.csv"), "--class-labels", str(lists / "class_labels_indices.csv"),
                 "--audio-dir", str(lists / "audio"), "--out", str(tmp_path / "o.h5"), "--no-progress"])
    assert code == 2 and "short.csv, line 1: expected YTID" in capsys.readouterr().err


@pytest.mark.bad_input
def test_lists_in_utf16_with_bom_are_read_and_latin1_is_one_cli_line(lists, tmp_path, capsys):
    (lists / "class_labels_indices.csv").write_bytes(CLASSES.encode("utf-16"))
    assert read_class_indices(str(lists / "class_labels_indices.csv"))[1][1] == "Male speech, man speaking"
    (lists / "latin.csv").write_bytes(b"--PJHxphWEs, 30.000, 40.000, \"/m/09x0r\"  # caf\xe9\n")
    code = main(["--segments", str(lists / "latin.csv"), "--class-labels", str(lists / "class_labels_indices.csv"),
                 "--audio-dir", str(lists / "audio"), "--out", str(tmp_path / "o.h5"), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err == (f"sonolab audioset-pack: error: {lists / 'latin.csv'}: not UTF-8 text at "
                                       "byte 46 (line 1; save it as UTF-8)\n")
