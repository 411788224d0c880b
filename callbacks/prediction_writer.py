"""Writes per-clip tag predictions of ``sonolab predict`` to a tab-separated file."""
from __future__ import annotations

import csv
import os
from typing import Any, List, Optional, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter


class TagPredictionWriter(BasePredictionWriter):
    """One row per clip: ``filename``, the tags above ``threshold`` (comma-separated), then one probability column
    per class. Under DDP every rank writes ``<stem>.rank<r>.tsv``.

    Args:
        output_path: Target file; relative paths are resolved against the trainer's log directory.
        threshold: Probability above which a tag is listed.
    """

    def __init__(self, output_path: str = "predictions.tsv", threshold: float = 0.5) -> None:
        super().__init__(write_interval="epoch")
        self.output_path = output_path
        self.threshold = threshold
        self.written_path: Optional[str] = None

    def _resolve(self, trainer: pl.Trainer) -> str:
        path = self.output_path
        if not os.path.isabs(path):
            path = os.path.join(trainer.log_dir or ".", path)
        if trainer.world_size > 1:
            stem, ext = os.path.splitext(path)
            path = f"{stem}.rank{trainer.global_rank}{ext}"
        return path

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        class_names: List[str] = list(getattr(trainer.datamodule, "class_names", []))
        names = [n for batch in predictions for n in batch["name"]]
        probs = torch.cat([batch["probs"] for batch in predictions]) if predictions else torch.zeros(0, 0)
        if not class_names:
            class_names = [str(i) for i in range(probs.shape[1])]
        path = self._resolve(trainer)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(["filename", "tags", *class_names])
            for name, row in zip(names, probs.tolist()):
                tags = ",".join(c for c, p in zip(class_names, row) if p > self.threshold)
                writer.writerow([name, tags, *(f"{p:.5f}" for p in row)])
        self.written_path = path
        if trainer.is_global_zero:
            print(f"predictions of {len(names)} clips written to {path}")
