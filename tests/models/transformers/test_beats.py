"""BEATs backbone: published layout (meta device), checkpoint filter, shapes, attention maths, gradients.

The expected layout is transcribed from specs/checkpoints/beats_iter3plus_as2m.json (PretrainedSED's BEATs built
from ``BEATsConfig()``): 250 entries, 90,311,792 parameters (the relative position table counted once),
90,354,032 stored numbers. Outputs of this port were compared once with the public code (same weights, 10 s input,
full size): max abs difference 4e-6.
"""
from __future__ import annotations

import pytest
import torch

from models.transformers.attention import attend, set_sdpa
from models.transformers.beats import (BEATs, BEATsInputError, GatedRelativeAttention, beats_state_dict_filter,
                                       deep_norm_alpha, relative_position_buckets)

TABLE = ("self_attn.relative_attention_bias.weight", [320, 12])
LAYER = [("self_attn.grep_a", [1, 12, 1, 1])] + [
    (f"self_attn.{proj}.{kind}", [768, 768] if kind == "weight" else [768])
    for proj in ("k_proj", "v_proj", "q_proj", "out_proj") for kind in ("weight", "bias")] + [
    ("self_attn.grep_linear.weight", [8, 64]), ("self_attn.grep_linear.bias", [8]),
    ("self_attn_layer_norm.weight", [768]), ("self_attn_layer_norm.bias", [768]),
    ("fc1.weight", [3072, 768]), ("fc1.bias", [3072]), ("fc2.weight", [768, 3072]), ("fc2.bias", [768]),
    ("final_layer_norm.weight", [768]), ("final_layer_norm.bias", [768])]


def published_layout() -> list[tuple[str, list[int]]]:
    """Ordered (key, shape) of the layout file: the table follows grep_a in layer 0 and grep_linear elsewhere."""
    head = [("post_extract_proj.weight", [768, 512]), ("post_extract_proj.bias", [768]),
            ("patch_embedding.weight", [512, 1, 16, 16]), ("encoder.pos_conv.0.bias", [768]),
            ("encoder.pos_conv.0.parametrizations.weight.original0", [1, 1, 128]),
            ("encoder.pos_conv.0.parametrizations.weight.original1", [768, 48, 128])]
    layers = []
    for i in range(12):
        entries = LAYER[:1] + [TABLE] + LAYER[1:] if i == 0 else LAYER[:11] + [TABLE] + LAYER[11:]
        layers += [(f"encoder.layers.{i}.{key}", shape) for key, shape in entries]
    tail = [("encoder.layer_norm.weight", [768]), ("encoder.layer_norm.bias", [768]),
            ("layer_norm.weight", [512]), ("layer_norm.bias", [512])]
    return head + layers + tail


def tiny(**overrides) -> BEATs:
    torch.manual_seed(0)
    return BEATs(**{"embed_dim": 64, "depth": 2, "num_heads": 2, "patch_dim": 32, **overrides})


@pytest.fixture(scope="module")
def meta_model() -> BEATs:
    with torch.device("meta"):
        return BEATs()


def test_state_dict_matches_the_published_layout(meta_model):
    state = meta_model.state_dict()
    assert len(state) == 250
    assert [(k, list(v.shape)) for k, v in state.items()] == published_layout()
    assert {v.dtype for v in state.values()} == {torch.float32}


def test_parameter_count_counts_the_shared_table_once(meta_model):
    assert sum(p.numel() for p in meta_model.parameters()) == 90_311_792
    assert sum(v.numel() for v in meta_model.state_dict().values()) == 90_354_032
    assert meta_model.embed_dim == 768 and meta_model.TOP_NORM == ()


def test_strict_load_of_a_published_shaped_state_dict(meta_model):
    state = {key: torch.empty(shape, device="meta") for key, shape in published_layout()}
    result = meta_model.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    tables = [layer.self_attn.relative_attention_bias.weight for layer in meta_model.encoder.layers]
    assert all(t is tables[0] for t in tables)


def test_relative_position_table_is_one_tensor_in_every_layer():
    model = tiny(depth=3)
    tables = [layer.self_attn.relative_attention_bias.weight for layer in model.encoder.layers]
    assert all(t is tables[0] for t in tables)
    state = model.state_dict()
    pointers = {state[f"encoder.layers.{i}.{TABLE[0]}"].data_ptr() for i in range(3)}
    assert len(pointers) == 1
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in state.values()) - 2 * 320 * 2


def test_filter_reads_a_microsoft_release():
    source = tiny(depth=3).eval()
    state = dict(source.state_dict())
    state["encoder.pos_conv.0.weight_g"] = state.pop("encoder.pos_conv.0.parametrizations.weight.original0")
    state["encoder.pos_conv.0.weight_v"] = state.pop("encoder.pos_conv.0.parametrizations.weight.original1")
    for i in (1, 2):
        del state[f"encoder.layers.{i}.{TABLE[0]}"]
    state["predictor.weight"], state["predictor.bias"] = torch.zeros(527, 64), torch.zeros(527)
    release = {"cfg": {"encoder_layers": 3, "finetuned_model": True}, "model": state}

    filtered = beats_state_dict_filter(release)
    assert set(filtered) == set(source.state_dict())
    target = tiny(depth=3).eval()
    target.load_state_dict(filtered, strict=True)
    x = torch.randn(1, 1, 128, 64)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


@pytest.mark.bad_input
def test_filter_rejects_a_state_dict_without_the_position_table():
    state = {k: v for k, v in tiny().state_dict().items() if "relative_attention_bias" not in k}
    with pytest.raises(BEATsInputError, match=r"no 'encoder\.layers\.0\.self_attn\.relative_attention_bias\.weight'"):
        beats_state_dict_filter(state)


@pytest.mark.parametrize("frames, tokens", [(998, 62 * 8), (2498, 156 * 8), (1003, 62 * 8)])
def test_output_shapes(frames, tokens):
    model = tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 128, frames))
    assert out.shape == (2, tokens, 64)


def test_tokens_are_time_major():
    model = tiny().eval()
    captured = []
    model.layer_norm.register_forward_hook(lambda module, inputs, output: captured.append(output))
    x = torch.randn(1, 1, 128, 64)
    changed = x.clone()
    changed[:, :, 16:32, 32:48] += 1.0  # band patch 1, time patch 2
    with torch.no_grad():
        model(x), model(changed)
    differs = (captured[0] - captured[1]).abs().amax(-1)[0] > 0
    assert differs.nonzero().flatten().tolist() == [2 * 8 + 1]


def test_eval_is_deterministic_and_training_is_not():
    model = tiny()
    x = torch.randn(1, 1, 128, 96)
    with torch.no_grad():
        model.eval()
        first, second = model(x), model(x)
        model.train()
        trained = model(x)
    assert torch.equal(first, second)
    assert not torch.allclose(first, trained)


def test_sdpa_and_plain_attention_agree():
    model = tiny().eval()
    with torch.no_grad():
        for p in model.parameters():  # non-trivial gates and bias table
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 1, 128, 998)
    with torch.no_grad():
        fused = model(x)
        assert set_sdpa(model, False) == 2
        plain = model(x)
    assert (fused - plain).abs().max() < 1e-4


@pytest.mark.parametrize("distance, bucket", [
    (0, 0), (1, 161), (-1, 1), (79, 239), (-79, 79), (80, 240), (-80, 80), (200, 271), (-200, 111),
    (799, 319), (-799, 159), (800, 319), (-800, 159), (5000, 319), (-5000, 159)])
def test_relative_position_buckets(distance, bucket):
    # beyond 79: 80 + floor(log(d / 80) / log(800 / 80) * 80), at most 159; positive offsets add 160
    assert relative_position_buckets(torch.tensor([distance])).item() == bucket


def test_position_bias_indexes_the_table_by_key_minus_query():
    model = tiny()
    table = model.encoder.layers[0].self_attn.relative_attention_bias.weight
    bias = model.encoder.position_bias(5, torch.device("cpu"))
    assert bias.shape == (2, 5, 5)
    assert torch.equal(bias[:, 1, 3], table[162]) and torch.equal(bias[:, 3, 1], table[2])


def test_deep_norm_alpha_scales_both_residuals():
    assert deep_norm_alpha(12) == pytest.approx(24 ** 0.25) == pytest.approx(2.2133638)
    model = tiny(dropout=0.0, attention_dropout=0.0).eval()
    layer = model.encoder.layers[0]
    assert layer.alpha == deep_norm_alpha(2) == pytest.approx(4 ** 0.25)
    alpha = 4 ** 0.25
    x = torch.randn(1, 10, 64)
    bias = model.encoder.position_bias(10, x.device)
    with torch.no_grad():
        h = layer.self_attn_layer_norm(alpha * x + layer.self_attn(x, bias))
        expected = layer.final_layer_norm(alpha * h + layer.fc2(torch.nn.functional.gelu(layer.fc1(h))))
        assert torch.allclose(layer(x, bias), expected, atol=1e-6)


def test_gate_scales_the_position_bias_per_head():
    attn = GatedRelativeAttention(embed_dim=8, num_heads=2, attention_dropout=0.0).eval()
    with torch.no_grad():
        attn.grep_linear.weight.zero_()
        attn.grep_linear.bias.zero_()  # a = b = 1/2: gate = (grep_a / 2 - 1) / 2 + 2
        attn.grep_a.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
    x, bias = torch.randn(1, 4, 8), torch.randn(2, 4, 4)
    heads = lambda t: t.view(1, 4, 2, 4).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        q, k, v = heads(attn.q_proj(x)), heads(attn.k_proj(x)), heads(attn.v_proj(x))
        gated = bias * torch.tensor([1.75, 2.0]).view(2, 1, 1)
        expected = attn.out_proj(attend(q, k, v, gated, sdpa=False).transpose(1, 2).reshape(1, 4, 8))
        assert torch.allclose(attn(x, bias), expected, atol=1e-6)


def test_layer_drop_one_skips_every_layer():
    model = tiny(layer_drop=1.0, dropout=0.0, dropout_input=0.0).train()
    x = torch.randn(1, 1, 128, 32)
    with torch.no_grad():
        tokens = model.post_extract_proj(model.layer_norm(model.patch_embedding(x.transpose(2, 3)).flatten(2).mT))
        expected = model.encoder.layer_norm(tokens + model.encoder.pos_conv(tokens.mT).mT)
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_gradients_reach_every_parameter():
    model = tiny(layer_drop=0.0).train()
    model(torch.randn(2, 1, 128, 64)).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def re_shape(shape: tuple[int, ...]) -> str:
    return "\\(" + ", ".join(map(str, shape)) + "\\)"


@pytest.mark.bad_input
@pytest.mark.parametrize("shape", [(2, 128, 998), (2, 2, 128, 998), (2, 1, 128, 10)])
def test_bad_input_shapes_raise_one_clear_line(shape):
    with pytest.raises(BEATsInputError, match=rf"BEATs input has shape {re_shape(shape)}; expected \(batch, 1, "):
        tiny()(torch.zeros(shape))
