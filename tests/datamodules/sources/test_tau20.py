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


@pytest.mark.bad_input
def test_asc_pack_detects_the_tau20_layout(tiny_tau, tmp_path, capsys):
    from datamodules.format.hdf5 import AudioH5
    from experiments.commands.asc_pack import main

    tau = tiny_tau("tau20")
    assert main(["--tau-dir", tau, "--out-dir", str(tmp_path / "out"), "--workers", "0", "--no-progress"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["tau20_test.h5", "tau20_train.h5"]
    train = AudioH5(str(tmp_path / "out" / "tau20_train.h5"))
    assert list(train.names) == ["audio/bus-lyon-1-10-a.wav", "audio/park-paris-2-20-b.wav",
                                 "audio/tram-lyon-3-30-s1.wav"]
    assert [train.scene_names[train.label("scene", i)] for i in range(3)] == ["bus", "park", "tram"]
    assert list(AudioH5(str(tmp_path / "out" / "tau20_test.h5")).names) == ["audio/park-lyon-4-40-c.wav"]
    os.remove(os.path.join(tau, "evaluation_setup", "fold1_evaluate.csv"))
    assert main(["--tau-dir", tau, "--out-dir", str(tmp_path / "o2"), "--workers", "0", "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"sonolab asc-pack: error: TAU20 fold1_evaluate.csv not found: {tau}/evaluation_setup/fold1_evaluate.csv "
        "(expected the TAU20 layout: meta.csv, audio/, evaluation_setup/fold1_train.csv, fold1_evaluate.csv)\n")
