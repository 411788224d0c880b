"""Freq-MixStyle against the formula written out by hand, on the module's own random draws."""
import pytest
import torch
from torch.distributions import Beta

from datamodules.augment.freq_mixstyle import FreqMixStyle, mix_frequency_statistics


def _by_hand(x, lam, perm, eps=1e-6):
    b, c, f, t = x.shape
    out = torch.empty_like(x)
    mu = torch.empty(b, f, dtype=torch.float64)
    sd = torch.empty(b, f, dtype=torch.float64)
    xd = x.double()
    for i in range(b):
        for k in range(f):
            values = xd[i, :, k, :].reshape(-1)
            m = values.sum() / values.numel()
            var = ((values - m) ** 2).sum() / (values.numel() - 1)  # unbiased
            mu[i, k], sd[i, k] = m, torch.sqrt(var + eps)
    for i in range(b):
        j, w = int(perm[i]), float(lam[i])
        for k in range(f):
            m_mix = w * mu[i, k] + (1 - w) * mu[j, k]
            s_mix = w * sd[i, k] + (1 - w) * sd[j, k]
            out[i, :, k, :] = ((xd[i, :, k, :] - mu[i, k]) / sd[i, k] * s_mix + m_mix).float()
    return out


def test_module_equals_formula_on_fixed_draws():
    x = torch.randn(4, 1, 6, 9) * 3 + torch.arange(6.0).view(1, 1, 6, 1)
    fms = FreqMixStyle(p=1.0, alpha=0.3).train()
    torch.manual_seed(123)
    out = fms(x)
    torch.manual_seed(123)  # replay the documented draws: coin, lambda per example, permutation
    assert torch.rand(1).item() <= 1.0
    lam = Beta(torch.tensor(0.3), torch.tensor(0.3)).sample((4,))
    perm = torch.randperm(4)
    assert not torch.equal(perm, torch.arange(4))  # the seed gives a real mix
    torch.testing.assert_close(out, _by_hand(x, lam, perm), rtol=1e-5, atol=1e-5)


def test_core_equals_formula_with_channels():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 5, 7)
    lam, perm = torch.tensor([0.2, 0.9, 0.5]), torch.tensor([2, 0, 1])
    torch.testing.assert_close(mix_frequency_statistics(x, lam, perm), _by_hand(x, lam, perm), rtol=1e-5, atol=1e-5)


def test_lambda_one_and_identity_permutation_are_identity():
    x = torch.randn(3, 1, 5, 7)
    torch.testing.assert_close(mix_frequency_statistics(x, torch.ones(3), torch.tensor([2, 0, 1])), x)
    torch.testing.assert_close(mix_frequency_statistics(x, torch.rand(3), torch.arange(3)), x)


def test_statistics_are_detached():
    x = torch.randn(2, 1, 4, 6, requires_grad=True)
    out = mix_frequency_statistics(x, torch.tensor([0.3, 0.6]), torch.tensor([1, 0]))
    out.sum().backward()
    # with detached statistics the map is affine per example and bin: d out / d x = sigma_mix / sigma
    sd = (x.detach().var(dim=(1, 3), keepdim=True) + 1e-6).sqrt()
    lam = torch.tensor([0.3, 0.6]).view(-1, 1, 1, 1)
    ratio = (lam * sd + (1 - lam) * sd[[1, 0]]) / sd
    torch.testing.assert_close(x.grad, ratio.expand_as(x))


def test_p_zero_eval_mode_and_coin_skip_are_identity():
    x = torch.randn(4, 1, 6, 9)
    assert FreqMixStyle(p=0.0).train()(x) is x
    assert FreqMixStyle(p=1.0).eval()(x) is x
    torch.manual_seed(5)
    coin = torch.rand(1).item()
    torch.manual_seed(5)
    assert FreqMixStyle(p=coin * 0.5).train()(x) is x  # rand > p: skipped


def test_application_rate_follows_p():
    torch.manual_seed(0)
    fms = FreqMixStyle(p=0.4).train()
    x = torch.randn(8, 1, 4, 5)
    applied = sum(fms(x) is not x for _ in range(1000))
    assert 340 < applied < 460


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        FreqMixStyle(p=1.5)
    with pytest.raises(ValueError):
        FreqMixStyle(alpha=0.0)


def test_keep_larger_keeps_most_of_each_examples_own_statistics():
    torch.manual_seed(0)
    x = torch.randn(16, 1, 8, 50) * torch.linspace(0.5, 3.0, 16).view(16, 1, 1, 1)
    module = FreqMixStyle(p=1.0, alpha=0.4, keep_larger=True).train()
    torch.manual_seed(1)
    out = module(x)
    torch.manual_seed(1)
    torch.rand(1)
    lam = Beta(torch.tensor(0.4), torch.tensor(0.4)).sample((16,))
    perm = torch.randperm(16)
    torch.testing.assert_close(out, mix_frequency_statistics(x, torch.maximum(lam, 1 - lam), perm))
