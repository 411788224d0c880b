"""Writes the detected events of ``sonolab predict`` (sound event detection) to a tab-separated file.

The threshold is one operating point; PSDS (at ``sonolab test``) sweeps all of them.
"""
from __future__ import annotations

import csv
import os
from typing import Any, List, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl

from callbacks.prediction_writer import TagPredictionWriter
from metrics.sed import ClipScores, decode_events, median_filter

EventRow = Tuple[str, float, float, str]


def detect_events(name: str, strong: np.ndarray, timestamps: np.ndarray, class_names: Sequence[str],
                  windows: Any, threshold: float) -> List[EventRow]:
    """Events of one clip: median filter per class, threshold, maximal runs of active frames.

    Args:
        name: The clip's file name (first column of the rows).
        strong: ``(classes, frames)`` frame probabilities, as ``predict_step`` returns them.
        timestamps: ``frames + 1`` frame boundaries in seconds.
        class_names: One name per class row of ``strong``.
        windows: Median-filter window in frames, one for all classes or one per class (1: no filter).
        threshold: A frame is active when its filtered probability exceeds this.

    Returns:
        ``(filename, onset, offset, event_label)`` per event, ordered by class, then time.
    """
    scores = median_filter(np.asarray(strong, dtype=np.float64).T, windows)
    clip = ClipScores(timestamps, scores, tuple(class_names))
    return [(name, onset, offset, label) for onset, offset, label in decode_events(clip, threshold)]


class SEDPredictionWriter(TagPredictionWriter):
    """One row per detected event: ``filename onset offset event_label`` (the DCASE detection table; a clip without
    events has no row). Under DDP every rank writes ``<stem>.rank<r>.tsv``.

    Frame probabilities of the student (``predict_step``'s ``strong``) are median-filtered with the task's windows
    (``median_windows``), thresholded and decoded with the datamodule's frame timestamps.

    Args:
        output_path: Target file; relative paths are resolved against the trainer's log directory.
        threshold: Probability above which a frame is active.
    """

    def __init__(self, output_path: str = "predictions.tsv", threshold: float = 0.5) -> None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        super().__init__(output_path, threshold)

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        data = trainer.datamodule
        timestamps, class_names, windows = data.encoder.timestamps, data.class_names, pl_module.windows()
        rows: List[EventRow] = []
        clips = 0
        for batch in predictions:
            for name, strong in zip(batch["name"], batch["strong"].float().numpy()):
                rows.extend(detect_events(name, strong, timestamps, class_names, windows, self.threshold))
                clips += 1
        path = self._resolve(trainer)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(["filename", "onset", "offset", "event_label"])
            writer.writerows((name, f"{on:.3f}", f"{off:.3f}", label) for name, on, off, label in rows)
        self.written_path = path
        if trainer.is_global_zero:
            print(f"{len(rows)} events of {clips} clips written to {path}")
