"""Per-class results of audio tagging in TensorBoard: AP bars, PR curves and, for single-label data, the confusion
matrix, at the end of validation (every ``every_n_epochs`` epochs) and of test, on rank 0.

Images: ``<stage>/class_ap`` (:func:`callbacks.figures.class_ap_figure`: classes sorted by AP, named; with many
classes the best and worst 20), ``<stage>/confusion`` when every clip has exactly one label (ESC-50, scenes).
PR curves: one TensorBoard PR-curve summary per class, ``<stage>/pr_curve/<index>_<class name>`` (the PR CURVES tab).
Class names come from the datamodule (the HDF5 ``class_names``); indices only when the data has none.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pytorch_lightning as pl
from sklearn.metrics import average_precision_score

from callbacks.figures import DPI, class_ap_figure, class_names_of, confusion_figure, log_figure
from metrics.clip_outputs import ClipOutputs


def class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AP of every class over the clips whose label is known (target >= 0; positive: target > 0.5).

    Args:
        scores: (N, C) probabilities or logits.
        targets: (N, C) labels in [0, 1], -1 where unknown.

    Returns:
        (C,) float64, NaN for classes without a known positive clip.
    """
    ap = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        known = targets[:, c] >= 0
        positive = targets[known, c] > 0.5
        if positive.any():
            ap[c] = average_precision_score(positive, scores[known, c])
    return ap


def single_label_confusion(scores: np.ndarray, targets: np.ndarray) -> Optional[np.ndarray]:
    """(C, C) counts [true, top-scoring class] when every clip has exactly one positive and no unknown label (the
    data is single-label: ESC-50, scenes), else ``None``."""
    if not len(targets) or np.any(targets < 0) or np.any((targets > 0.5).sum(axis=1) != 1):
        return None
    counts = np.zeros((targets.shape[1], targets.shape[1]), dtype=np.int64)
    np.add.at(counts, (targets.argmax(axis=1), scores.argmax(axis=1)), 1)
    return counts


def epoch_predictions(pl_module: pl.LightningModule, stage: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(N, C) scores and (N, C) labels (-1: unknown) of the ``stage`` clips of the last epoch, every clip once.

    Read from the task's ``outputs[stage]`` (:class:`~metrics.clip_outputs.ClipOutputs` with ``logits``, ``target``
    and optionally ``mask`` rows); its ``merged()`` is a collective under DDP, so every process calls this.
    ``None`` when the task keeps no such outputs or scored no clip.
    """
    outputs = getattr(pl_module, "outputs", None)
    clips = outputs.get(stage) if isinstance(outputs, dict) else None
    if not isinstance(clips, ClipOutputs):
        return None
    rows = clips.merged()
    if not len(rows["name"]):
        return None
    labels = np.array(rows["target"], dtype=np.float64)
    if "mask" in rows:
        labels[~rows["mask"].astype(bool)] = -1.0
    return np.asarray(rows["logits"], dtype=np.float64), labels


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores as probabilities: logits (anything outside [0, 1]) go through the sigmoid, as torchmetrics does."""
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        return 1.0 / (1.0 + np.exp(-scores))
    return scores


class TaggingFigures(pl.Callback):
    """Logs per-class AP bars, PR curves and (single-label data) the confusion matrix; see the module docstring.

    Args:
        every_n_epochs: Validation epochs between two renderings (test always renders).
        pr_curves: Also write one PR-curve summary per class.
        show: With more than ``2 * show`` classes, the AP bars show the best and the worst ``show``.
        dpi: Resolution of the figures.
    """

    def __init__(self, every_n_epochs: int = 1, pr_curves: bool = True, show: int = 20, dpi: int = DPI) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs, self.pr_curves, self.show, self.dpi = int(every_n_epochs), pr_curves, int(show), int(dpi)
        self.last_ap: dict = {}

    def _render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        predictions = epoch_predictions(pl_module, stage)
        if predictions is None or not trainer.is_global_zero:
            return
        scores, targets = probabilities(predictions[0]), predictions[1]
        names = class_names_of(trainer, scores.shape[1])
        ap = self.last_ap[stage] = class_average_precision(scores, targets)
        log_figure(trainer, f"{stage}/class_ap", class_ap_figure(ap, names, f"{stage} AP", self.show, self.dpi))
        counts = single_label_confusion(scores, targets)
        if counts is not None:
            log_figure(trainer, f"{stage}/confusion", confusion_figure(counts, names, f"{stage} confusion", self.dpi))
        if self.pr_curves:
            self._log_pr_curves(trainer, stage, scores, targets, names)

    @staticmethod
    def _log_pr_curves(trainer: pl.Trainer, stage: str, scores: np.ndarray, targets: np.ndarray, names: list) -> None:
        writers = [logger.experiment for logger in trainer.loggers
                   if hasattr(getattr(logger, "experiment", None), "add_pr_curve")]
        for c, name in enumerate(names):
            known = targets[:, c] >= 0
            if not known.any():
                continue
            tag = f"{stage}/pr_curve/{c:0{len(str(len(names) - 1))}d}_{name.replace('/', '_')}"
            for writer in writers:
                writer.add_pr_curve(tag, targets[known, c] > 0.5, scores[known, c], global_step=trainer.global_step)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._render(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._render(trainer, pl_module, "test")
