"""Teacher logits looked up by clip id."""
import numpy as np
import pytest
import torch

from datamodules.tagging import TaggingDataModule
from datamodules.teacher import TeacherLogits, write_teacher_logits


def test_lookup_by_id_with_missing_clips(tmp_path):
    logits = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_teacher_logits(str(tmp_path / "t.h5"), ["c.wav", "a.wav", "b.wav"], logits)
    teacher = TeacherLogits(str(tmp_path / "t.h5"))
    assert teacher.logits.dtype == torch.float16 and teacher.shape == (4,)
    out, weight = teacher.lookup(["b.wav", "zzz.wav", "c.wav", "a_much_longer_name.wav"])
    torch.testing.assert_close(out, torch.from_numpy(np.stack([logits[2], np.zeros(4, np.float32), logits[0], np.zeros(4, np.float32)])))
    assert weight.tolist() == [1.0, 0.0, 1.0, 0.0]


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

    dm.trainer = _Trainer()
    batch = dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
    expected = torch.tensor([float(int(n[5:9]) % 2 == 0) for n in batch["name"]])
    assert torch.equal(batch["teacher_weight"], expected)
    assert torch.equal(batch["teacher"].sum(1), 4 * expected)
    assert len(dm.train_dataloader().sampler) == 30
    with pytest.raises(ValueError, match="expected \\(4,\\)"):
        write_teacher_logits(str(tmp_path / "bad.h5"), names, np.ones((len(names), 5)))
        TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", teacher_logits=str(tmp_path / "bad.h5"))
