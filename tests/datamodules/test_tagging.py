"""The tagging datamodule: batches, workers, crops, errors."""
import numpy as np
import pytest
import torch

from datamodules.datasets import ClipDataset
from datamodules.label_space import LabelSpaceError
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


@pytest.mark.bad_input
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


def _copy_with_classes(src: str, dst, class_names) -> str:
    """A copy of ``src`` whose ``class_names`` attribute is replaced (``None``: removed, as in community files)."""
    import shutil

    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        del f.attrs["class_names"]
        if class_names is not None:
            f.attrs["class_names"] = class_names
    return str(dst)


@pytest.mark.bad_input
def test_a_validation_file_in_another_class_order_is_an_error_naming_both(tone_h5_dir, tmp_path):
    val = _copy_with_classes(f"{tone_h5_dir}/val.h5", tmp_path / "val.h5", ["mid", "low", "high", "noise"])
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", val_h5=val, num_workers=0)
    message = (r"val\.h5: class_names \['mid', 'low', 'high', 'noise'\] differ from the label space of "
               r"'.*train\.h5': \['low', 'mid', 'high', 'noise'\] \(first difference at column 0: 'mid' vs 'low'\)")
    with pytest.raises(LabelSpaceError, match=message):
        dm.setup("fit")  # checked before training starts
    fewer = _copy_with_classes(f"{tone_h5_dir}/test.h5", tmp_path / "test.h5", ["low", "mid", "high"])
    with pytest.raises(LabelSpaceError, match=r"test\.h5: class_names .* \(3 vs 4 classes\)"):
        TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", test_h5=fewer, num_workers=0).setup("test")


@pytest.mark.bad_input
def test_files_without_class_names_need_the_class_names_argument(tone_h5_dir, tmp_path):
    community = _copy_with_classes(f"{tone_h5_dir}/val.h5", tmp_path / "community.h5", None)
    with pytest.raises(LabelSpaceError, match=r"community\.h5: the file has no 'class_names' attribute .*give "
                                              r"data\.class_names"):
        TaggingDataModule(val_h5=community)
    with pytest.raises(LabelSpaceError, match=r"community\.h5: the file has no 'class_names' attribute, so its target "
                                              r"columns cannot be checked against the label space of '.*train\.h5'"):
        TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", val_h5=community, num_workers=0).setup("validate")
    (tmp_path / "classes.txt").write_text("low\nmid\nhigh\nnoise\n")
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", val_h5=community,
                           class_names=str(tmp_path / "classes.txt"), clip_seconds=0.1, batch_size=16, num_workers=0)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    expected = next(iter(TaggingDataModule(val_h5=f"{tone_h5_dir}/val.h5", clip_seconds=0.1, batch_size=16,
                                           num_workers=0).val_dataloader()))
    assert dm.class_names == ["low", "mid", "high", "noise"] and torch.equal(batch["target"], expected["target"])
    with pytest.raises(LabelSpaceError, match=r"train\.h5: class_names \['low', 'mid', 'high', 'noise'\] differ from "
                                              r"the label space of class_names: \['a', 'b', 'c', 'd'\]"):
        TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", class_names=["a", "b", "c", "d"]).setup("fit")


def test_audioset_class_list_csv(tmp_path):
    from datamodules.tagging import read_class_names

    path = tmp_path / "class_labels_indices.csv"
    path.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n')
    assert read_class_names(str(path)) == ["Speech", "Male speech, man speaking"]
    (tmp_path / "classes.txt").write_text("Speech\n\nMusic\n")
    assert read_class_names(str(tmp_path / "classes.txt")) == ["Speech", "Music"]
