"""MN options: concurrent SE over any axes, heads, strides/dilation/reduced tail, gradients."""
from __future__ import annotations

import pytest
import torch

from models.efficientat import MN, make_divisible
from models.efficientat.config import block_configs
from models.efficientat.se import ConcurrentSE

F_BINS, T_FRAMES = 64, 48  # small inputs keep these tests fast


def small_mn(**kwargs) -> MN:
    torch.manual_seed(0)
    return MN(width_mult=0.4, input_dim_f=F_BINS, input_dim_t=T_FRAMES, **kwargs)


def test_make_divisible() -> None:
    values = (16 * 0.1, 112 * 0.1, 960 * 0.4, 1280 * 0.4, 672 * 0.4)
    assert [make_divisible(v) for v in values] == [8, 16, 384, 512, 272]
    assert make_divisible(11) == 16  # 8 would be more than 10% below 11


SE_CASES = [("f", "max"), ("t", "max"), ("ft", "add")] + [("cft", agg) for agg in ("max", "avg", "add", "min")]


@pytest.mark.parametrize("se_dims,se_agg", SE_CASES)
def test_concurrent_se_on_any_axes(se_dims: str, se_agg: str) -> None:
    model = small_mn(se_dims=se_dims, se_agg=se_agg).eval()
    logits, embedding = model(torch.randn(2, 1, F_BINS, T_FRAMES))
    assert logits.shape == (2, 527) and torch.isfinite(logits).all()
    se_blocks = [m for m in model.modules() if isinstance(m, ConcurrentSE)]
    assert len(se_blocks) == 8  # blocks 4-6 and 11-15
    assert all(len(b.conc_se_layers) == len(se_dims) for b in se_blocks)


def test_frequency_se_sizes_follow_the_strides() -> None:
    configs, _ = block_configs(0.4, input_dim_f=F_BINS, input_dim_t=T_FRAMES)
    model = small_mn(se_dims="f")
    for cnf, block in zip(configs, list(model.features)[1:16]):
        se = [m for m in block.modules() if isinstance(m, ConcurrentSE)]
        if cnf.use_se:
            assert se[0].conc_se_layers[0].fc1.in_features == cnf.out_f
    assert [c.out_f for c in configs][3] == 8  # 64 -> stem 32 -> block 2: 16 -> block 4: 8


def test_se_aggregations_differ() -> None:
    torch.manual_seed(0)
    se = ConcurrentSE(8, 6, 5, se_dims="cft")
    x = torch.randn(2, 8, 6, 5)
    outs = {}
    for agg in ("max", "avg", "add", "min"):
        se.se_agg = agg
        outs[agg] = se(x)
    singles = torch.stack([layer(x) for layer in se.conc_se_layers])
    torch.testing.assert_close(outs["max"], singles.amax(0))
    torch.testing.assert_close(outs["min"], singles.amin(0))
    torch.testing.assert_close(outs["add"], singles.sum(0))
    torch.testing.assert_close(outs["avg"], singles.mean(0))


def test_frequency_se_rejects_other_input_sizes() -> None:
    model = small_mn(se_dims="f").eval()
    with pytest.raises(ValueError, match="input_dim_f"):
        model(torch.randn(1, 1, F_BINS * 2, T_FRAMES))


def test_bad_se_arguments() -> None:
    with pytest.raises(ValueError):
        MN(width_mult=0.1, se_dims="x")
    with pytest.raises(ValueError):
        MN(width_mult=0.1, se_agg="median")


def test_no_se() -> None:
    model = small_mn(se_dims="none")
    assert not any(isinstance(m, ConcurrentSE) for m in model.modules())


@pytest.mark.parametrize("head_type", ["mlp", "fully_convolutional", "multihead_attention_pooling"])
def test_every_parameter_gets_a_gradient(head_type: str) -> None:
    model = small_mn(head_type=head_type, se_dims="cft").train()
    logits, embedding = model(torch.randn(3, 1, F_BINS, T_FRAMES))
    assert logits.shape == (3, 527) and embedding.shape == (3, 384)
    (logits.square().mean() + embedding.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero


def test_strides_dilation_and_reduced_tail() -> None:
    x = torch.randn(1, 1, F_BINS, T_FRAMES)
    _, _, fmaps = small_mn(strides=(2, 2, 2, 1)).eval()(x, return_fmaps=True)
    assert fmaps[-1].shape[2:] == (4, 3)  # overall stride 16 instead of 32
    _, _, fmaps = small_mn(dilated=True).eval()(x, return_fmaps=True)
    assert fmaps[13].shape[2:] == fmaps[12].shape[2:]
    model = small_mn(reduced_tail=True, se_dims="f").eval()
    logits, embedding = model(x)
    assert embedding.shape == (1, 6 * make_divisible(80 * 0.4))
    assert model.classifier[2].out_features == make_divisible(640 * 0.4)
    with pytest.raises(ValueError):
        MN(width_mult=0.1, strides=(2, 2, 3, 2))
