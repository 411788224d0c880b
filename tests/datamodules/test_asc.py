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


@pytest.mark.bad_input
def test_device_filter_and_bad_arguments(demo_scenes):
    train = os.path.join(demo_scenes, "scenes_train.h5")
    ds = SceneDataset(train, devices=["b", "s1"])
    assert len(ds) > 0 and {DEVICES[d] for d in ds.device_ids} == {"b", "s1"}
    with pytest.raises(ValueError, match="split"):
        ASCDataModule(train, split=33)
    with pytest.raises(ValueError, match="unknown devices"):
        ASCDataModule(train, train_devices=["z"])


@pytest.mark.bad_input
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
    with pytest.warns(UserWarning, match=r"teacher\.h5: 1 of 200 training clips have no teacher logits"):
        dm.setup("fit")
    assert dm.teacher_coverage == 199 / 200


@pytest.mark.bad_input
def test_a_test_file_with_other_scene_names_is_an_error_naming_both(demo_scenes, tmp_path):
    import shutil

    import h5py

    from datamodules.label_space import LabelSpaceError

    test = str(tmp_path / "scenes_test.h5")
    shutil.copy(os.path.join(demo_scenes, "scenes_test.h5"), test)
    swapped = ["bus", "airport", *SCENE_CLASSES[2:]]
    with h5py.File(test, "a") as f:
        f.attrs["scene_names"] = swapped
    dm = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), test,
                       split_dir=os.path.join(demo_scenes, "scenes"), num_workers=0)
    with pytest.raises(LabelSpaceError, match=r"scenes_test\.h5: scene_names \['bus', 'airport', .*\] differ from the "
                                              r"label space of '.*scenes_train\.h5': \['airport', 'bus', .*first "
                                              r"difference at column 0: 'bus' vs 'airport'"):
        dm.setup("test")


def test_resample_matches_polyphase():
    t = np.arange(44100) / 44100
    x = (np.sin(2 * np.pi * 997 * t) + 0.5 * np.sin(2 * np.pi * 7000 * t)).astype(np.float32)
    out = Resample(44100, 32000)(torch.from_numpy(x).repeat(3, 1))
    assert out.shape == (3, 32000)
    ref = resample(x, 44100, 32000)
    assert np.abs(out[1].numpy()[100:-100] - ref[100:-100]).max() < 5e-3
    assert torch.equal(Resample(32000, 32000)(out), out)


def test_held_out_mask_takes_whole_groups_near_the_fraction():
    from datamodules.splits import held_out_mask

    groups = [f"city{g}-{loc}" for g in range(4) for loc in range(5) for _ in range(3)]  # 20 groups of 3 clips
    mask = held_out_mask(groups, 0.2, seed=0)
    assert mask.sum() == 12  # 20% of 60 clips = 4 whole groups
    held = {g for g, m in zip(groups, mask) if m}
    assert len(held) == 4 and not held & {g for g, m in zip(groups, mask) if not m}
    np.testing.assert_array_equal(mask, held_out_mask(groups, 0.2, seed=0))
    assert not np.array_equal(mask, held_out_mask(groups, 0.2, seed=1))
    # the draw depends on the group names, not on the row order
    order = np.random.default_rng(0).permutation(len(groups))
    np.testing.assert_array_equal(held_out_mask([groups[i] for i in order], 0.2, seed=0), mask[order])
    assert held_out_mask(["big"] * 10 + ["small"], 0.01).tolist() == [False] * 10 + [True]  # at least one group


@pytest.mark.bad_input
def test_held_out_split_bad_arguments(demo_scenes):
    from datamodules.splits import held_out_mask

    train, test = (os.path.join(demo_scenes, f"scenes_{s}.h5") for s in ("train", "test"))
    with pytest.raises(ValueError, match=r"val_fraction 0.9 would hold out all 2 groups; lower it"):
        held_out_mask(["x", "x", "y", "y"], 0.9)
    with pytest.raises(ValueError, match=r"val_fraction must lie in \(0, 1\)"):
        ASCDataModule(train, test, val_fraction=1.5)
    with pytest.raises(ValueError, match="set train_h5 and leave val_h5 unset"):
        ASCDataModule(train, test, val_h5=test, val_fraction=0.1)


@pytest.mark.parametrize("group", ["recording", "city"])
def test_held_out_validation_by_group(demo_scenes, group):
    from datamodules.sources.tau22 import parse_tau_filename

    def key(name):
        fields = parse_tau_filename(name)
        return fields["city"] if group == "city" else f"{fields['city']}-{fields['location']}"

    args = dict(split_dir=os.path.join(demo_scenes, "scenes"), num_workers=0, val_fraction=0.1, val_group=group)
    dm = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), os.path.join(demo_scenes, "scenes_test.h5"),
                       **args)
    train, val = ([ds.h5.names[r] for r in ds.rows] for ds in (dm.dataset("train"), dm.dataset("val")))
    assert len(train) + len(val) == 200 and not set(train) & set(val)
    assert not {key(n) for n in train} & {key(n) for n in val}  # no recording (city) on both sides
    if group == "recording":
        assert len(val) == 20  # 10% of 200 clips: 4 whole recordings of 5 clips
    else:
        assert 0 < len(val) < 100
    again = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), **args)
    assert [again.dataset("val").h5.names[r] for r in again.dataset("val").rows] == val
    assert not dm.validates_on_test and dm.validation_source.startswith(
        f"held-out {'recordings' if group == 'recording' else 'cities'} of scenes_train.h5 (val_fraction 0.1, seed 0: "
        f"{len(val)} clips")


def test_default_validation_is_the_test_set(demo_scenes):
    dm = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), os.path.join(demo_scenes, "scenes_test.h5"),
                       split_dir=os.path.join(demo_scenes, "scenes"), num_workers=0)
    assert dm.validates_on_test and dm.validation_source == "the test set scenes_test.h5"
    assert dm.dataset("val").h5.path == dm.dataset("test").h5.path


def test_calibration_clips_are_a_fixed_unshuffled_draw(demo_scenes):
    dm = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), split_dir=os.path.join(demo_scenes, "scenes"),
                       batch_size=4, num_workers=0)
    first = [list(b["name"]) for b in dm.calibration_dataloader(3, seed=0)]
    assert [list(b["name"]) for b in dm.calibration_dataloader(3, seed=0)] == first
    assert [len(b) for b in first] == [4, 4, 4]
    names = [n for b in first for n in b]
    ds = dm.dataset("train")
    rows = [list(ds.h5.names[ds.rows]).index(n) for n in names]
    assert rows == sorted(rows) and len(set(rows)) == 12  # file order, no repeats
    assert len([n for b in dm.calibration_dataloader(100, seed=0) for n in b["name"]]) == 200  # all, when fewer
    other = [n for b in dm.calibration_dataloader(3, seed=1) for n in b["name"]]
    assert other != names


def _pack_custom(path, rows, scenes, devices):
    """Packs 1 s 44.1 kHz clips of (name, scene index, device index) with the given vocabularies."""
    import soundfile as sf

    from datamodules.format.pack import PackItem, pack

    folder = os.path.dirname(path)
    items = []
    for i, (name, scene, device) in enumerate(rows):
        wav = os.path.join(folder, name)
        sf.write(wav, 0.1 * np.random.default_rng(i).standard_normal(44100), 44100)
        items.append(PackItem(wav, name, scene=scene, device=device, city=0))
    pack(items, path, codec="pcm16", sample_rate=44100, scene_names=scenes, device_names=devices,
         city_names=["oslo"], workers=0, progress=False)
    return path


@pytest.mark.bad_input
def test_device_vocabulary_of_other_files(tmp_path):
    scenes = ["forest_day", "harbour"]
    train = _pack_custom(str(tmp_path / "train.h5"), [("t0.wav", 0, 1), ("t1.wav", 1, 0)], scenes,
                         ["phoneA", "phoneB"])
    test = _pack_custom(str(tmp_path / "test.h5"), [("e0.wav", 0, 0), ("e1.wav", 1, 2)], scenes,
                        ["phoneB", "phoneA", "mic3"])
    dm = ASCDataModule(train, test, num_workers=0)
    assert dm.device_names == ["phoneA", "phoneB", "mic3"] and dm.class_names == scenes
    assert dm.dataset("train").device_ids.tolist() == [1, 0]
    assert dm.dataset("test").device_ids.tolist() == [1, 2]  # file ids re-mapped onto the shared vocabulary
    assert dm.train_device_names == ["phoneA", "phoneB"]
    assert ASCDataModule(train, test, train_devices=["phoneB"], num_workers=0).train_device_names == ["phoneB"]
    with pytest.raises(ValueError, match=r"unknown devices \['a'\]; known: \['phoneA', 'phoneB', 'mic3'\]"):
        ASCDataModule(train, test, eval_devices=["a"])
