"""The tagging datamodule: batches, workers, crops, errors."""
import numpy as np
import pytest
import torch

from datamodules.datasets import ClipDataset
from datamodules.tagging import TaggingDataModule


@pytest.mark.parametrize("num_workers", [0, 2])
def test_datamodule_batches_with_workers(tone_h5_dir, num_workers):
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", val_h5=f"{tone_h5_dir}/val.h5", clip_seconds=0.5,
                           batch_size=8, num_workers=num_workers)
    assert dm.num_classes == 4 and dm.class_names == ["low", "mid", "high", "noise"]
    batches = list(dm.val_dataloader())
    assert sum(b["audio"].shape[0] for b in batches) == 16
    assert batches[0]["audio"].shape == (8, 16000) and batches[0]["target"].shape == (8, 4)
    assert batches[0]["name"][0] == "clip_0000.wav"
    # identical content whatever the number of workers
    reference = list(TaggingDataModule(val_h5=f"{tone_h5_dir}/val.h5", clip_seconds=0.5, batch_size=8,
                                       num_workers=0).val_dataloader())
    for a, b in zip(batches, reference):
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["target"], b["target"])


def test_random_crops_are_seeded_per_epoch(tone_h5_dir):
    ds = ClipDataset(f"{tone_h5_dir}/train.h5", 32000, 0.25, random_crop=True, seed=3)
    first = ds[5]["audio"]
    assert torch.equal(first, ClipDataset(f"{tone_h5_dir}/train.h5", 32000, 0.25, random_crop=True, seed=3)[5]["audio"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[5]["audio"])
    evaluation = ClipDataset(f"{tone_h5_dir}/train.h5", 32000, 0.25)
    assert torch.equal(evaluation[5]["audio"], torch.from_numpy(evaluation.h5.waveform(5, 32000))[:8000])


def test_resampling_and_padding(tone_h5_dir):
    ds = ClipDataset(f"{tone_h5_dir}/val.h5", 16000, 1.5)
    audio = ds[0]["audio"]
    assert audio.shape == (24000,)
    assert torch.all(audio[16000:] == 0) and audio[:16000].abs().max() > 0.1


def test_missing_configuration_and_files_are_clear_errors(tone_h5_dir, tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        TaggingDataModule()
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        TaggingDataModule(train_h5=str(tmp_path / "nope.h5"))
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", num_workers=0)
    with pytest.raises(ValueError, match="no val_h5"):
        dm.val_dataloader()


def test_several_training_files_read_as_one_balanced_set(tone_h5_dir):
    dm = TaggingDataModule(train_h5=[f"{tone_h5_dir}/train.h5", f"{tone_h5_dir}/val.h5"], clip_seconds=0.1,
                           batch_size=8, num_workers=0, balanced_sampling=True, samples_per_epoch=40)
    loader = dm.train_dataloader()
    assert len(loader.dataset) == 64 and loader.dataset.weak_targets().shape == (64, 4)
    assert len(loader.sampler) == 40 and max(loader.sampler) < 64
