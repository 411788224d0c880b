"""CP-Mobile catalogue entries: exact complexity, layout, frontend settings, forward/backward."""
import pytest
import torch

import models
from models.complexity import complexity, count_macs, count_params
from models.cpmobile import CPMobile, CPMobileBlock, GRN
from models.efficientat.layers import make_divisible

CATALOGUE = ["cp_mobile_dcase24", "cp_mobile_grn_dcase23"]


def test_make_divisible_gives_baseline_widths():
    assert [make_divisible(32 * 1.8 ** s, 8) for s in range(3)] == [32, 56, 104]
    assert make_divisible(32 * 2.1, 8) == 64 and make_divisible(56 * 2.1, 8) == 120


def test_cp_mobile_dcase24_complexity_is_exact():
    report = complexity("cp_mobile_dcase24")
    assert report["input_shape"] == [1, 1, 256, 65]
    assert report["params"] == 61_148
    assert report["macs"] == 29_419_156
    assert report["params"] * 2 == 122_296  # fp16 parameter memory quoted by the baseline


def test_cp_mobile_grn_dcase23_complexity():
    report = complexity("cp_mobile_grn_dcase23")
    assert report["params"] == 126_952
    assert report["input_shape"] == [1, 1, 256, 64]  # what its frontend gives for 1 s at 32 kHz
    assert report["macs"] == 28_893_280
    # the 31.68 M of the spec is the same network on 65 frames
    assert complexity("cp_mobile_grn_dcase23", (1, 1, 256, 65))["macs"] == 31_684_192


def test_dcase24_layout():
    model = models.create_model("cp_mobile_dcase24")
    blocks = [m for m in model.modules() if isinstance(m, CPMobileBlock)]
    assert len(blocks) == 6 and model.widths == [32, 32, 56, 104]
    assert [b.block[0][0].out_channels for b in blocks] == [64, 64, 64, 64, 120, 120]
    assert [b.block[1][0].stride for b in blocks] == [(1, 1), (1, 1), (1, 2), (2, 1), (1, 1), (1, 1)]
    assert [b.use_shortcut for b in blocks] == [True, True, True, False, True, False]
    assert isinstance(blocks[2].shortcut, torch.nn.AvgPool2d) and isinstance(blocks[0].shortcut, torch.nn.Identity)
    assert not any(isinstance(m, GRN) for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert model.in_c(torch.zeros(1, 1, 256, 65)).shape == (1, 32, 64, 17)


def test_grn_variant_layout():
    model = models.create_model("cp_mobile_grn_dcase23")
    blocks = [m for m in model.modules() if isinstance(m, CPMobileBlock)]
    assert model.widths == [32, 32, 72, 168]
    assert [b.block[1][0].stride for b in blocks] == [(1, 1), (2, 2), (1, 1), (2, 1), (1, 1), (1, 1)]
    assert all(isinstance(b.after_block_norm, GRN) for b in blocks)
    grn_params = sum(count_params(b.after_block_norm) for b in blocks)
    assert grn_params == 12


def test_grn_formula():
    grn = GRN()
    with torch.no_grad():
        grn.gamma.fill_(0.5)
        grn.beta.fill_(0.1)
    x = torch.randn(2, 3, 4, 5)
    gx = x.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()
    nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
    torch.testing.assert_close(grn(x), 0.5 * x * nx + 0.1 + x)


def test_grn_starts_as_identity():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(GRN()(x), x)


@pytest.mark.parametrize("name", CATALOGUE)
def test_frontend_gives_the_registered_input_shape(name):
    frontend = models.create_frontend(name).eval()
    entry = models.get_entry(name)
    assert tuple(frontend(torch.randn(1, 32000)).shape) == entry.input_shape


def test_dcase24_frontend_settings():
    frontend = models.create_frontend("cp_mobile_dcase24")
    # torchaudio's MelSpectrogram default window: periodic Hann
    torch.testing.assert_close(frontend.window, torch.hann_window(3072, periodic=True))
    assert (frontend.n_fft, frontend.hop_length, frontend.n_mels, frontend.power) == (4096, 500, 256, 2.0)
    assert frontend.mask_before_log and frontend.masking.freqm == 48 and frontend.masking.timem == 0
    assert frontend.normalize == "none" and frontend.log == "log" and frontend.log_offset == 1e-5


def test_dcase23_frontend_settings():
    frontend = models.create_frontend("cp_mobile_grn_dcase23")
    assert frontend.fmax == 15500.0 and frontend.fmax_aug_range == 1000 and frontend.fmin_aug_range == 1
    assert frontend.masking.freqm == 48


@pytest.mark.parametrize("name", CATALOGUE)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = models.create_model(name)
    x = torch.randn(3, 1, 256, 65)
    logits, embedding = model(x)
    assert logits.shape == (3, 10) and embedding.shape == (3, model.embed_dim)
    assert torch.isfinite(logits).all() and torch.isfinite(embedding).all()
    (logits.logsumexp(dim=1).sum() + embedding.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_embedding_is_pooled_last_stage():
    model = models.create_model("cp_mobile_dcase24").eval()
    x = torch.randn(2, 1, 256, 65)
    with torch.no_grad():
        _, embedding = model(x)
        torch.testing.assert_close(embedding, model.forward_features(x).mean(dim=(2, 3)))


def test_unknown_stride_name_is_rejected():
    with pytest.raises(ValueError, match="b9"):
        CPMobile(strides={"b9": (2, 2)})


def test_custom_width_counts():
    model = CPMobile(channels_multiplier=2.3, expansion_rate=3.0)
    assert count_params(model) == 126_952 - 12  # the GRN variant without its 6 x (gamma, beta)
    assert count_macs(model, (1, 1, 256, 65), "torchinfo") > 0


def test_state_dict_follows_the_public_cpjku_layout():
    # the published DCASE'23 student checkpoint (cpjku_dcase23, run c0a7nzin) has 138 model entries with these names
    keys = list(models.create_model("cp_mobile_grn_dcase23").state_dict())
    assert len(keys) == 138
    for key in ("in_c.0.0.weight", "in_c.1.1.running_var", "stages.s1.b1.after_block_norm.gamma",
                "stages.s1.b1.block.1.0.weight", "stages.s3.b6.block.2.1.num_batches_tracked",
                "feed_forward.0.weight", "feed_forward.1.bias"):
        assert key in keys
