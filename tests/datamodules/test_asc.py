"""Split selection, labels and batch resampling of the ASC datamodule, on the demo scenes."""
import os

import numpy as np
import pytest
import torch

from datamodules.asc import ASCDataModule, Resample, SceneDataset
from datamodules.sources.tau22 import parse_tau_filename, read_filenames
from datamodules.format.audio_io import resample
from datamodules.format.hdf5 import AudioH5
from datamodules.teacher import write_teacher_logits
from metrics.asc import DEVICES, SCENE_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")


def test_split_selection_and_labels(demo_scenes):
    scenes = os.path.join(demo_scenes, "scenes")
    sizes = {}
    previous = set()
    for split in (5, 10, 25, 50, 100):
        dm = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), os.path.join(demo_scenes, "scenes_test.h5"),
                           split=split, split_dir=scenes, batch_size=8, num_workers=0)
        ds = dm.dataset("train")
        names = [ds.h5.names[r] for r in ds.rows]
        assert names == read_filenames(os.path.join(scenes, f"split{split}.csv"))
        assert previous <= set(names)  # nested splits
        previous = set(names)
        sizes[split] = len(ds)
    assert sizes[5] < sizes[25] < sizes[100] == 200
    assert dm.num_classes == 10 and dm.class_names == list(SCENE_CLASSES)
    item = dm.dataset("train")[3]
    fields = parse_tau_filename(item["name"])
    assert item["audio"].shape == (44100,) and item["audio"].dtype == torch.float32
    assert SCENE_CLASSES[item["target"]] == fields["scene"] and DEVICES[item["device"]] == fields["device"]
    test_devices = {DEVICES[d] for d in dm.dataset("test").device_ids}
    assert {"s4", "s5", "s6"} <= test_devices  # unseen devices only in test
    batch = next(iter(dm.val_dataloader()))
    assert batch["audio"].shape == (8, 44100) and batch["device"].dtype == torch.long


def test_device_filter_and_bad_arguments(demo_scenes):
    train = os.path.join(demo_scenes, "scenes_train.h5")
    ds = SceneDataset(train, devices=["b", "s1"])
    assert len(ds) > 0 and {DEVICES[d] for d in ds.device_ids} == {"b", "s1"}
    with pytest.raises(ValueError, match="split"):
        ASCDataModule(train, split=33)
    with pytest.raises(ValueError, match="unknown devices"):
        ASCDataModule(train, train_devices=["z"])


def test_teacher_logits_by_file_name(demo_scenes, tmp_path):
    train = os.path.join(demo_scenes, "scenes_train.h5")
    names = list(AudioH5(train).names)
    path = str(tmp_path / "teacher.h5")
    logits = np.random.default_rng(0).standard_normal((len(names), 10))
    write_teacher_logits(path, [os.path.basename(n) for n in names[:-1]], logits[:-1])  # keyed without audio/
    dm = ASCDataModule(train, split_dir=os.path.join(demo_scenes, "scenes"), teacher_logits=path, num_workers=0)
    got, weight = dm.teacher_lookup(names[:3] + names[-1:])
    np.testing.assert_allclose(got[:3].numpy(), logits[:3], atol=2e-3)
    assert weight.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_resample_matches_polyphase():
    t = np.arange(44100) / 44100
    x = (np.sin(2 * np.pi * 997 * t) + 0.5 * np.sin(2 * np.pi * 7000 * t)).astype(np.float32)
    out = Resample(44100, 32000)(torch.from_numpy(x).repeat(3, 1))
    assert out.shape == (3, 32000)
    ref = resample(x, 44100, 32000)
    assert np.abs(out[1].numpy()[100:-100] - ref[100:-100]).max() < 5e-3
    assert torch.equal(Resample(32000, 32000)(out), out)
