"""Tagging figures: per-class AP over known labels, and what a validation run writes into the TensorBoard events."""
import glob

import numpy as np
import pytest
import pytorch_lightning as pl
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.tagging_figures import TaggingFigures, class_average_precision, probabilities, single_label_confusion
from datamodules.tagging import TaggingDataModule
from experiments.tagging import AudioTagging


def test_class_average_precision_over_known_labels_only():
    scores = np.array([[0.9, 0.2], [0.8, 0.9], [0.3, 0.4], [0.1, 0.7]])
    targets = np.array([[1, 0], [0, -1], [1, 0], [0, 0]])
    ap = class_average_precision(scores, targets)
    np.testing.assert_allclose(ap[0], (1 / 1 + 2 / 3) / 2)  # positives ranked 1st and 3rd
    assert np.isnan(ap[1])  # no known positive


def test_confusion_only_for_single_label_data_and_probabilities():
    scores = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    counts = single_label_confusion(scores, np.array([[0, 1, 0], [1, 0, 0], [1, 0, 0]]))
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert single_label_confusion(scores, np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]])) is None  # two labels
    assert single_label_confusion(scores, np.array([[0, 1, -1], [1, 0, 0], [1, 0, 0]])) is None  # unknown label
    np.testing.assert_allclose(probabilities(np.array([[0.0, 2.0]])), [[0.5, 1 / (1 + np.exp(-2))]])
    np.testing.assert_array_equal(probabilities(np.array([[0.2, 0.7]])), [[0.2, 0.7]])


def test_every_n_epochs_must_be_positive():
    with pytest.raises(ValueError, match="every_n_epochs must be >= 1, got 0"):
        TaggingFigures(every_n_epochs=0)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_validation_writes_ap_bars_and_one_pr_curve_per_named_class(tone_h5_dir, tmp_path):
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", val_h5=f"{tone_h5_dir}/val.h5", clip_seconds=0.5,
                           batch_size=8, num_workers=0)
    task = AudioTagging(model="demo_cnn", num_classes=4)
    figures = TaggingFigures()
    trainer = pl.Trainer(accelerator="cpu", logger=pl.loggers.TensorBoardLogger(str(tmp_path), name="tag"),
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         callbacks=[figures])
    metrics = trainer.validate(task, datamodule=dm, verbose=False)[0]
    # the figure's AP is the task's: the mean over classes equals val/mAP
    np.testing.assert_allclose(np.nanmean(figures.last_ap["val"]), metrics["val/mAP"], rtol=1e-5)
    events = EventAccumulator(glob.glob(f"{tmp_path}/tag/version_0")[0], size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert events.Tags()["images"] == ["val/class_ap"]  # multi-label data: no confusion matrix
    image = events.Images("val/class_ap")[0]
    assert image.width > 300 and image.height > 100
    curves = [t for t in events.Tags()["tensors"] if t.startswith("val/pr_curve/")]
    assert sorted(curves) == ["val/pr_curve/0_low", "val/pr_curve/1_mid", "val/pr_curve/2_high", "val/pr_curve/3_noise"]
