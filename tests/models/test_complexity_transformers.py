"""``sonolab complexity`` for the transformer zoo: exact parameters (the layouts), MACs equal to hand formulas
(attention matmuls included, with the fused CPU attention and the plain form alike), recurrent layers by formula.

Full-size models are counted by :func:`models.complexity.complexity` on the meta device / under FakeTensorMode,
so nothing is initialised or computed.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from experiments.commands.complexity import main as complexity_main
from models import create_frontend
from models.complexity import complexity, count_macs, frontend_note, rnn_macs
from models.transformers.asit import ASiT
from models.transformers.atst_frame import ATSTFrame
from models.transformers.attention import attend, set_sdpa
from models.transformers.beats import BEATs
from models.transformers.catalogue import PRETRAINEDSED
from tests.models.transformers.layouts import layout

pytestmark = pytest.mark.usefixtures("one_thread")

D, CLASSES, FRAMES = 768, 447, 250  # ViT-B width, AudioSet strong classes, 40 ms frames in 10 s


def vit_blocks_macs(depth: int, dim: int, tokens: int) -> int:
    """Pre-LN ViT blocks: qkv + proj 4 D^2 S, q k^T and weights v 2 S^2 D, MLP (ratio 4) 8 D^2 S."""
    return depth * (4 * dim * dim * tokens + 2 * tokens * tokens * dim + 8 * dim * dim * tokens)


def beats_macs(tokens: int = 496, dim: int = D, patch_dim: int = 512, conv_pos: int = 128, groups: int = 16,
               depth: int = 12) -> int:
    """BEATs (defaults: 998 x 128 -> 62 x 8 tokens): 16x16 patches (no bias), post_extract_proj, the grouped position
    conv (an even kernel gives one step more, dropped afterwards) and the layers, each with the Dh -> 8 gate linear
    on every head's queries (tokens x dim x 8)."""
    patches = tokens * patch_dim * 256 + tokens * patch_dim * dim
    pos_conv = (tokens + 1) * dim * (dim // groups) * conv_pos
    return patches + pos_conv + vit_blocks_macs(depth, dim, tokens) + depth * tokens * dim * 8


BACKBONE_MACS = {  # hand formulas at the registered 10 s input
    "beats_iter3_as2m": beats_macs(),
    "beats_iter3plus_as2m": beats_macs(),
    "atst_frame_base": 250 * 256 * D + vit_blocks_macs(12, D, 250),  # Linear patches 64 x 4 -> 768
    "asit_vit_base_128x592p16": 496 * 256 * D + vit_blocks_macs(12, D, 1 + 496),
    "passt_s_swa_p16_128_ap476": 12 * 99 * 256 * D + vit_blocks_macs(12, D, 2 + 12 * 99) + D * 527,
    # conv stem (64 x 500, 64 x 500, 32 x 250 outputs), patch conv 16 x 128 x 2 over 251 steps, 250 + 2 tokens
    "fpasst_deit_b_frame": (16 * 9 * 64 * 500 + 32 * 16 * 9 * 64 * 500 + 64 * 32 * 9 * 32 * 250
                            + D * 16 * 128 * 2 * 251 + vit_blocks_macs(12, D, 252)),
    # conv-STFT (cos and sin, 201 bins x 400 taps x 1001 frames), mel matmul, 5 x 62 patches + class token
    "m2d_clap_vit_base_80x1001p16x16": (2 * 201 * 400 * 1001 + 80 * 201 * 1001 + 310 * 256 * D
                                        + vit_blocks_macs(12, D, 311)),
}
LAYOUT_OF = {"beats_iter3_as2m": "beats_iter3plus_as2m"}  # iter3 and iter3+ share the architecture


def gru_params(n_in: int, hidden: int, layers: int) -> int:
    """Bidirectional GRU: per layer and direction W_ih (3H x I), W_hh (3H x H) and two 3H biases."""
    return sum(2 * (3 * hidden * (n_in if k == 0 else 2 * hidden) + 3 * hidden * hidden + 6 * hidden)
               for k in range(layers))


def heads(features: int) -> tuple[int, int]:
    """(params, MACs at 10 s) of the strong (per frame) and weak (on the time mean) Linear(features, 447) heads."""
    return 2 * (features * CLASSES + CLASSES), FRAMES * features * CLASSES + features * CLASSES


def frontend_macs(backbone: str) -> int:
    """MACs counted in the backbone's own frontend on 10 s at 16 kHz (0 for M2D, whose frontend is inside)."""
    if backbone.startswith("m2d"):
        return 0
    return count_macs(create_frontend(backbone), (1, 160000))


@pytest.mark.parametrize("name", list(BACKBONE_MACS))
def test_backbone_params_equal_the_layout_and_macs_the_hand_formula(name):
    result = complexity(name)
    assert result["params"] == layout(LAYOUT_OF.get(name, name))["total_params_backbone"]
    assert result["macs"] == BACKBONE_MACS[name]
    assert result["macs_convention"] == "aten"


@pytest.mark.parametrize("model", list(PRETRAINEDSED))
@pytest.mark.parametrize("kind", ["strong", "teacher"])
def test_pretrainedsed_params_and_macs(model, kind):
    backbone = PRETRAINEDSED[model][0]
    dim = 3840 if model == "m2d" else D  # M2D concatenates its 5 frequency tokens per step
    strong_params, strong_macs = heads(dim)
    params = layout(backbone)["total_params_wrapper"]
    macs = BACKBONE_MACS[backbone] + frontend_macs(backbone) + strong_macs
    if kind == "teacher":  # BiGRU 2 x 2048 on the 250 frames, heads on its 4096 features
        teacher_params, teacher_macs = heads(4096)
        params += gru_params(dim, 2048, 2) + teacher_params - strong_params
        gru_macs = FRAMES * 2 * (3 * 2048 * (dim + 2048) + 3 * 2048 * (4096 + 2048))
        macs += gru_macs + teacher_macs - strong_macs
    result = complexity(f"pretrainedsed_{model}_{kind}")
    assert (result["params"], result["macs"], result["input_shape"]) == (params, macs, [1, 160000])
    if kind == "strong":
        assert params == PRETRAINEDSED[model][3]


def tiny_atst() -> ATSTFrame:
    torch.manual_seed(0)
    return ATSTFrame(embed_dim=64, depth=2, num_heads=2, n_mels=16, max_tokens=10)


@pytest.mark.parametrize("sdpa", [True, False])
def test_tiny_vits_count_the_hand_formula_with_fused_and_plain_attention(sdpa):
    atst = tiny_atst()
    assert set_sdpa(atst, sdpa) == 2
    # 40 frames -> 10 tokens of 64; patches are Linear(16 bands x 4 frames -> 64)
    assert count_macs(atst, (1, 1, 16, 40)) == 10 * 64 * 64 + vit_blocks_macs(2, 64, 10) == 1_049_600
    asit = ASiT(embed_dim=64, depth=2, num_heads=2, input_fdim=32, input_tdim=64)
    set_sdpa(asit, sdpa)
    # 32 bands x 64 frames -> 4 x 2 conv patches of 16 x 16 (256 -> 64) + class token; batch 2 doubles everything
    assert count_macs(asit, (2, 1, 32, 64)) == 2 * (8 * 256 * 64 + vit_blocks_macs(2, 64, 9)) == 2_073_088


def test_fused_attention_with_a_bias_counts_like_the_plain_form():
    beats = BEATs(embed_dim=64, depth=2, num_heads=2, patch_dim=32, conv_pos=8, conv_pos_groups=4,
                  num_buckets=16, max_distance=32)
    assert set_sdpa(beats, False) == 2
    plain = count_macs(beats, (1, 1, 32, 64))
    set_sdpa(beats, True)
    # 64 frames x 32 bands -> 4 x 2 = 8 tokens
    assert count_macs(beats, (1, 1, 32, 64)) == plain == beats_macs(8, 64, 32, 8, 4, 2) == 966_656


class Heads(nn.Module):
    """One attention call with an (S, S) bias on (B, H, S, Dh) = (2, 3, 5, 4) heads of a (2, 5, 12) input. The bias is
    a buffer: a bias that requires grad sends the CPU kernel down its decomposed (counted) math path."""

    def __init__(self, sdpa: bool) -> None:
        super().__init__()
        self.sdpa = sdpa
        self.register_buffer("bias", torch.zeros(5, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.view(2, 5, 3, 4).transpose(1, 2)
        return attend(q, q, q, bias=self.bias, sdpa=self.sdpa)


@pytest.mark.parametrize("sdpa", [True, False])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_matmuls_are_counted_on_cpu_and_meta(sdpa, device):
    # q k^T and weights v: 2 x B H S S Dh (torch's fused CPU op alone counts 0); the input follows the buffer
    with torch.device(device):
        model = Heads(sdpa)
    assert count_macs(model, (2, 5, 12)) == 2 * 2 * 3 * 5 * 5 * 4 == 1200


@pytest.mark.parametrize("kind, batch_first", [(nn.GRU, True), (nn.GRU, False), (nn.LSTM, True), (nn.RNN, True)])
def test_recurrent_layers_by_formula_equal_flopcounter_step_by_step(kind, batch_first):
    shape = (3, 7, 6) if batch_first else (7, 3, 6)
    with torch.device("meta"):  # on meta every recurrent layer is decomposed into one addmm per step and gate block
        reference = kind(6, 5, num_layers=2, bidirectional=True, batch_first=batch_first)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        reference(torch.zeros(shape, device="meta"))
    gates = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}[kind]
    # 7 steps x batch 3 x 2 directions x (layer 0: input 6, layer 1: input 10) with hidden 5
    expected = 7 * 3 * 2 * gates * 5 * ((6 + 5) + (10 + 5))
    assert rnn_macs(reference, steps=7, batch=3) == counter.get_total_flops() // 2 == expected
    # on the CPU (where FlopCounterMode sees the fused LSTM op as 0) count_macs gives the formula, then restores
    rnn = kind(6, 5, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = torch.randn(shape)
    before = rnn(x)[0]
    assert count_macs(nn.Sequential(nn.Identity(), rnn), shape) == expected
    assert "forward" not in vars(rnn)
    assert torch.equal(rnn(x)[0], before)


def test_cli_lines_for_a_backbone_and_a_waveform_model(capsys):
    assert complexity_main(["atst_frame_base"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "atst_frame_base: 85,419,264 params, 22,434,816,000 MACs (22.4348 G, aten convention) at input "
        "[1, 1, 64, 1001]",
        "frontend atst_mel not included (the input is its output)",
    ]
    assert frontend_note("pretrainedsed_atst_frame_strong") == (
        "frontend included (waveform input; its convolutions and matmuls are counted, FFTs are not)")
