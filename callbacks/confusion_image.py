"""Confusion matrix and accuracy per recording device as TensorBoard images, at the end of every validation and test
epoch of scene classification.

Both figures (:mod:`callbacks.figures`) carry the scene and device names: the matrix shows the clip count and the
row percentage in every cell, the bars the accuracy and clip count of each device. Scene names come from the
datamodule (the HDF5 ``scene_names``), else from the metric. Raw counts go to ``confusion_test.tsv`` in the log
directory at test end.
"""
from __future__ import annotations

import csv
import os
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl

from callbacks.figures import DPI, class_names_of, confusion_figure, device_accuracy_figure, log_figure


class ConfusionMatrixImage(pl.Callback):
    """Logs ``<stage>/confusion`` and ``<stage>/device_accuracy`` figures of ``pl_module.metrics[stage]`` (an
    :class:`~metrics.asc.ASCAccuracy`) on rank 0.

    Args:
        stages: Stages to render ("val", "test").
        device_accuracy: Also log the bars of the accuracy per recording device.
        write_counts: Also write the test counts as ``confusion_test.tsv`` into the log directory.
        dpi: Resolution of the figures.
    """

    def __init__(self, stages: Sequence[str] = ("val", "test"), device_accuracy: bool = True,
                 write_counts: bool = True, dpi: int = DPI) -> None:
        super().__init__()
        self.stages, self.device_accuracy, self.write_counts = tuple(stages), device_accuracy, write_counts
        self.dpi = int(dpi)
        self.last: dict = {}

    def _render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> Optional[np.ndarray]:
        metric = getattr(pl_module, "metrics", {})[stage] if stage in getattr(pl_module, "metrics", {}) else None
        if stage not in self.stages or metric is None or trainer.sanity_checking:
            return None
        # (device, true, predicted) over every clip once; a collective under DDP, so every rank reads it
        by_device = metric.confusion.detach().cpu().numpy().astype(np.int64)
        counts = by_device.sum(axis=0)
        self.last[stage] = counts
        if not trainer.is_global_zero:
            return counts
        classes = class_names_of(trainer, len(counts), metric.classes)
        log_figure(trainer, f"{stage}/confusion", confusion_figure(counts, classes, f"{stage} confusion", self.dpi))
        if self.device_accuracy:
            correct = np.trace(by_device, axis1=1, axis2=2)
            figure = device_accuracy_figure(correct, by_device.sum(axis=(1, 2)), metric.devices, metric.groups,
                                            f"{stage} accuracy per device", self.dpi)
            log_figure(trainer, f"{stage}/device_accuracy", figure)
        return counts

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._render(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        counts = self._render(trainer, pl_module, "test")
        if counts is not None and self.write_counts and trainer.is_global_zero and trainer.log_dir:
            classes = class_names_of(trainer, len(counts), pl_module.metrics["test"].classes)
            os.makedirs(trainer.log_dir, exist_ok=True)
            with open(os.path.join(trainer.log_dir, "confusion_test.tsv"), "w", newline="") as f:
                writer = csv.writer(f, delimiter="\t", lineterminator="\n")
                writer.writerow(["true\\predicted", *classes])
                for name, row in zip(classes, counts.tolist()):
                    writer.writerow([name, *row])
