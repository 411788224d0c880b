"""Confusion-matrix images in TensorBoard at the end of every validation and test epoch.

The image is rendered with numpy alone: one square cell per (true, predicted) pair, rows = true classes, columns =
predictions, colour = row-normalised rate (white 0 -> dark blue 1), a thin grey grid. No text is drawn; the class
order is the label index order (alphabetical scenes for TAU22). Raw counts go to ``confusion_<stage>.tsv`` in the
log directory at test end.
"""
from __future__ import annotations

import csv
import os
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch

_LOW = np.array([1.0, 1.0, 1.0])
_HIGH = np.array([0.03, 0.19, 0.42])


def shade(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB (``values.shape + (3,)``) on the white -> dark blue ramp of sonolab's images."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return _LOW + values[..., None] * (_HIGH - _LOW)


def render_confusion(counts: np.ndarray, cell: int = 12) -> np.ndarray:
    """(C, C) counts -> (3, C * cell + 1, C * cell + 1) float32 RGB image in [0, 1] of the row-normalised matrix."""
    counts = np.asarray(counts, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    rate = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    rgb = shade(rate)  # (C, C, 3)
    img = np.kron(rgb, np.ones((cell, cell, 1)))
    size = img.shape[0] + 1
    out = np.full((size, size, 3), 0.6)
    out[:-1, :-1] = img
    out[::cell, :, :] = 0.6
    out[:, ::cell, :] = 0.6
    return out.transpose(2, 0, 1).astype(np.float32)


class ConfusionMatrixImage(pl.Callback):
    """Logs ``<stage>/confusion`` images of ``pl_module.metrics[stage]`` (an :class:`~metrics.asc.ASCAccuracy`).

    Args:
        stages: Stages to render ("val", "test").
        cell: Pixels per matrix cell.
        write_counts: Also write the test counts as ``confusion_test.tsv`` into the log directory.
    """

    def __init__(self, stages: Sequence[str] = ("val", "test"), cell: int = 12, write_counts: bool = True) -> None:
        super().__init__()
        self.stages, self.cell, self.write_counts = tuple(stages), int(cell), write_counts
        self.last: dict = {}

    def _render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> Optional[np.ndarray]:
        metric = getattr(pl_module, "metrics", {})[stage] if stage in getattr(pl_module, "metrics", {}) else None
        if stage not in self.stages or metric is None or trainer.sanity_checking:
            return None
        with metric.sync_context():
            counts = metric.confusion_matrix()
        self.last[stage] = counts
        if not trainer.is_global_zero:
            return counts
        image = torch.from_numpy(render_confusion(counts, self.cell))
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image(f"{stage}/confusion", image, global_step=trainer.global_step)
        return counts

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._render(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        counts = self._render(trainer, pl_module, "test")
        if counts is not None and self.write_counts and trainer.is_global_zero and trainer.log_dir:
            classes = list(getattr(pl_module.metrics["test"], "classes", range(len(counts))))
            os.makedirs(trainer.log_dir, exist_ok=True)
            with open(os.path.join(trainer.log_dir, "confusion_test.tsv"), "w", newline="") as f:
                writer = csv.writer(f, delimiter="\t", lineterminator="\n")
                writer.writerow(["true\\predicted", *classes])
                for name, row in zip(classes, counts.tolist()):
                    writer.writerow([name, *row])
