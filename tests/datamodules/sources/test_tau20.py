"""TAU20 layout (built from demo audio) -> scene-labelled files."""
import csv
import os

import pytest

from datamodules.datasets import ClipDataset


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
