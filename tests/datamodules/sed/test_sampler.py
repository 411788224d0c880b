"""Multi-source batches: fixed proportions, epoch = shortest stream, per-epoch reshuffle, disjoint DDP shares."""
import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from datamodules.sed.sampler import IndexBatch, MultiSourceBatchSampler, source_blocks

SIZES = [100, 37, 61, 250, 500]
BATCH = [12, 6, 6, 12, 24]


def _sources(batch, offsets):
    return np.searchsorted(offsets, np.asarray(batch), side="right") - 1


def test_batches_have_fixed_contiguous_proportions():
    sampler = MultiSourceBatchSampler(SIZES, BATCH, num_replicas=1, rank=0, seed=3)
    offsets = np.concatenate([[0], np.cumsum(SIZES)])
    batches = list(sampler)
    # the shortest stream: 37 // 6 = 6 batches (100 // 12 = 8, 61 // 6 = 10, 250 // 12 = 20, 500 // 24 = 20)
    assert len(batches) == len(sampler) == 6
    expected = np.repeat(np.arange(5), BATCH)
    for batch in batches:
        assert isinstance(batch, IndexBatch) and batch.epoch == 0 and len(batch) == sum(BATCH) == sampler.batch_size
        np.testing.assert_array_equal(_sources(batch, offsets), expected)  # contiguous, in source order
        assert np.bincount(_sources(batch, offsets)).tolist() == BATCH
    flat = np.concatenate(batches)
    assert len(np.unique(flat)) == len(flat)  # no clip twice in an epoch
    assert [slice(0, 12), slice(12, 18), slice(18, 24), slice(24, 36), slice(36, 60)] == source_blocks(BATCH)


def test_reshuffles_every_epoch_reproducibly():
    a = MultiSourceBatchSampler(SIZES, BATCH, num_replicas=1, rank=0, seed=1)
    b = MultiSourceBatchSampler(SIZES, BATCH, num_replicas=1, rank=0, seed=1)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second[0].epoch == 1 and first != second
    b.set_epoch(1)
    assert list(b) == second  # same (seed, epoch) -> same batches
    b.set_epoch(0)
    assert list(b) == first
    other_seed = MultiSourceBatchSampler(SIZES, BATCH, num_replicas=1, rank=0, seed=2)
    assert list(other_seed) != first
    ordered = MultiSourceBatchSampler([5, 4], [2, 2], num_replicas=1, rank=0, shuffle=False)
    assert list(ordered) == [[0, 1, 5, 6], [2, 3, 7, 8]]


def test_ddp_shares_are_disjoint_and_equally_long():
    sizes, batch = [101, 37, 64], [4, 2, 3]
    ranks = [MultiSourceBatchSampler(sizes, batch, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for epoch in (0, 1):
        for sampler in ranks:
            sampler.set_epoch(epoch)
        per_rank = [list(s) for s in ranks]
        # per rank: 37 // 2 = 18 clips of the shortest source -> 9 batches, on both ranks
        assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0]) == 9
        seen = [set(np.concatenate(batches).tolist()) for batches in per_rank]
        assert not seen[0] & seen[1]
        # both ranks take every other clip of the same permutation
        whole = MultiSourceBatchSampler(sizes, batch, num_replicas=1, rank=0, seed=5)
        whole.set_epoch(epoch)
        for i in range(3):
            np.testing.assert_array_equal(np.sort(np.concatenate([ranks[0]._share(i), ranks[1]._share(i)])),
                                          np.sort(whole._share(i)[: 2 * (sizes[i] // 2)]))


def test_is_a_distributed_sampler_with_set_epoch():
    sampler = MultiSourceBatchSampler([10], [2], num_replicas=2, rank=1)
    assert isinstance(sampler, DistributedSampler)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (2, 1, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sizes=[10, 3], batch_sizes=[2, 4], names=["synth", "weak"]), "weak: 3 clips cannot fill one batch of 4"),
    (dict(sizes=[10], batch_sizes=[5], num_replicas=3, rank=0), "cannot fill one batch of 5 on each of 3"),
    (dict(sizes=[10], batch_sizes=[0]), "batch_size must be >= 1"),
    (dict(sizes=[10, 10], batch_sizes=[2]), "one entry per source"),
    (dict(sizes=[10], batch_sizes=[2], num_replicas=2, rank=2), "rank must be in"),
])
def test_bad_settings_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiSourceBatchSampler(**kwargs)
