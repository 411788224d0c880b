"""ClipDataset and DecodeGuard: an undecodable clip raises naming the file and the clip, is replaced by another clip
of the file (reproducibly), or becomes a silent placeholder that drop_skipped removes; each clip is warned once."""
import warnings

import h5py
import numpy as np
import pytest
import torch

from datamodules.datasets import (REPLACEMENT_TRIES, SKIPPED, ClipDataset, DecodeGuard, SkippedClipWarning,
                                  decode_mode, drop_skipped)
from datamodules.format.audio_io import AudioDecodeError
from tests.conftest import write_tone_h5

pytestmark = pytest.mark.bad_input


def corrupt_clips(path: str, rows) -> str:
    """Overwrites the stored bytes of ``rows`` with bytes no decoder reads."""
    with h5py.File(path, "a") as f:
        codec = f.attrs["codec"]
        for row in rows:
            f[codec][row] = np.frombuffer(b"this is not audio " * 8, dtype=np.uint8)
    return path


@pytest.fixture
def damaged(tmp_path) -> str:
    """Eight 0.25 s flac clips; clip 3 is garbage."""
    return corrupt_clips(write_tone_h5(str(tmp_path / "clips.h5"), 8, seed=0, seconds=0.25, codec="flac"), [3])


def test_raise_names_the_file_and_the_clip(damaged):
    ds = ClipDataset(damaged, 32000, 0.25)
    assert int(ds[2][SKIPPED]) == 0
    with pytest.raises(AudioDecodeError, match=rf"{damaged}: clip 3 \('clip_0003.wav'\): cannot decode .*"
                                               r"on_decode_error='raise'"):
        ds[3]


def test_replace_draws_another_clip_of_the_file_reproducibly(damaged):
    ds = ClipDataset(damaged, 32000, 0.25, random_crop=True, on_decode_error="replace")
    with pytest.warns(SkippedClipWarning, match=rf"{damaged}: clip 3 \('clip_0003.wav'\).*replaced"):
        item = ds[3]
    assert int(item[SKIPPED]) == 1 and item["index"] != 3 and item["name"] != "clip_0003.wav"
    assert torch.equal(item["audio"], ds[item["index"]]["audio"])  # the replacement is that clip, same crop
    again = ClipDataset(damaged, 32000, 0.25, random_crop=True, on_decode_error="replace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert again[3]["index"] == item["index"]  # (seed, epoch, index) decide, not the reading order
        draws = set()
        for epoch in range(6):
            again.set_epoch(epoch)
            draws.add(again[3]["index"])
    assert len(draws) > 1 and 3 not in draws


def test_each_clip_is_warned_once_per_dataset(damaged):
    ds = ClipDataset(damaged, 32000, 0.25, on_decode_error="replace")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            ds[3]
    assert [type(w.message) for w in caught] == [SkippedClipWarning]


def test_drop_keeps_the_labels_with_silence_and_drop_skipped_removes_the_row(damaged):
    ds = ClipDataset(damaged, 32000, 0.25, on_decode_error="drop")
    with pytest.warns(SkippedClipWarning, match="left out of this evaluation"):
        item = ds[3]
    assert int(item[SKIPPED]) == 1 and item["index"] == 3 and not item["audio"].any()
    assert item["target"].tolist() == ds.h5.weak_target(3).tolist() and item["target"].sum() > 0
    batch = torch.utils.data.default_collate([ds[i] for i in range(2, 6)])
    kept = drop_skipped(batch)
    assert kept["name"] == ["clip_0002.wav", "clip_0004.wav", "clip_0005.wav"]
    assert kept["index"].tolist() == [2, 4, 5] and kept["audio"].shape == (3, 8000)
    clean = torch.utils.data.default_collate([ds[i] for i in (4, 5)])
    assert drop_skipped(clean) is clean


def test_a_damaged_file_stops_instead_of_replacing_forever(tmp_path):
    path = corrupt_clips(write_tone_h5(str(tmp_path / "bad.h5"), 4, seed=0, seconds=0.25, codec="flac"), range(4))
    ds = ClipDataset(path, 32000, 0.25, on_decode_error="replace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AudioDecodeError, match=rf"clip 0 .*the {REPLACEMENT_TRIES} clips drawn to replace it "
                                                   r"cannot be decoded either: is the file damaged\?"):
            ds[0]


def test_other_errors_are_not_skipped():
    def read(index, silent):
        raise ValueError("a label out of range")

    with pytest.raises(ValueError, match="^a label out of range$"):
        DecodeGuard("replace").item(read, 0, 10)


def test_modes():
    assert [decode_mode(m, train) for m in ("raise", "skip") for train in (True, False)] == \
        ["raise", "raise", "replace", "drop"]
    with pytest.raises(ValueError, match="on_decode_error must be 'raise' or 'skip', got 'ignore'"):
        decode_mode("ignore", train=True)
    with pytest.raises(ValueError, match="on_decode_error must be one of"):
        DecodeGuard("skip")
