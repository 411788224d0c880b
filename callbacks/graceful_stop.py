"""A resumable ``last.ckpt`` when a fit is stopped with SIGTERM (a scheduler's time limit, ``kill``, ``docker stop``)."""
from __future__ import annotations

import os
from typing import Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info


def last_checkpoint_path(trainer: pl.Trainer) -> str:
    """``last.ckpt`` in the run's checkpoint folder (the first ModelCheckpoint's, else ``<log_dir>/checkpoints``)."""
    callback = trainer.checkpoint_callback
    folder = callback.dirpath if callback is not None and callback.dirpath else None
    if folder is None:
        folder = os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
    return os.path.join(folder, "last" + ModelCheckpoint.FILE_EXTENSION)


class GracefulStop(pl.Callback):
    """Writes ``last.ckpt`` when SIGTERM stops a fit, so that ``sonolab fit --ckpt_path last`` continues it.

    Lightning notes SIGTERM and stops at the next safe point (after the current training batch, or within the
    validation run) by raising ``SIGTERMException``; this callback then saves the full training state to
    ``last.ckpt`` of the run's checkpoint folder, tells the ModelCheckpoint that keeps ``last.ckpt`` (``filename:
    last`` without ``monitor``, or ``save_last``) that the file is its own (so that the resumed run overwrites it
    instead of writing ``last-v1.ckpt``), and puts the path on the exception as ``checkpoint_path`` (``sonolab
    fit`` prints it and exits with 143). Nothing is saved during the sanity check or outside ``fit``.

    Where the resumed run continues: from a stop after an epoch's end, with the next epoch, exactly as the
    uninterrupted run (see :class:`callbacks.rng_state.RNGStateCheckpoint`); from a stop mid-epoch, with the next
    batch of that epoch, but from a restarted DataLoader, so the rest of the epoch sees other batches than the
    uninterrupted run would; from a stop during the last training batch or the end-of-epoch validation, with the
    next epoch: that epoch's validation, epoch-end logging and epoch-end checkpoints are not repeated.
    """

    def __init__(self) -> None:
        super().__init__()
        self.saved_path: Optional[str] = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        path = last_checkpoint_path(trainer)
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint) or callback.dirpath != os.path.dirname(path):
                continue
            if callback.monitor is None and callback.filename == "last":
                callback.best_model_path = path
            if callback.save_last:
                callback.last_model_path = path
        trainer.save_checkpoint(path)
        self.saved_path = path
        exception.checkpoint_path = path  # type: ignore[attr-defined]
        rank_zero_info(f"SIGTERM: saved a resumable checkpoint (epoch {trainer.current_epoch}, step "
                       f"{trainer.global_step}) to {path}")
