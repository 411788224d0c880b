"""The DCASE Task 1 submission files and the confusion/device figures, from a tiny test run on the demo scenes."""
import csv
import json
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.asc_submission import ASCSubmissionWriter, strip_audio_prefix, write_output_csv
from callbacks.confusion_image import ConfusionMatrixImage
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
    assert info["validation"] == "the test set scenes_test.h5"  # as the DCASE'24 baseline validates
    assert confusion.last["test"].sum() == 100
    table = read_rows(os.path.join(run.log_dir, "confusion_test.tsv"))
    assert table[0] == ["true\\predicted", *SCENE_CLASSES] and [r[0] for r in table[1:]] == list(SCENE_CLASSES)
    assert sum(int(v) for r in table[1:] for v in r[1:]) == 100
    events = EventAccumulator(run.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["test/confusion", "test/device_accuracy"]


def test_rows_of_every_rank_are_gathered_once_sorted(monkeypatch):
    """Under DDP each rank holds its share plus the sampler's padded repeat: output.csv gets each clip once."""
    import callbacks.asc_submission as submission

    writer = submission.ASCSubmissionWriter()
    writer._names, writer._probs = ["c.wav", "a.wav"], [torch.tensor([[0.9, 0.1], [0.2, 0.8]])]
    other_rank = (["b.wav", "c.wav"], torch.tensor([[0.5, 0.5], [0.9, 0.1]]))  # c.wav padded again on rank 1
    monkeypatch.setattr(submission, "all_gather_objects", lambda mine: [mine, other_rank])
    names, probs = writer._gathered(2)
    assert names == ["a.wav", "b.wav", "c.wav"]
    assert probs.tolist() == [[pytest.approx(0.2), pytest.approx(0.8)], [0.5, 0.5], [pytest.approx(0.9), pytest.approx(0.1)]]
