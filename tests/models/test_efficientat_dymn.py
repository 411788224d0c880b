"""DyMN: dynamic components, temperature, replace_se, heads and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.efficientat import DyMN, DynamicConv
from models.efficientat.dy_block import DynamicInvertedResidual, context_size
from models.efficientat.dynamic import Context, ContextGenerator, DyReLUB, coordinate_attention, temperature_schedule
from models.efficientat.inverted_residual import InvertedResidual

X_SHAPE = (2, 1, 64, 48)


def small_dymn(**kwargs) -> DyMN:
    torch.manual_seed(0)
    return DyMN(width_mult=0.4, **kwargs)


def calibrated(model: DyMN, x: torch.Tensor) -> DyMN:
    """Eval-mode model whose BN statistics are those of ``x`` (default init alone gives ~1e-16 outputs)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def test_context_sizes() -> None:
    assert context_size(16, 0.4) == 16  # clipped up to make_divisible(32 * 0.4)
    assert context_size(960, 1.0) == 128  # clipped down to make_divisible(128 * 1.0)
    assert context_size(240, 1.0) == 64


def test_dynamic_conv_equals_per_sample_mixture() -> None:
    torch.manual_seed(0)
    conv = DynamicConv(6, 6, context_dim=5, kernel_size=3, stride=2, groups=6, temperature=3.0)
    x, h = torch.randn(3, 6, 9, 7), torch.randn(3, 5)
    ctx = Context(h, torch.zeros(1), torch.zeros(1))
    out = conv(x, ctx)
    att = F.softmax(conv.residuals(h) / 3.0, dim=-1)
    kernels = conv.weight.view(4, 6, 1, 3, 3)
    for b in range(3):
        w = (att[b].view(4, 1, 1, 1, 1) * kernels).sum(0)
        ref = F.conv2d(x[b : b + 1], w, stride=2, padding=1, groups=6)
        torch.testing.assert_close(out[b : b + 1], ref, rtol=1e-5, atol=1e-5)


def test_dyrelu_b_is_relu_at_zero_coefficients() -> None:
    act = DyReLUB(channels=4, context_dim=3)
    torch.nn.init.zeros_(act.coef_net[0].weight)
    torch.nn.init.zeros_(act.coef_net[0].bias)
    x = torch.randn(2, 4, 5, 6)
    ctx = Context(torch.randn(2, 3), torch.zeros(1), torch.zeros(1))
    torch.testing.assert_close(act(x, ctx), torch.relu(x))
    assert act.lambdas.tolist() == [1.0, 1.0, 0.5, 0.5] and act.init_v.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert {"lambdas", "init_v"} <= set(act.state_dict())


def test_context_generator_shapes_for_strided_block() -> None:
    gen = ContextGenerator(in_channels=8, context_dim=16, expanded_channels=24, stride=2)
    ctx = gen(torch.randn(2, 8, 15, 33))
    assert ctx.h.shape == (2, 16)
    assert ctx.g_f.shape == (2, 24, 8, 1) and ctx.g_t.shape == (2, 24, 1, 17)
    x = torch.randn(2, 24, 8, 17)
    torch.testing.assert_close(coordinate_attention(x, ctx), x * ctx.g_f.sigmoid() * ctx.g_t.sigmoid())


def test_set_temperature_changes_outputs() -> None:
    model = small_dymn(temperature=1.0)
    # Non-uniform kernel attention needs non-zero attention logits.
    for m in model.modules():
        if isinstance(m, DynamicConv):
            torch.nn.init.normal_(m.residuals[0].weight, 0, 1.0)
    x = torch.randn(X_SHAPE)
    calibrated(model, x)
    with torch.no_grad():
        before, _ = model(x)
        model.set_temperature(30.0)
        after, _ = model(x)
    assert model.temperature == 30.0
    assert all(m.temperature == 30.0 for m in model.modules() if isinstance(m, DynamicConv))
    assert (before - after).abs().max() > 1e-3 * before.abs().max()
    with pytest.raises(ValueError):
        model.set_temperature(0.0)


def test_temperature_schedule() -> None:
    assert [temperature_schedule(e) for e in (0, 10, 28.5, 29, 40)] == pytest.approx([30.0, 20.0, 1.5, 1.0, 1.0])
    # The slow branch (1.58 - 0.02 e here) meets the fast one at exactly 1, so it only shows below t_min = 1.
    assert temperature_schedule(40, t_min=0.5) == pytest.approx(1.58 - 0.02 * 40)
    assert all(temperature_schedule(e, t_max=1.0) == 1.0 for e in range(50))


def test_dilated_and_strided_variants_run() -> None:
    x = torch.randn(X_SHAPE)
    for kwargs in ({"dilated": True}, {"strides": (2, 2, 2, 1)}, {"reduced_tail": True}):
        _, _, fmaps = small_dymn(**kwargs).eval()(x, return_fmaps=True)
        assert len(fmaps) == 17


def test_replace_se_uses_dynamic_blocks_only_at_se_positions() -> None:
    model = small_dymn(use_dy_blocks="replace_se")
    kinds = [isinstance(b, DynamicInvertedResidual) for b in model.layers]
    assert kinds == [False, False, False, True, True, True, False, False, False, False, True, True, True, True, True]
    assert all(isinstance(b, InvertedResidual) for b, dyn in zip(model.layers, kinds) if not dyn)
    logits, _ = model.eval()(torch.randn(X_SHAPE))
    assert logits.shape == (2, 527)
    with pytest.raises(ValueError):
        DyMN(width_mult=0.4, use_dy_blocks="some")


def test_batch_samples_are_independent_in_eval() -> None:
    """Folding the batch into conv groups must not mix samples."""
    x = torch.randn(X_SHAPE)
    model = calibrated(small_dymn(temperature=1.0), x)
    with torch.no_grad():
        both, _ = model(x)
        first, _ = model(x[:1])
    assert both.abs().mean() > 1e-4
    torch.testing.assert_close(both[:1], first, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("head_type", ["mlp", "fully_convolutional", "multihead_attention_pooling"])
def test_every_parameter_gets_a_gradient(head_type: str) -> None:
    model = small_dymn(head_type=head_type, temperature=1.0).train()
    logits, embedding = model(torch.randn(X_SHAPE))
    assert logits.shape == (2, 527) and embedding.shape == (2, 384)
    (logits.square().mean() + embedding.mean()).backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero
