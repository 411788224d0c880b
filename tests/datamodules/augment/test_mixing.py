"""Batch mixing: mixup inside groups (per data source), per-example waveform mix, mixup with followers."""
import random

import numpy as np
import pytest
import torch

from datamodules.augment.mixing import (
    AugmentInputError, ExampleWaveformMix, Mixup, draw_baseline_group_mix, draw_example_mix, draw_group_mix, mix,
)


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


def test_wavmix_equals_the_formula_on_replayed_draws_and_targets_are_convex():
    wave = torch.randn(6, 400) + torch.arange(6.0).view(-1, 1)  # non-zero means
    target = (torch.rand(6, 3, 10) > 0.5).float()
    teacher = torch.rand(6, 3, 10)
    torch.manual_seed(2)
    out, (out_target, out_teacher, none), (lam, partner) = ExampleWaveformMix(p=1.0).train()(
        wave, target, teacher, None)
    torch.manual_seed(2)
    lam_ref, partner_ref, chosen = draw_example_mix(6, 1.0, 2.0)
    assert chosen.all() and torch.equal(lam, lam_ref) and torch.equal(partner, partner_ref) and none is None
    assert (lam >= 0.5).all() and (lam <= 1.0).all()
    centred = wave - wave.mean(dim=1, keepdim=True)
    torch.testing.assert_close(out, lam[:, None] * centred + (1 - lam[:, None]) * centred[partner])
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(6), atol=1e-5, rtol=0)
    expected = lam.view(-1, 1, 1) * target + (1 - lam.view(-1, 1, 1)) * target[partner]
    torch.testing.assert_close(out_target, expected)  # lambda-weighted, not max-combined
    assert out_target.min() >= 0 and out_target.max() <= 1
    torch.testing.assert_close(out_teacher, lam.view(-1, 1, 1) * teacher + (1 - lam.view(-1, 1, 1)) * teacher[partner])


def test_wavmix_energy_of_independent_noises_adds_with_squared_weights():
    torch.manual_seed(0)
    wave = torch.randn(32, 20000) * torch.linspace(0.5, 2.0, 32).view(-1, 1)
    out, _, (lam, partner) = ExampleWaveformMix(p=1.0).train()(wave)
    centred = wave - wave.mean(dim=1, keepdim=True)
    energy = centred.pow(2).sum(dim=1)
    own = partner == torch.arange(32)
    expected = torch.where(own, energy, lam ** 2 * energy + (1 - lam) ** 2 * energy[partner])
    torch.testing.assert_close(out.pow(2).sum(dim=1), expected, rtol=0.05, atol=0)
    assert (out.pow(2).sum(dim=1) <= torch.maximum(energy, energy[partner]) * 1.0001).all()


def test_wavmix_leaves_unchosen_rows_and_follows_p():
    torch.manual_seed(0)
    wave = torch.randn(2000, 8) + 3.0
    target = torch.rand(2000, 2, 4)
    out, (out_target,), (lam, partner) = ExampleWaveformMix(p=0.8).train()(wave, target)
    kept = lam == 1.0
    assert 0.16 < kept.float().mean().item() < 0.24
    assert torch.equal(out[kept], wave[kept]) and torch.equal(out_target[kept], target[kept])
    assert torch.equal(partner[kept], torch.nonzero(kept).flatten())
    x = torch.randn(3, 1, 50)
    assert ExampleWaveformMix(p=0.0).train()(x)[2] is None
    y = target[:3]
    result = ExampleWaveformMix(p=1.0).eval()(x, y)
    assert result[0] is x and result[1][0] is y and result[2] is None


def test_mixup_mixes_input_and_followers_with_the_returned_draws():
    x = torch.randn(5, 1, 8, 12)
    target = (torch.rand(5, 4, 3) > 0.5).float()
    torch.manual_seed(9)
    out, (out_target, none), mixing = Mixup(p=1.0, alpha=0.2).train()(x, target, None)
    torch.manual_seed(9)
    assert float(torch.rand(())) < 1.0  # the batch coin, then Beta weights and the permutation
    lam = torch.distributions.Beta(0.2, 0.2).sample((5,))
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(5)
    assert torch.equal(mixing[0], lam) and torch.equal(mixing[1], perm) and none is None
    torch.testing.assert_close(out, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm])
    torch.testing.assert_close(out_target, lam.view(-1, 1, 1) * target + (1 - lam.view(-1, 1, 1)) * target[perm])
    low = torch.minimum(target, target[perm])
    high = torch.maximum(target, target[perm])
    assert (out_target >= low - 1e-6).all() and (out_target <= high + 1e-6).all()


def test_mixup_identity_cases_and_coin():
    x, y = torch.randn(4, 10), torch.rand(4, 2)
    for module in (Mixup(p=0.0).train(), Mixup(p=1.0).eval()):
        out, (out_y,), mixing = module(x, y)
        assert out is x and out_y is y and mixing is None
    torch.manual_seed(5)
    coin = float(torch.rand(()))
    torch.manual_seed(5)
    assert Mixup(p=coin).train()(x, y)[2] is None  # coin >= p: skipped
    torch.manual_seed(5)
    assert Mixup(p=min(1.0, coin + 1e-3)).train()(x, y)[2] is not None


def test_mixing_modules_are_deterministic_and_check_followers():
    x, y = torch.randn(6, 30), torch.rand(6, 2, 5)
    for make in (lambda: ExampleWaveformMix(p=0.5), lambda: Mixup(p=1.0)):
        torch.manual_seed(1)
        first = make().train()(x, y)
        torch.manual_seed(1)
        second = make().train()(x, y)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1][0], second[1][0])
        with pytest.raises(AugmentInputError, match=r"tensor 1 that follows the batch: expected 6 rows first, got "
                                                    r"shape \(5, 2, 5\)"):
            make().train()(x, y[:5])
    with pytest.raises(AugmentInputError, match=r"\(B, n\) or \(B, 1, n\) waveforms, got shape \(6, 2, 30\)"):
        ExampleWaveformMix(p=1.0).train()(torch.randn(6, 2, 30))


def test_baseline_group_mix_draws_one_coin_then_c_and_perm_per_group_in_order():
    groups = [torch.tensor([5, 6]), torch.tensor([], dtype=torch.long), torch.tensor([0, 1, 2])]  # rows 3, 4: none
    random.seed(1)
    np.random.seed(3)
    torch.manual_seed(4)
    coin = random.random()
    random.seed(1)
    draws = draw_baseline_group_mix(groups, 7, p=coin + 1e-9, alpha=0.2, draws=2)
    np.random.seed(3)
    torch.manual_seed(4)
    expected = []  # the baseline's order: group by group, (c, perm) for the features, then for the embeddings
    for rows in (groups[0], groups[2]):  # c as drawn (no max(c, 1 - c)): equal to NumPy's value
        for _ in range(2):
            expected.append((np.random.beta(0.2, 0.2), rows[torch.randperm(rows.numel())]))
    for k, (lam, perm) in enumerate(draws):
        for g, rows in enumerate((groups[0], groups[2])):
            c, partners = expected[2 * g + k]
            assert torch.equal(lam[rows], torch.full((rows.numel(),), c, dtype=torch.float32))
            assert torch.equal(perm[rows], partners)
        assert lam[[3, 4]].tolist() == [1.0, 1.0] and perm[[3, 4]].tolist() == [3, 4]
    assert draws[0][0][0] != draws[1][0][0]  # the second draw is another c
    random.seed(1)
    state = np.random.get_state()[1].copy()
    assert draw_baseline_group_mix(groups, 7, p=coin, alpha=0.2) is None  # the coin fails: nothing else drawn
    assert np.array_equal(np.random.get_state()[1], state)


def test_baseline_group_mix_leaves_rows_outside_the_groups_bit_for_bit():
    random.seed(0)
    x = torch.randn(6, 4, 5) * 1e3
    ((lam, perm),) = draw_baseline_group_mix([torch.tensor([0, 1, 2])], 6, p=1.0, alpha=0.2)
    out = mix(x, lam, perm)
    assert torch.equal(out[3:], x[3:])
    assert not torch.equal(out[:3], x[:3])
