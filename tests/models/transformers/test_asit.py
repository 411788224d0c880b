"""ASiT: published layout, time-major tokens, the position-table resize against a hand-written bicubic, SDPA.

Outputs of this port were compared once with PretrainedSED's models/asit code (same random weights, full size,
998, 592, 600 and 2498 frames): max abs difference 3e-7.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.transformers.asit import ASiT, resize_positions
from models.transformers.vit import TransformerInputError
from tests.models.transformers.backbone_checks import (TINY, check_eval_and_sdpa, check_gradients,
                                                       check_published_layout, check_top_norm)

NAME = "asit_vit_base_128x592p16"


def tiny(**overrides) -> ASiT:
    torch.manual_seed(0)
    return ASiT(**{**TINY, **overrides})


def cubic_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) 1-D bicubic resampling matrix: Keys kernel a = -0.75, half-pixel centres, edge clamp."""
    a = -0.75

    def kernel(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0

    weights = np.zeros((size_out, size_in))
    for i in range(size_out):
        source = (i + 0.5) * size_in / size_out - 0.5
        base = math.floor(source)
        for j in range(base - 1, base + 3):
            weights[i, min(max(j, 0), size_in - 1)] += kernel(source - j)
    return weights


def test_published_layout_and_parameter_count():
    model = check_published_layout(ASiT, NAME)
    assert model.embed_dim == 768 and len(model.blocks) == 12 and model.trained_grid == (8, 37)
    check_top_norm(model, NAME, "asit.")


@pytest.mark.parametrize("frames, tokens", [(998, 1 + 62 * 8), (2498, 1 + 156 * 8), (592, 1 + 37 * 8)])
def test_output_tokens_for_10_s_25_s_and_the_training_size(frames, tokens):
    assert tiny().eval()(torch.randn(2, 1, 128, frames)).shape == (2, tokens, 64)


@pytest.mark.parametrize("time, band", [(0, 0), (3, 5), (61, 7)])
def test_tokens_are_time_major_after_the_class_token(time, band):
    model = tiny().eval()
    with torch.no_grad():
        model.pos_embed.zero_()
        model.cls_token.zero_()
        model.patch_embed.proj.bias.zero_()
        x = torch.zeros(1, 1, 128, 998)
        x[0, 0, band * 16 + 7, time * 16 + 9] = 1.0  # one bin inside patch (time, band)
        tokens = model.embed(x)
    assert tokens.shape == (1, 497, 64)
    assert (tokens.abs().sum(-1) > 0).nonzero()[:, 1].tolist() == [1 + time * 8 + band]


def test_position_resize_views_the_table_as_8_by_37_and_resizes_bicubically_to_62_by_8():
    torch.manual_seed(0)
    table = torch.randn(1, 296, 3, dtype=torch.float64)
    grid = table[0].numpy().T.reshape(3, 8, 37)  # stored rows read as an (8, 37) grid, as published
    rows, cols = cubic_weights(8, 62), cubic_weights(37, 8)
    expected = np.einsum("ri,dij,cj->rcd", rows, grid, cols).reshape(62 * 8, 3)
    resized = resize_positions(table, (8, 37), (62, 8))
    assert resized.shape == (1, 496, 3)
    np.testing.assert_allclose(resized[0].numpy(), expected, atol=1e-10, rtol=0)


def test_positions_resize_except_at_the_training_size():
    model = tiny().eval()
    assert model.positions(592, 128) is model.pos_embed
    with torch.no_grad():
        pos = model.positions(998, 128)
        again_37_by_8 = model.positions(600, 128)  # 37.5 x 8 patches != 296: resized, as published, to (37, 8)
    assert pos.shape == (1, 497, 64) and again_37_by_8.shape == (1, 297, 64)
    torch.testing.assert_close(pos[:, :1], model.pos_embed[:, :1], atol=0, rtol=0)
    torch.testing.assert_close(pos[:, 1:], resize_positions(model.pos_embed[:, 1:], (8, 37), (62, 8)), atol=0, rtol=0)
    assert not torch.allclose(again_37_by_8, model.pos_embed)


def test_too_small_inputs_are_refused():
    with pytest.raises(TransformerInputError, match=r"^ASiT: input of shape \(1, 1, 128, 10\) is smaller than one "
                                                    r"16x16 patch$"):
        tiny()(torch.randn(1, 1, 128, 10))
    with pytest.raises(TransformerInputError, match=r"ASiT: expected a \(B, 1, F, T\) spectrogram"):
        tiny()(torch.randn(1, 128, 998))


def test_eval_is_deterministic_and_sdpa_matches_plain():
    check_eval_and_sdpa(tiny(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.2), torch.randn(2, 1, 128, 300))


def test_gradients_reach_every_parameter():
    check_gradients(tiny(drop_rate=0.1), torch.randn(2, 1, 128, 300))
