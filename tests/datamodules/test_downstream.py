"""Downstream packers (ESC-50, OpenMIC-2018, TAU20) on layouts built from demo audio, and what the datamodule reads."""
import csv
import os

import numpy as np
import pytest

from datamodules.datasets import ClipDataset
from datamodules.downstream import pack_esc50, read_esc50_meta
from datamodules.h5format import AudioH5, attach_soft_labels
from datamodules.tagging import TaggingDataModule


def test_esc50_folds_hold_their_clips_with_one_hot_targets(downstream_layouts, downstream_h5):
    rows, classes = read_esc50_meta(os.path.join(downstream_layouts["esc50"], "meta", "esc50.csv"))
    assert len(downstream_h5["esc50"]) == 5
    for fold, path in enumerate(downstream_h5["esc50"], start=1):
        h5 = AudioH5(path)
        expected = {r["filename"]: r["target"] for r in rows if r["fold"] == fold}
        assert sorted(h5.names) == sorted(expected) and h5.class_names == classes
        targets = h5.weak_targets()
        assert np.all(targets.sum(axis=1) == 1)
        assert [classes[t] for t in targets.argmax(axis=1)] == [classes[expected[n]] for n in h5.names]


def test_esc50_table_errors_name_the_line(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("filename,fold,target,category\na.wav,1,0,dog\nb.wav,7,1,rain\n")
    with pytest.raises(ValueError, match=r"esc50.csv, line 3, field 'fold'"):
        pack_esc50(str(tmp_path), str(tmp_path / "out"))


def test_openmic_keeps_soft_labels_and_masks(downstream_layouts, downstream_h5):
    data = np.load(os.path.join(downstream_layouts["openmic"], "openmic-2018.npz"))
    row = {str(k): i for i, k in enumerate(data["sample_key"])}
    train = AudioH5(downstream_h5["openmic"]["train"])
    assert len(train) == 30 and len(AudioH5(downstream_h5["openmic"]["test"])) == 10
    for i, name in enumerate(train.names):
        soft, known = train.soft_target(i)
        np.testing.assert_allclose(soft, data["Y_true"][row[name]], atol=1e-3)
        np.testing.assert_array_equal(known, data["Y_mask"][row[name]])
        np.testing.assert_array_equal(train.weak_target(i).astype(bool), known & (soft > 0.5))
    item = ClipDataset(downstream_h5["openmic"]["train"], 32000, 1.0)[3]
    assert item["mask"].dtype == __import__("torch").bool and item["target"].max() <= 1.0
    np.testing.assert_allclose(item["target"].numpy(), data["Y_true"][row[item["name"]]], atol=1e-3)


def test_attach_soft_labels_rejects_missing_clips_and_bad_values(downstream_h5, tmp_path):
    import shutil

    path = str(tmp_path / "copy.h5")
    shutil.copyfile(downstream_h5["openmic"]["test"], path)
    names = list(AudioH5(path).names)
    with pytest.raises(ValueError, match="no soft labels for 1 clips"):
        attach_soft_labels(path, names[1:], np.zeros((len(names) - 1, 8)), np.ones((len(names) - 1, 8), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attach_soft_labels(path, names, np.full((len(names), 8), 1.5), np.ones((len(names), 8), bool))


def test_tau20_scene_labels_become_one_hot_targets(downstream_layouts, downstream_h5):
    with open(os.path.join(downstream_layouts["tau20"], "evaluation_setup", "fold1_evaluate.csv"), newline="") as f:
        expected = {r["filename"]: r["scene_label"] for r in csv.DictReader(f, delimiter="\t")}
    dataset = ClipDataset(downstream_h5["tau20"]["test"], 32000, 1.0, label="scene")
    assert len(dataset) == len(expected) == 15
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["audio"].shape == (32000,) and float(item["target"].sum()) == 1.0
        assert dataset.class_names[int(item["target"].argmax())] == expected[item["name"]]
    with pytest.raises(ValueError, match="no scene labels"):
        ClipDataset(downstream_h5["esc50"][0], 32000, 1.0, label="scene")


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
