"""Writes the frame logits of ``sonolab predict`` to a logits HDF5 file (teacher targets for distillation)."""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from datamodules.format.strong_logits import LogitsFileWriter, merge_parts


class StrongLogitsWriter(BasePredictionWriter):
    """Streams every predicted batch's ``strong_logits`` (B, C, T) to ``output_path`` (layout:
    :mod:`datamodules.format.strong_logits`), so that no teacher output is held in memory.

    Under DDP each process writes ``<output_path>.rank<r>`` and, after the epoch, process 0 merges the parts into
    ``output_path`` with every clip once. The task's ``predict_step`` must return ``name`` (clip ids) and
    ``strong_logits``.

    Args:
        output_path: Target file; relative paths are resolved against the trainer's log directory.
    """

    def __init__(self, output_path: str = "strong_logits.h5") -> None:
        super().__init__(write_interval="batch")
        self.output_path = output_path
        self.written_path: Optional[str] = None
        self._writer: Optional[LogitsFileWriter] = None

    def _target(self, trainer: pl.Trainer) -> str:
        path = self.output_path
        return path if os.path.isabs(path) else os.path.join(trainer.log_dir or ".", path)

    def _part(self, trainer: pl.Trainer) -> str:
        target = self._target(trainer)
        return target if trainer.world_size == 1 else f"{target}.rank{trainer.global_rank}"

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The logits go to disk; Lightning would otherwise also keep every batch's output in memory.
        trainer.predict_loop.return_predictions = False

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        logits = prediction["strong_logits"].float().cpu().numpy()
        if self._writer is None:
            class_names = getattr(trainer.datamodule, "class_names", None)
            if class_names is not None and len(class_names) != logits.shape[1]:
                class_names = None
            self._writer = LogitsFileWriter(self._part(trainer), logits.shape[1], logits.shape[2], class_names)
        self._writer.append(list(prediction["name"]), logits)

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        target = self._target(trainer)
        if trainer.world_size > 1:
            trainer.strategy.barrier("strong_logits_parts")
            if trainer.is_global_zero:
                merge_parts([f"{target}.rank{r}" for r in range(trainer.world_size)], target)
            trainer.strategy.barrier("strong_logits_merged")
        self.written_path = target
        if trainer.is_global_zero:
            print(f"strong logits written to {target}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
