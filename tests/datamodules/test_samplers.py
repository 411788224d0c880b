"""Balanced sampling weights and the DDP-aware sampler."""
import numpy as np
import pytest

from datamodules.samplers import DistributedWeightedSampler, class_balanced_weights


def test_class_balanced_weights_on_hand_matrix():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    # counts (2, 1, 1): w = 1000/102, 1000/101, 1000/101
    expected = [1000 / 102, 1000 / 102 + 1000 / 101, 1000 / 101, 0.0]
    np.testing.assert_allclose(class_balanced_weights(targets), expected)


def test_shares_are_disjoint_cover_the_draw_and_are_reproducible():
    weights = np.random.default_rng(0).random(500)
    shares = [list(DistributedWeightedSampler(weights, 300, num_replicas=3, rank=r, seed=7)) for r in range(3)]
    flat = [i for s in shares for i in s]
    assert [len(s) for s in shares] == [100, 100, 100]
    assert len(set(flat)) == 300, "without replacement and disjoint across ranks"
    single = list(DistributedWeightedSampler(weights, 300, num_replicas=1, rank=0, seed=7))
    assert sorted(flat) == sorted(single)
    again = DistributedWeightedSampler(weights, 300, num_replicas=3, rank=1, seed=7)
    assert list(again) == shares[1]
    again.set_epoch(1)
    assert list(again) != shares[1]


@pytest.mark.bad_input
def test_draws_follow_the_weights():
    weights = np.array([0.0] * 50 + [1.0] * 50)
    drawn = list(DistributedWeightedSampler(weights, 40, num_replicas=1, rank=0))
    assert all(i >= 50 for i in drawn)
    with pytest.raises(ValueError, match="without replacement"):
        DistributedWeightedSampler(weights, 60, num_replicas=1, rank=0)


def test_strong_clip_weights_on_hand_counts():
    from datamodules.samplers import strong_clip_weights

    active = np.array([[10, 0], [5, 20], [0, 0]])
    # class counts 30 + 15 = 45 and 30 + 20 = 50: class weights 1000/45, 1000/50 = 20
    np.testing.assert_allclose(strong_clip_weights(active), [10 * 1000 / 45, 5 * 1000 / 45 + 20 * 20, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        strong_clip_weights(-active)


def test_draws_with_replacement_split_evenly_and_disjointly_across_ranks():
    weights = np.random.default_rng(1).random(20)
    shares = [DistributedWeightedSampler(weights, 100, replacement=True, num_replicas=3, rank=r, seed=3)
              for r in range(3)]
    draws = [list(s) for s in shares]
    assert [len(s) for s in shares] == [len(d) for d in draws] == [33, 33, 33], "equal shares: same batch count"
    single = list(DistributedWeightedSampler(weights, 100, replacement=True, num_replicas=1, rank=0, seed=3))
    assert [single[3 * k + r] for k in range(33) for r in range(3)] == [d[k] for k in range(33) for d in draws]
    assert len(set(single)) < len(single), "with replacement a clip may come back"
    for share, drawn in zip(shares, draws):
        assert list(share) == drawn
        share.set_epoch(1)
    assert [list(s) for s in shares] != draws
