"""ATST-Frame: published layout, band-major patches, position rows, the 250-token limit, SDPA, gradients.

Outputs of this port were compared once with PretrainedSED's models/atstframe code (same random weights, full size,
1001 and 423 frames): max abs difference 2e-7.
"""
from __future__ import annotations

import pytest
import torch

from models.transformers.atst_frame import ATSTFrame
from models.transformers.vit import TransformerInputError
from tests.models.transformers.backbone_checks import (TINY, block_inputs, check_eval_and_sdpa, check_gradients,
                                                       check_published_layout, check_top_norm)

NAME = "atst_frame_base"


def tiny(**overrides) -> ATSTFrame:
    torch.manual_seed(0)
    return ATSTFrame(**{**TINY, **overrides})


def test_published_layout_and_parameter_count():
    model = check_published_layout(ATSTFrame, NAME)
    assert model.embed_dim == 768 and len(model.blocks) == 12
    check_top_norm(model, NAME, "atst.")


@pytest.mark.parametrize("frames, tokens", [(1001, 250), (1000, 250), (423, 105)])
def test_one_token_per_four_frames(frames, tokens):
    out = tiny().eval()(torch.randn(2, 1, 64, frames))
    assert out.shape == (2, tokens, 64)


def test_25_seconds_exceed_the_position_table():
    with pytest.raises(TransformerInputError, match=r"^ATSTFrame: 2501 frames give 625 tokens; the position table "
                                                    r"takes 1 to 250 \(1000 frames\); cut longer audio into chunks$"):
        tiny()(torch.randn(1, 1, 64, 2501))
    with pytest.raises(TransformerInputError, match="3 frames give 0 tokens"):
        tiny()(torch.randn(1, 1, 64, 3))


def test_other_band_counts_are_refused():
    with pytest.raises(TransformerInputError, match=r"ATSTFrame: expected a \(B, 1, 64, T\) spectrogram, got shape "
                                                    r"\(1, 1, 128, 1001\)"):
        tiny()(torch.randn(1, 1, 128, 1001))


@pytest.mark.parametrize("band, frame", [(0, 0), (5, 6), (63, 999)])
def test_patches_are_flattened_band_major(band, frame):
    x = torch.zeros(1, 1, 64, 1001)
    x[0, 0, band, frame] = 1.0
    patches = tiny().patch_embed.patchify(x)
    assert patches.shape == (1, 250, 256)
    assert patches.nonzero().tolist() == [[0, frame // 4, band * 4 + frame % 4]]


def test_token_i_adds_position_row_i_plus_1():
    model = tiny().eval()
    x = torch.randn(1, 1, 64, 41)  # 10 tokens, the 41st frame is cut
    (tokens,) = block_inputs(lambda: model(x), model.blocks[0])
    with torch.no_grad():
        expected = model.patch_embed.patch_embed(model.patch_embed.patchify(x)) + model.pos_embed[:, 1:11]
    torch.testing.assert_close(tokens, expected, atol=0, rtol=0)


def test_eval_is_deterministic_and_sdpa_matches_plain():
    check_eval_and_sdpa(tiny(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.2), torch.randn(2, 1, 64, 200))


def test_gradients_reach_every_parameter_but_the_unused_mask_embedding():
    model = tiny(drop_rate=0.1)  # no drop path: a dropped branch would leave its block without gradient
    assert model.UNUSED_PARAMETERS == ("mask_embed",)
    check_gradients(model, torch.randn(2, 1, 64, 120), unused=model.UNUSED_PARAMETERS)
