"""PaSST-S and fPaSST: published layouts, grids, factorised positions, cuts, patchout, heads, SDPA, gradients.

Outputs of this port were compared once with the public code (same random weights, full size): PaSST-S with
kkoutini/PaSST models/passt.py at 1000, 998, 500 and 1100 frames (max abs difference 9e-8), fPaSST with PretrainedSED
models/frame_passt/fpasst.py at 1000, 601 and 1203 frames (identical).
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from models.transformers.passt import FramePaSST, PaSST, keep_random
from models.transformers.vit import TransformerInputError
from tests.models.transformers.backbone_checks import (TINY, block_inputs, check_eval_and_sdpa, check_gradients,
                                                       check_published_layout, check_top_norm)


def tiny_passt(**overrides) -> PaSST:
    torch.manual_seed(0)
    return PaSST(**{**TINY, **overrides})


def tiny_fpasst(**overrides) -> FramePaSST:
    torch.manual_seed(0)
    return FramePaSST(**{**TINY, **overrides})


def test_published_layouts_and_parameter_counts():
    passt = check_published_layout(PaSST, "passt_s_swa_p16_128_ap476")
    assert passt.head[0].eps == 1e-5  # the head's LayerNorm keeps torch's default, unlike the blocks (1e-6)
    fpasst = check_published_layout(FramePaSST, "fpasst_deit_b_frame")
    assert fpasst.embed_dim == passt.embed_dim == 768 and len(fpasst.blocks) == 12
    check_top_norm(fpasst, "fpasst_deit_b_frame", "fpasst.")


@pytest.mark.parametrize("frames, cols", [(1000, 99), (998, 99), (500, 49)])
def test_passt_grid_and_outputs(frames, cols):
    model = tiny_passt().eval()
    x = torch.randn(2, 1, 128, frames)
    with torch.no_grad():
        tokens = model.forward_tokens(x)
        logits, embedding = model(x)
    assert tokens.shape == (2, 2 + 12 * cols, 64)
    assert logits.shape == (2, 527) and embedding.shape == (2, 64)
    torch.testing.assert_close(embedding, tokens[:, :2].mean(1), atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(logits, model.head(embedding), atol=0, rtol=0)


def test_passt_25_seconds_are_cut_to_the_time_table_with_a_warning():
    model = tiny_passt().eval()
    with pytest.warns(UserWarning, match="PaSST: 249 time patches exceed the 99 of the time position table; the "
                                         "input is cut to its first 99"):
        tokens = model.forward_tokens(torch.randn(1, 1, 128, 2500))
    assert tokens.shape == (1, 2 + 12 * 99, 64)


def test_passt_refuses_other_band_counts_and_too_short_inputs():
    with pytest.raises(TransformerInputError, match=r"^PaSST: the patch grid has 5 frequency rows, the frequency "
                                                    r"position table 12; feed the number of mel bands"):
        tiny_passt()(torch.randn(1, 1, 64, 1000))
    with pytest.raises(TransformerInputError, match=r"PaSST: input of shape \(1, 1, 128, 10\) is shorter than one "
                                                    r"patch \(16 frames\)"):
        tiny_passt()(torch.randn(1, 1, 128, 10))


def test_passt_tokens_are_cls_dist_then_the_grid_frequency_major_with_factorised_positions():
    model = tiny_passt().eval()
    x = torch.randn(1, 1, 128, 300)  # grid 12 x 29: the first 29 time columns of the table
    (tokens,) = block_inputs(lambda: model(x), model.blocks[0])
    with torch.no_grad():
        grid = model.patch_embed.proj(x) + model.time_new_pos_embed[..., :29] + model.freq_new_pos_embed
    assert tokens.shape == (1, 2 + 12 * 29, 64)
    torch.testing.assert_close(tokens[:, 0], (model.cls_token + model.new_pos_embed[:, :1])[:, 0].detach())
    torch.testing.assert_close(tokens[:, 1], (model.dist_token + model.new_pos_embed[:, 1:])[:, 0].detach())
    torch.testing.assert_close(tokens[0, 2 + 3 * 29 + 7], grid[0, :, 3, 7], atol=1e-6, rtol=0)
    torch.testing.assert_close(tokens[:, 2:], grid.flatten(2).transpose(1, 2), atol=1e-6, rtol=0)


def test_passt_structured_patchout_only_in_training():
    model = tiny_passt(s_patchout_t=40, s_patchout_f=4)
    x = torch.randn(1, 1, 128, 1000)
    assert model.train().forward_tokens(x).shape == (1, 2 + 8 * 59, 64)
    assert model.eval().forward_tokens(x).shape == (1, 2 + 12 * 99, 64)


def test_keep_random_keeps_order_and_refuses_dropping_everything():
    x = torch.arange(10.0).reshape(1, 1, 1, 10)
    torch.manual_seed(0)
    kept = keep_random(x, 3, 4).flatten().tolist()
    assert len(kept) == 6 and kept == sorted(kept) and set(kept) <= set(range(10))
    assert keep_random(x, 3, 0) is x
    with pytest.raises(TransformerInputError, match="patchout of 10 columns leaves nothing"):
        keep_random(x, 3, 10)


def test_passt_sdpa_and_gradients():
    check_eval_and_sdpa(tiny_passt(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.2),
                        torch.randn(2, 1, 128, 200))
    model = tiny_passt(drop_rate=0.1)
    check_gradients(model, torch.randn(2, 1, 128, 200), unused=model.UNUSED_PARAMETERS)
    assert model.UNUSED_PARAMETERS == ("head_dist.weight", "head_dist.bias")


@pytest.mark.parametrize("frames, tokens", [(1000, 250), (601, 151)])
def test_fpasst_one_token_per_40_ms(frames, tokens):
    assert tiny_fpasst().eval()(torch.randn(2, 1, 128, frames)).shape == (2, tokens, 64)


def test_fpasst_25_seconds_are_cut_to_250_tokens_with_a_warning():
    with pytest.warns(UserWarning, match="FramePaSST: 625 time patches exceed the 250 of the time position table"):
        out = tiny_fpasst().eval()(torch.randn(1, 1, 128, 2500))
    assert out.shape == (1, 250, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_fpasst().eval()(torch.randn(1, 1, 128, 1000))  # exactly the table: no warning


def test_fpasst_stem_regroups_channels_by_plain_reshape():
    model = tiny_fpasst().eval()
    x = torch.randn(1, 1, 128, 40)
    with torch.no_grad():
        stem = model.stem(x)
        h = F.gelu(model.conv_in_3(F.gelu(model.conv_in_2(F.gelu(model.conv_in_1(x))))))
    assert h.shape == (1, 64, 32, 10) and stem.shape == (1, 16, 128, 10)
    for channel, row in [(0, 0), (0, 40), (5, 127), (15, 64)]:  # new channel c, row r = old 4c + r // 32, r % 32
        assert torch.equal(stem[0, channel, row], h[0, 4 * channel + row // 32, row % 32])


def test_fpasst_tokens_drop_the_first_patch_step_and_the_special_tokens():
    model = tiny_fpasst().eval()
    x = torch.randn(1, 1, 128, 40)  # 10 steps
    (tokens,) = block_inputs(lambda: model(x), model.blocks[0])
    with torch.no_grad():
        steps = F.conv2d(model.stem(x), model.patch_embed.proj.weight, model.patch_embed.proj.bias, padding=(0, 1))
        grid = steps[..., 1:] + model.time_new_pos_embed[..., :10] + model.freq_new_pos_embed
        out = model(x)
    assert steps.shape[-1] == 11 and tokens.shape == (1, 12, 64) and out.shape == (1, 10, 64)
    torch.testing.assert_close(tokens[:, 2:], grid.flatten(2).transpose(1, 2), atol=1e-6, rtol=0)


def test_fpasst_training_uses_a_random_window_of_the_time_table():
    model = tiny_fpasst().train()
    x = torch.randn(1, 1, 128, 40)  # 10 steps, table of 250: offsets 0..240
    with torch.no_grad():
        steps = model.patch_embed(model.stem(x))[..., 1:] + model.freq_new_pos_embed

    def offsets(tokens: torch.Tensor) -> list[int]:
        return [o for o in range(241) if torch.allclose(
            tokens[:, 2:], (steps + model.time_new_pos_embed[..., o:o + 10]).flatten(2).transpose(1, 2), atol=1e-6)]

    seen = []
    for seed in range(4):
        torch.manual_seed(seed)
        (tokens,) = block_inputs(lambda: model(x), model.blocks[0])
        seen += offsets(tokens)
    assert len(seen) == 4 and len(set(seen)) > 1
    model.eval()
    (tokens,) = block_inputs(lambda: model(x), model.blocks[0])
    assert offsets(tokens) == [0]


def test_fpasst_frame_patchout_only_in_training():
    model = tiny_fpasst(frame_patchout=50)
    x = torch.randn(1, 1, 128, 1000)
    assert model.train()(x).shape == (1, 200, 64)
    assert model.eval()(x).shape == (1, 250, 64)


def test_fpasst_refuses_other_band_counts():
    with pytest.raises(TransformerInputError, match=r"FramePaSST: expected a \(B, 1, 128, T\) spectrogram"):
        tiny_fpasst()(torch.randn(1, 1, 64, 1000))


def test_fpasst_sdpa_and_gradients():
    check_eval_and_sdpa(tiny_fpasst(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.2),
                        torch.randn(2, 1, 128, 200))
    check_gradients(tiny_fpasst(drop_rate=0.1), torch.randn(2, 1, 128, 200))
