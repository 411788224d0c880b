"""The DCASE Task 1 submission files and the confusion-matrix image, from a tiny test run on the demo scenes."""
import csv
import json
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from callbacks.asc_submission import ASCSubmissionWriter, strip_audio_prefix, write_output_csv
from callbacks.confusion_image import ConfusionMatrixImage, render_confusion
from datamodules.asc import ASCDataModule
from experiments.asc import SceneClassification
from metrics.asc import SCENE_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def test_write_output_csv(tmp_path):
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    path = str(tmp_path / "output.csv")
    write_output_csv(path, ["audio/x-a.wav", "y-b.wav"], probs, ["airport", "bus", "metro"])
    rows = read_rows(path)
    assert rows[0] == ["filename", "scene_label", "airport", "bus", "metro"]
    assert rows[1][:2] == ["x-a.wav", "bus"] and rows[2][:2] == ["y-b.wav", "airport"]
    assert strip_audio_prefix("audio/a.wav") == "a.wav" and strip_audio_prefix("b/a.wav") == "b/a.wav"


def test_render_confusion():
    image = render_confusion(np.array([[3, 1], [0, 0]]), cell=4)
    assert image.shape == (3, 9, 9) and image.min() >= 0 and image.max() <= 1
    assert image[:, 1, 1].sum() < image[:, 1, 5].sum()  # the 75 % cell is darker than the 25 % cell
    np.testing.assert_allclose(image[:, 6, 6], 1.0)  # an empty row renders white


@pytest.mark.slow
def test_submission_files(demo_scenes, tmp_path):
    dm = ASCDataModule(os.path.join(demo_scenes, "scenes_train.h5"), os.path.join(demo_scenes, "scenes_test.h5"),
                       split_dir=os.path.join(demo_scenes, "scenes"), batch_size=25, num_workers=0)
    task = SceneClassification(test_precision="fp16", frontend_overrides={"n_fft": 1024, "win_length": 1024})
    writer, confusion = ASCSubmissionWriter("submission"), ConfusionMatrixImage()
    run = pl.Trainer(accelerator="cpu", devices=1, logger=pl.loggers.TensorBoardLogger(str(tmp_path), name="asc"),
                     enable_progress_bar=False, enable_model_summary=False, callbacks=[writer, confusion])
    run.test(task, dm, verbose=False)
    out = writer.written_dir
    rows = read_rows(os.path.join(out, "output.csv"))
    assert rows[0] == ["filename", "scene_label", *SCENE_CLASSES]
    assert len(rows) == 1 + 100
    probs = np.array([[float(p) for p in r[2:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert all(not r[0].startswith("audio/") and r[0].endswith(".wav") for r in rows[1:])
    assert all(r[1] == SCENE_CLASSES[int(np.argmax(p))] for r, p in zip(rows[1:], probs))
    state = torch.load(os.path.join(out, "model_state_dict.pt"), weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    info = json.load(open(os.path.join(out, "info.json")))
    assert info["params"] == 61_148 and info["macs"] == 29_419_156 and info["param_bytes"] == 122_296
    assert info["within_limits"] and 0.0 <= info["test"]["test/macro_acc"] <= 1.0
    assert confusion.last["test"].sum() == 100
    assert os.path.isfile(os.path.join(run.log_dir, "confusion_test.tsv"))
