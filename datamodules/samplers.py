"""Samplers: class-balanced draws that are DDP-aware and reproducible per epoch."""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DistributedSampler


def class_balanced_weights(targets: np.ndarray, offset: float = 100.0, scale: float = 1000.0) -> np.ndarray:
    """Per-clip weights of the EfficientAT balanced sampler.

    ``n_c`` = positives of class c; ``w_c = scale / (n_c + offset)``; a clip's weight is the sum of ``w_c`` over
    its positive classes (clips without positives get weight 0).

    Args:
        targets: (N, C) boolean or 0/1 label matrix.
        offset: Added to the class counts (100).
        scale: Numerator (1000).
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2:
        raise ValueError(f"targets must be (clips, classes), got shape {targets.shape}")
    class_weights = scale / (targets.sum(axis=0) + offset)
    return targets @ class_weights


def strong_clip_weights(active_frames: np.ndarray, offset: float = 30.0, scale: float = 1000.0) -> np.ndarray:
    """Per-clip weights of PretrainedSED's balanced AudioSet-strong sampler.

    The balanced-sampler formula of :func:`class_balanced_weights`, on frame counts instead of clip counts: class
    count ``n_c = offset + sum over clips of active_frames[:, c]`` (30 + the class's active frames in the training
    set), class weight ``w_c = scale / n_c`` (1000 / n_c), clip weight ``sum_c active_frames[clip, c] * w_c``.
    A clip without active frames gets weight 0 (it is never drawn). (PretrainedSED:
    ``data_util/audioset_strong.py``, ``get_temporal_count_balanced_sample_weights``.)

    Args:
        active_frames: (N, C) active frames of every class in every training clip (the frame targets summed over
            time).
        offset: Added to the class counts (30).
        scale: Numerator (1000).
    """
    active_frames = np.asarray(active_frames, dtype=np.float64)
    if (active_frames < 0).any():
        raise ValueError("active_frames must be non-negative frame counts")
    return class_balanced_weights(active_frames, offset=offset, scale=scale)


class DistributedWeightedSampler(DistributedSampler):
    """Weighted draws without replacement, split into disjoint per-rank shares.

    Every rank draws the same ``num_samples`` indices from a generator seeded with ``seed + epoch`` (so an epoch
    is reproducible) and keeps every ``num_replicas``-th one starting at its rank, so the shares are disjoint.
    Every rank keeps ``num_samples // num_replicas`` draws (the last few draws of an uneven split are dropped), so
    that all ranks run the same number of batches.
    Subclassing ``DistributedSampler`` keeps Lightning from wrapping it again under DDP.

    Args:
        weights: Per-clip sampling weights (non-negative).
        num_samples: Draws per epoch over all ranks (100,000 for AudioSet).
        replacement: Draw with replacement.
        num_replicas: World size (default: 1, or the initialised process group's).
        rank: This process's rank.
        seed: Base seed.
    """

    def __init__(
        self,
        weights: np.ndarray,
        num_samples: int,
        replacement: bool = False,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        seed: int = 0,
    ) -> None:
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if weights.dim() != 1 or (weights < 0).any():
            raise ValueError("weights must be a 1-D array of non-negative numbers")
        positive = int((weights > 0).sum())
        if not replacement and num_samples > positive:
            raise ValueError(f"cannot draw {num_samples} clips without replacement from {positive} with weight > 0")
        if num_replicas is None:
            num_replicas = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if rank is None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        self.weights = weights
        self.total = int(num_samples)
        self.replacement = replacement
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.num_samples = self.total // num_replicas
        self.shuffle, self.drop_last, self.dataset = True, False, None

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total, self.replacement, generator=generator)
        return iter(drawn[self.rank::self.num_replicas][: self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples
