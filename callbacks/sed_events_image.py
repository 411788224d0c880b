"""Predicted vs true events of a few validation clips as a TensorBoard image, every validation epoch.

One panel per clip, stacked vertically: the ground-truth frame targets on top, the (post-processed) predicted
probabilities below, each ``classes x frames`` with one row of pixels per class scaled by ``row_pixels``; white = 0,
dark blue = 1, grey lines between the two halves and between clips. Only classes present in the reference are drawn.
No text is drawn: rows follow the class order of the ground truth's label space.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch

from callbacks.confusion_image import shade

_GREY = 0.6


def render_events(pairs: list, row_pixels: int = 6, frame_pixels: int = 2) -> np.ndarray:
    """[(target (C, T), probs (C, T)), ...] -> (3, H, W) float32 RGB image in [0, 1]."""
    if not pairs:
        raise ValueError("nothing to render: no clips")
    width = max(t.shape[1] for t, _ in pairs) * frame_pixels
    blocks = []
    for target, probs in pairs:
        for half in (target, probs):
            rgb = np.kron(shade(half), np.ones((row_pixels, frame_pixels, 1)))
            padded = np.ones((rgb.shape[0], width, 3))
            padded[:, : rgb.shape[1]] = rgb
            blocks.append(padded)
            blocks.append(np.full((1, width, 3), _GREY))
        blocks.append(np.full((2, width, 3), _GREY))
    return np.concatenate(blocks[:-1]).transpose(2, 0, 1).astype(np.float32)


class SEDEventsImage(pl.Callback):
    """Logs ``val/events`` from ``pl_module.example_clips()``: (target, probs) pairs of the first validation clips.

    Args:
        clips: How many clips to draw.
        row_pixels: Pixel height of one class row.
        frame_pixels: Pixel width of one frame.
    """

    def __init__(self, clips: int = 4, row_pixels: int = 6, frame_pixels: int = 2) -> None:
        super().__init__()
        self.clips, self.row_pixels, self.frame_pixels = int(clips), int(row_pixels), int(frame_pixels)
        self.last: Optional[np.ndarray] = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not hasattr(pl_module, "example_clips"):
            return
        pairs = pl_module.example_clips(self.clips)
        if not pairs:
            return
        self.last = render_events(pairs, self.row_pixels, self.frame_pixels)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("val/events", torch.from_numpy(self.last), global_step=trainer.global_step)
