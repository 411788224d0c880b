"""Batches with a fixed number of clips from each of several sources (the DCASE SED training batch).

The sources are consecutive blocks of one concatenated dataset (source ``i`` holds global indices
``offsets[i] .. offsets[i] + sizes[i] - 1``). Every batch holds ``batch_sizes[i]`` indices of source ``i``, the
blocks contiguous and in source order, so a task can mix up within a source by slicing (:func:`source_blocks`).

The sampler is handed to the ``DataLoader`` as ``sampler`` (with ``batch_size=None``) and yields whole batches as
index lists; the dataset's ``__getitem__`` takes such a list. Being a ``DistributedSampler`` subclass, Lightning
(``use_distributed_sampler=True``, the default) leaves it alone under DDP instead of wrapping it in a
``DistributedSamplerWrapper``, which would shard single indices and break the batch composition.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler


class IndexBatch(list):
    """A batch of dataset indices that also carries the epoch it was drawn for (used to seed random crops, so that
    they change every epoch even in persistent DataLoader workers)."""

    def __init__(self, indices: Sequence[int], epoch: int) -> None:
        super().__init__(int(i) for i in indices)
        self.epoch = int(epoch)


def source_blocks(batch_sizes: Sequence[int]) -> List[slice]:
    """Row slices of each source in a batch of :class:`MultiSourceBatchSampler` (``[12, 6]`` -> 0:12, 12:18)."""
    edges = np.concatenate([[0], np.cumsum(batch_sizes)]).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class MultiSourceBatchSampler(DistributedSampler):
    """Yields batches concatenating ``batch_sizes[i]`` random indices of every source ``i``.

    Each source is permuted every epoch by a generator seeded with ``(seed, epoch, i)``; every rank computes the
    same permutation and keeps every ``num_replicas``-th index starting at its rank, truncated to
    ``sizes[i] // num_replicas`` so all ranks hold equal, disjoint shares. An epoch ends with the shortest stream:
    ``min_i (sizes[i] // num_replicas) // batch_sizes[i]`` batches on every rank (the rest of the longer sources
    is not seen that epoch; a new permutation next epoch reaches it).

    Args:
        sizes: Clips per source, in the order of the concatenated dataset.
        batch_sizes: Clips per source in one batch (per process under DDP).
        num_replicas: World size (default: the initialised process group's, else 1).
        rank: This process's rank (default: the process group's, else 0).
        seed: Base seed of the permutations.
        shuffle: Permute the sources (else each source is read in order).
        names: Source names, for error messages.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        batch_sizes: Sequence[int],
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        seed: int = 0,
        shuffle: bool = True,
        names: Optional[Sequence[str]] = None,
    ) -> None:
        sizes, batch_sizes = [int(s) for s in sizes], [int(b) for b in batch_sizes]
        names = list(names) if names is not None else [f"source {i}" for i in range(len(sizes))]
        if not sizes or len(sizes) != len(batch_sizes) or len(names) != len(sizes):
            raise ValueError(f"sizes, batch_sizes (and names) need one entry per source, got {len(sizes)}, "
                             f"{len(batch_sizes)}, {len(names)}")
        if num_replicas is None:
            num_replicas = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if rank is None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas), got rank={rank}, num_replicas={num_replicas}")
        for name, size, batch in zip(names, sizes, batch_sizes):
            if batch < 1:
                raise ValueError(f"{name}: batch_size must be >= 1, got {batch}")
            if size // num_replicas < batch:
                raise ValueError(f"{name}: {size} clips cannot fill one batch of {batch} on each of {num_replicas} "
                                 f"process(es)")
        self.sizes, self.batch_sizes, self.names = sizes, batch_sizes, names
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.shares = [size // num_replicas for size in sizes]
        self.num_batches = min(share // batch for share, batch in zip(self.shares, batch_sizes))
        # DistributedSampler's attributes (its __init__ wants a dataset and may touch the process group)
        self.num_replicas, self.rank, self.seed, self.epoch = int(num_replicas), int(rank), int(seed), 0
        self.shuffle, self.drop_last, self.dataset = shuffle, True, None
        self.num_samples = self.num_batches
        self.total_size = self.num_batches * self.num_replicas

    @property
    def batch_size(self) -> int:
        """Rows of one batch (sum of the per-source sizes)."""
        return sum(self.batch_sizes)

    def set_epoch(self, epoch: int) -> None:
        """Selects the permutations of ``epoch`` (Lightning calls this at the start of every epoch)."""
        self.epoch = int(epoch)

    def _share(self, i: int) -> np.ndarray:
        """This rank's global indices of source ``i`` for the current epoch."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, i]).permutation(self.sizes[i])
        else:
            order = np.arange(self.sizes[i])
        return order[self.rank :: self.num_replicas][: self.shares[i]] + self.offsets[i]

    def __iter__(self) -> Iterator[IndexBatch]:
        shares = [self._share(i) for i in range(len(self.sizes))]
        for b in range(self.num_batches):
            parts = [share[b * size : (b + 1) * size] for share, size in zip(shares, self.batch_sizes)]
            yield IndexBatch(np.concatenate(parts).tolist(), self.epoch)

    def __len__(self) -> int:
        return self.num_batches
