"""Mixup inside groups (per data source) for sound event detection."""
import torch

from datamodules.augment.mixing import draw_group_mix, mix


def test_group_mix_stays_inside_each_group_and_skips_unmixed_groups():
    torch.manual_seed(0)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    lam, perm = draw_group_mix(groups, p=1.0, alpha=0.2)
    assert torch.equal(groups[perm], groups)  # partners come from the same group
    for g in (0, 1, 2):
        assert torch.unique(lam[groups == g]).numel() == 1  # one coefficient per group
    x = torch.arange(9.0)
    expected = lam * x + (1 - lam) * x[perm]
    torch.testing.assert_close(mix(x, lam, perm), expected)
    lam0, perm0 = draw_group_mix(groups, p=0.0, alpha=0.2)
    assert torch.equal(lam0, torch.ones(9)) and torch.equal(perm0, torch.arange(9))
