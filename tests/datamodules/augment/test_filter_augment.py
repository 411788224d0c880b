"""FilterAugment: band edges, gain curves within range, identity cases, multiply vs add."""
import pytest
import torch

from datamodules.augment.filter_augment import FilterAugment, band_gains, draw_band_edges
from datamodules.augment.mixing import AugmentInputError


def _gains(module, shape, seed):
    """The dB curve the module applies, read back in 'add' mode from an all-zero input."""
    module = FilterAugment(p=1.0, db_range=(module.low, module.high), n_bands=module.n_bands,
                           min_bandwidth=module.min_bandwidth, kind=module.kind, mode="add").train()
    torch.manual_seed(seed)
    return module(torch.zeros(shape))


def test_linear_gains_stay_in_range_and_are_piecewise_linear_with_shared_edges():
    module = FilterAugment(p=1.0, db_range=6.0)
    for seed in range(20):
        out = _gains(module, (5, 2, 64, 3), seed)
        assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[..., 0], out[..., 2])
        gains = out[:, 0, :, 0]
        assert gains.min() >= -6.0 and gains.max() <= 6.0 and gains.std() > 0.5
        # a piecewise-linear curve has zero second differences except around the band edges
        kinks = (gains.diff(n=2).abs() > 1e-4).any(dim=0)
        assert int(kinks.sum()) <= 2 * (5 - 1) + 2


def test_step_gains_are_constant_on_3_to_5_bands_at_least_min_bandwidth_wide():
    module = FilterAugment(p=1.0, db_range=(-3.0, 6.0), kind="step")
    counts = set()
    for seed in range(30):
        gains = _gains(module, (4, 1, 64, 2), seed)[:, 0, :, 0]
        assert gains.min() >= -3.0 and gains.max() <= 6.0
        changes = torch.nonzero((gains.diff(dim=1) != 0).any(dim=0)).flatten() + 1
        edges = [0, *changes.tolist(), 64]
        counts.add(len(edges) - 1)
        assert min(b - a for a, b in zip(edges, edges[1:])) >= 6
    assert counts == {3, 4, 5}


def test_multiply_mode_scales_by_the_same_curve_in_amplitude_db():
    x = torch.rand(3, 1, 32, 5) + 0.5
    torch.manual_seed(7)
    out = FilterAugment(p=1.0).train()(x)
    gains = _gains(FilterAugment(), (3, 1, 32, 5), 7)
    torch.testing.assert_close(out, x * 10 ** (gains / 20))


def test_zero_db_range_is_identity_and_other_identity_cases():
    x = torch.randn(2, 1, 16, 4)
    torch.manual_seed(0)
    assert torch.equal(FilterAugment(p=1.0, db_range=0.0).train()(x), x)
    assert torch.equal(FilterAugment(p=1.0, db_range=0.0, mode="add").train()(x), x)
    assert FilterAugment(p=0.0).train()(x) is x
    assert FilterAugment(p=1.0).eval()(x) is x
    assert FilterAugment(p=1.0, n_bands=(1, 1)).train()(x) is x  # one band: unchanged, as published


def test_band_gains_linear_equals_linspace_per_band():
    edges = torch.tensor([0, 3, 4, 9])
    values = torch.tensor([[0.0, 3.0, -1.0, 5.0]])
    expected = torch.cat([torch.linspace(0.0, 3.0, 3), torch.linspace(3.0, -1.0, 1), torch.linspace(-1.0, 5.0, 5)])
    torch.testing.assert_close(band_gains(edges, values, "linear")[0], expected)
    step = band_gains(edges, torch.tensor([[1.0, 2.0, 3.0]]), "step")[0]
    assert step.tolist() == [1, 1, 1, 2, 3, 3, 3, 3, 3]


def test_band_edges_lower_the_minimum_bandwidth_when_bands_do_not_fit():
    torch.manual_seed(0)
    for _ in range(50):
        edges = draw_band_edges(64, 5, 6)
        assert edges[0] == 0 and edges[-1] == 64 and edges.diff().min() >= 6
        small = draw_band_edges(10, 5, 6)  # 5 bands of 6 do not fit in 10 bins: width 2
        assert small[-1] == 10 and small.diff().min() >= 2
        assert draw_band_edges(8, 3, 3).diff().min() >= 2  # 3 x 3 > 8 bins (the published loop fails here)


def test_same_seed_same_output_and_rate_follows_p():
    x = torch.rand(4, 1, 32, 6)
    torch.manual_seed(11)
    first = FilterAugment(p=1.0).train()(x)
    torch.manual_seed(11)
    assert torch.equal(first, FilterAugment(p=1.0).train()(x))
    torch.manual_seed(0)
    module = FilterAugment(p=0.8).train()
    small = torch.rand(1, 1, 8, 1) + 1.0
    applied = sum(module(small) is not small for _ in range(500))
    assert 370 < applied < 430


def test_bad_input_and_arguments():
    with pytest.raises(AugmentInputError, match=r"expected \(B, C, F, T\) features, got shape \(2, 16, 4\)"):
        FilterAugment(p=1.0).train()(torch.randn(2, 16, 4))
    with pytest.raises(ValueError):
        FilterAugment(db_range=(3.0, -3.0))
    with pytest.raises(ValueError):
        FilterAugment(n_bands=(4, 3))
