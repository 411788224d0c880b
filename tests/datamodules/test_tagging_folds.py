"""TaggingDataModule folds: train on the other files, validate and test on the held-out one."""

import pytest

from datamodules.format.hdf5 import AudioH5
from datamodules.tagging import TaggingDataModule


def test_folds_select_train_and_held_out_files(downstream_h5):
    folds = downstream_h5["esc50"]
    dm = TaggingDataModule(folds_h5=folds, fold=2, sample_rate=32000, clip_seconds=1.0, num_workers=0)
    assert dm._splits["val"] == dm._splits["test"] == folds[1]
    assert dm._splits["train"] == [folds[0], *folds[2:]]
    assert len(dm._dataset("train")) == sum(len(AudioH5(p)) for p in dm._splits["train"])
    with pytest.raises(ValueError, match=r"fold must lie in 1..5"):
        TaggingDataModule(folds_h5=folds, fold=6)
    with pytest.raises(ValueError, match="either folds_h5"):
        TaggingDataModule(folds_h5=folds, val_h5=folds[0])
