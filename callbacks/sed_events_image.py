"""Predicted vs true events of a few validation clips as a TensorBoard figure, every validation epoch.

Per clip (the first validation clips with strong labels that rank 0 sees): the log-mel spectrogram above one row
per class present in the target or predicted above the threshold, with the target activity as a shaded band, the
student's post-processed (median-filtered) probability as a line and the decision threshold dashed; class names on
the rows, time in seconds (:func:`callbacks.figures.sed_activity_figure`).
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np
import pytorch_lightning as pl
import torch

from callbacks.figures import DPI, ActivityClip, class_names_of, log_figure, sed_activity_figure
from metrics.sed import median_filter


class SEDEventsImage(pl.Callback):
    """Logs ``val/events`` on rank 0, at most once per validation epoch.

    The clips are scored again here (one extra forward pass of ``clips`` clips), so the task needs only its public
    ``forward(audio, embeddings)`` -> (strong (B, C, T'), weak), its ``frontend`` and, for the post-processing,
    ``windows()``; the datamodule gives ``class_names``, ``encoder.frame_hop`` and ``hparams.sample_rate``.

    Args:
        clips: How many clips to draw.
        threshold: Decision threshold drawn on every class row.
        dpi: Resolution of the figure.
    """

    def __init__(self, clips: int = 4, threshold: float = 0.5, dpi: int = DPI) -> None:
        super().__init__()
        self.clips, self.threshold, self.dpi = int(clips), float(threshold), int(dpi)
        self.examples: List[ActivityClip] = []  # the clips of the current (after it: the last) validation epoch
        self.last: Optional[np.ndarray] = None

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.examples = []

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        wanted = self.clips - len(self.examples)
        if wanted <= 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        has_strong = batch.get("has_strong", torch.ones(len(batch["name"]), dtype=torch.bool))
        rows = torch.nonzero(has_strong.bool()).flatten()[:wanted].to(batch["audio"].device)
        if rows.numel() == 0:
            return
        audio = batch["audio"][rows]
        embeddings = batch.get("embeddings")
        mel = pl_module.frontend(audio).float().cpu().numpy()
        probs = pl_module(audio, embeddings[rows] if embeddings is not None else None)[0].float().cpu().numpy()
        windows = pl_module.windows() if hasattr(pl_module, "windows") else 1
        probs = median_filter(probs.swapaxes(1, 2), windows).swapaxes(1, 2)  # the filter runs along (T, C)
        target = batch["strong"][rows].float().cpu().numpy()
        data = getattr(trainer, "datamodule", None)
        rate = getattr(data, "hparams", {}).get("sample_rate") or getattr(pl_module.frontend, "sample_rate", None)
        if not rate:
            raise ValueError("SEDEventsImage needs the audio sample rate (data hparams sample_rate or the task "
                             "frontend's sample_rate) for the time axis")
        duration = audio.shape[-1] / rate
        hop = getattr(getattr(data, "encoder", None), "frame_hop", duration / target.shape[-1])
        for k, row in enumerate(rows.tolist()):
            spec = mel[k].reshape(mel.shape[-2], mel.shape[-1])
            self.examples.append(ActivityClip(str(batch["name"][row]), spec, duration, target[k], probs[k], hop))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.examples:
            return
        names = class_names_of(trainer, self.examples[0].target.shape[0])
        figure = sed_activity_figure(self.examples, names, self.threshold, self.dpi)
        self.last = log_figure(trainer, "val/events", figure)
