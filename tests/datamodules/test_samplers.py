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
