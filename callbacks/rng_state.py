"""Random-number-generator states in checkpoints, so that a resumed fit draws what the uninterrupted fit would have.

Python's, NumPy's and torch's global generators (and CUDA's, where available) feed the DataLoader shuffle, the
DataLoader workers' seeds and every augmentation drawn in the task (mixup, roll, gain, Freq-MixStyle, ...). Lightning
restores the weights, optimiser, schedulers and loop counters but not these states: without them, the epoch after a
resume shuffles and augments differently from the run it continues.
"""
from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import pytorch_lightning as pl
import torch


def collect_rng_states() -> Dict[str, Any]:
    """The global generators' states as tensors, tuples and numbers only (checkpoints load with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]) -> None:
    """Sets the global generators to ``states`` (from :func:`collect_rng_states`); absent entries are left alone."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        cuda_states = states["cuda"][: torch.cuda.device_count()]
        for device, state in enumerate(cuda_states):
            torch.cuda.set_rng_state(state, device)


class RNGStateCheckpoint(pl.Callback):
    """Saves the global RNG states in every checkpoint and restores them when a fit resumes from one.

    With the loop counters Lightning restores (the epoch reaches the samplers' and datasets' ``set_epoch``), the
    optimiser, LR schedulers and the module's own state (the EMA teacher is a submodule), the epoch after resuming
    from an end-of-epoch checkpoint (``last.ckpt``) logs exactly what the uninterrupted run logs. The states are
    those of the saving process (rank 0 under DDP), restored on every rank; on one process the continuation is exact.
    (A datamodule that gives its dataset the epoch when it builds the training DataLoader must take the epoch Lightning
    gives the samplers, ``trainer.fit_loop.epoch_progress.current.processed``: right after a restore,
    ``trainer.current_epoch`` still names the finished epoch, and DataLoader workers copy the dataset at that moment.)

    Resuming from a mid-epoch checkpoint (written on SIGTERM, see :class:`callbacks.graceful_stop.GracefulStop`)
    works but is not exact: Lightning restarts the epoch's DataLoader, so the rest of that epoch sees other batches.
    ``sonolab fit`` adds this callback to every trainer.
    """

    def state_dict(self) -> Dict[str, Any]:
        return collect_rng_states()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        # Lightning calls this while restoring a fit, before the sanity check (which runs in isolated RNG state) and
        # before the first training DataLoader of the resumed run draws its shuffle seed.
        restore_rng_states(state_dict)
