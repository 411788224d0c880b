"""The shared pre-LN ViT block: timm key names, exact GELU, LayerNorm eps, dropout only in training, SDPA vs plain."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.transformers.attention import set_sdpa
from models.transformers.vit import (TransformerInputError, ViTBlock, check_spectrogram, drop_path, init_vit_weights,
                                     vit_blocks)


def block(**kwargs) -> ViTBlock:
    torch.manual_seed(0)
    return ViTBlock(**{"dim": 64, "num_heads": 2, **kwargs})


def test_keys_are_timm_names_with_optional_qkv_bias():
    keys = [(k, tuple(v.shape)) for k, v in block().state_dict().items()]
    assert keys == [("norm1.weight", (64,)), ("norm1.bias", (64,)), ("attn.qkv.weight", (192, 64)),
                    ("attn.qkv.bias", (192,)), ("attn.proj.weight", (64, 64)), ("attn.proj.bias", (64,)),
                    ("norm2.weight", (64,)), ("norm2.bias", (64,)), ("mlp.fc1.weight", (256, 64)),
                    ("mlp.fc1.bias", (256,)), ("mlp.fc2.weight", (64, 256)), ("mlp.fc2.bias", (64,))]
    assert "attn.qkv.bias" not in block(qkv_bias=False).state_dict()


def test_forward_is_pre_ln_attention_then_exact_gelu_mlp():
    model = block(qkv_bias=False).eval()
    init_vit_weights(model)
    x = torch.randn(2, 5, 64)
    attn = model.attn
    h = F.layer_norm(x, (64,), model.norm1.weight, model.norm1.bias, eps=1e-6)
    q, k, v = (h @ attn.qkv.weight.T).reshape(2, 5, 3, 2, 32).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(32), dim=-1)
    x1 = x + attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 64))
    h = F.layer_norm(x1, (64,), model.norm2.weight, model.norm2.bias, eps=1e-6)
    expected = x1 + model.mlp.fc2(F.gelu(model.mlp.fc1(h), approximate="none"))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)
        tanh_gelu = x1 + model.mlp.fc2(F.gelu(model.mlp.fc1(h), approximate="tanh"))
        assert not torch.allclose(model(x), tanh_gelu, atol=1e-7, rtol=0)
    assert model.norm1.eps == model.norm2.eps == 1e-6


def test_sdpa_and_plain_attention_agree():
    model = block().eval()
    x = torch.randn(3, 17, 64)
    with torch.no_grad():
        fused = model(x)
        assert set_sdpa(model, False) == 1
        plain = model(x)
    torch.testing.assert_close(plain, fused, atol=1e-5, rtol=0)


def test_dropouts_act_only_in_training():
    model = block(drop=0.3, attn_drop=0.3, drop_path=0.3)
    x = torch.randn(4, 9, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_drop_path_zeroes_whole_samples_and_rescales_the_rest():
    x = torch.ones(1000, 3, 2)
    assert drop_path(x, 0.25, training=False) is x
    torch.manual_seed(0)
    out = drop_path(x, 0.25, training=True)
    per_sample = out.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.05


def test_stochastic_depth_rises_linearly_over_the_blocks():
    blocks = vit_blocks(4, 64, 2, drop_path_rate=0.3)
    assert [round(b.drop_path, 6) for b in blocks] == [0.0, 0.1, 0.2, 0.3]
    assert [b.drop_path for b in vit_blocks(1, 64, 2, drop_path_rate=0.3)] == [0.0]


def test_spectrogram_check_names_model_and_shape():
    check_spectrogram(torch.zeros(2, 1, 64, 10), "M", 64)
    with pytest.raises(TransformerInputError, match=r"^M: expected a \(B, 1, 64, T\) spectrogram, got shape "
                                                    r"\(2, 64, 10\)$"):
        check_spectrogram(torch.zeros(2, 64, 10), "M", 64)
    with pytest.raises(TransformerInputError, match=r"\(B, 1, 64, T\).*\(2, 1, 128, 10\)"):
        check_spectrogram(torch.zeros(2, 1, 128, 10), "M", 64)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="embed_dim 64 is not divisible by num_heads 3"):
        ViTBlock(64, 3)
