"""Teacher logits looked up by clip id; bad rows, widths and coverage are clear errors or warnings."""
import logging
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from datamodules.tagging import TaggingDataModule
from datamodules.teacher import TeacherLogits, TeacherLogitsError, write_teacher_logits


@pytest.mark.bad_input
def test_lookup_by_id_with_missing_clips(tmp_path):
    logits = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_teacher_logits(str(tmp_path / "t.h5"), ["c.wav", "a.wav", "b.wav"], logits)
    teacher = TeacherLogits(str(tmp_path / "t.h5"))
    assert teacher.logits.dtype == torch.float16 and teacher.shape == (4,)
    out, weight = teacher.lookup(["b.wav", "zzz.wav", "c.wav", "a_much_longer_name.wav"])
    torch.testing.assert_close(out, torch.from_numpy(np.stack([logits[2], np.zeros(4, np.float32), logits[0], np.zeros(4, np.float32)])))
    assert weight.tolist() == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.bad_input
def test_bad_teacher_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        TeacherLogits(str(tmp_path / "none.h5"))
    write_teacher_logits(str(tmp_path / "dup.h5"), ["a", "a"], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not unique"):
        TeacherLogits(str(tmp_path / "dup.h5"))


def test_datamodule_attaches_teacher_to_training_batches(tone_h5_dir, tmp_path):
    names = [f"clip_{i:04d}.wav" for i in range(0, 48, 2)]  # every other clip has a teacher row
    write_teacher_logits(str(tmp_path / "t.h5"), names, np.ones((len(names), 4)))
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", clip_seconds=0.1, batch_size=6, num_workers=0,
                           teacher_logits=str(tmp_path / "t.h5"), balanced_sampling=True, samples_per_epoch=30)

    class _Trainer:
        training, world_size, global_rank, current_epoch = True, 1, 0, 0
        fit_loop = SimpleNamespace(epoch_progress=SimpleNamespace(current=SimpleNamespace(processed=0)))

    dm.trainer = _Trainer()
    batch = dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
    expected = torch.tensor([float(int(n[5:9]) % 2 == 0) for n in batch["name"]])
    assert torch.equal(batch["teacher_weight"], expected)
    assert torch.equal(batch["teacher"].sum(1), 4 * expected)
    assert len(dm.train_dataloader().sampler) == 30


@pytest.mark.bad_input
def test_a_teacher_of_another_width_is_an_error_naming_both(tone_h5_dir, tmp_path):
    write_teacher_logits(str(tmp_path / "bad.h5"), ["clip_0000.wav"], np.ones((1, 5)))
    with pytest.raises(TeacherLogitsError, match=r"bad\.h5: 5 logits per clip, but the data has num_classes=4"):
        TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", teacher_logits=str(tmp_path / "bad.h5"))


@pytest.mark.parametrize("value, what", [(np.nan, "holds NaN or inf"), (-np.inf, "holds NaN or inf"),
                                         (1e6, r"is beyond the float16 range \(\|x\| > 65504\)")])
@pytest.mark.bad_input
def test_a_non_finite_row_is_an_error_naming_file_row_and_clip(tmp_path, value, what):
    logits = np.zeros((3, 4), dtype=np.float32)
    logits[2, 1] = value
    with h5py.File(tmp_path / "t.h5", "w") as f:  # float32 on disk, as a teacher script would write it
        f["audio_name"] = np.array([b"c.wav", b"a.wav", b"b.wav"])
        f["logits"] = logits
    with pytest.raises(TeacherLogitsError, match=rf"t\.h5: row 2 of 'logits' \(clip 'b\.wav'\) {what}"):
        TeacherLogits(str(tmp_path / "t.h5"))


def _setup_fit(tone_h5_dir, teacher):
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", clip_seconds=0.1, num_workers=0, teacher_logits=teacher)
    dm.setup("fit")
    return dm


@pytest.mark.bad_input
def test_coverage_is_reported_and_partial_coverage_warns(tone_h5_dir, tmp_path, caplog):
    names = [f"clip_{i:04d}.wav" for i in range(48)]
    write_teacher_logits(str(tmp_path / "all.h5"), names, np.zeros((48, 4)))
    with caplog.at_level(logging.INFO):
        assert _setup_fit(tone_h5_dir, str(tmp_path / "all.h5")).teacher_coverage == 1.0
    assert "all.h5: 48 of 48 training clips covered" in caplog.text
    write_teacher_logits(str(tmp_path / "some.h5"), names[:36] + ["other.wav"], np.zeros((37, 4)))
    with pytest.warns(UserWarning, match=r"some\.h5: 12 of 48 training clips have no teacher logits"):
        assert _setup_fit(tone_h5_dir, str(tmp_path / "some.h5")).teacher_coverage == 0.75


@pytest.mark.bad_input
def test_no_covered_training_clip_is_an_error(tone_h5_dir, tmp_path):
    write_teacher_logits(str(tmp_path / "t.h5"), ["Y--PJHxphWEs_30000_4"], np.zeros((1, 4)))
    with pytest.raises(TeacherLogitsError, match=r"t\.h5: none of the 48 training clips has teacher logits; training "
                                                 r"ids look like 'clip_0000\.wav', the file's like 'Y--PJHxphWEs"):
        _setup_fit(tone_h5_dir, str(tmp_path / "t.h5"))
