"""M2D: published layout (incl. the nnAudio buffers), the mel against a direct DFT, chunking, token order, SDPA.

The ``to_spec`` buffers of this port were compared once with nnAudio's ``MelSpectrogram`` (KinWaiCheuk/nnAudio, same
arguments as PretrainedSED): DFT kernels and window identical, ``mel_basis`` within 8e-8 (float32 construction here,
float64 in librosa's), normalised log-mel within 2e-5 (1e-7 with nnAudio's basis, which checkpoints carry).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.transformers.m2d import M2D
from models.transformers.vit import TransformerInputError
from tests.models.transformers.backbone_checks import (TINY, block_inputs, check_eval_and_sdpa, check_gradients,
                                                       check_published_layout, check_top_norm)

NAME = "m2d_clap_vit_base_80x1001p16x16"


def tiny(**overrides) -> M2D:
    torch.manual_seed(0)
    return M2D(**{**TINY, **overrides})


def slaney_mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa's ``filters.mel(htk=False, norm=1)`` written out in float64."""
    def to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * 27.0 / np.log(6.4), f * 3 / 200)

    def to_hz(m):
        return np.where(m >= 15.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0), m * 200 / 3)

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def reference_mel(wave: np.ndarray) -> np.ndarray:
    """Centred (reflect) 400-point DFT with a periodic Hann window, hop 160, power, Slaney mel, log, (x + 7.1) / 4.2."""
    padded = np.pad(wave, 200, mode="reflect")
    frames = np.stack([padded[i:i + 400] for i in range(0, len(padded) - 399, 160)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    power = np.abs(np.fft.rfft(frames * window, n=400, axis=-1)) ** 2  # (frames, 201)
    mel = slaney_mel_basis(16000, 400, 80, 50.0, 8000.0) @ power.T
    return (np.log(mel + np.finfo(np.float32).eps) + 7.1) / 4.2


def test_published_layout_parameter_count_and_buffers():
    model = check_published_layout(M2D, NAME)
    assert model.embed_dim == 3840 and len(model.blocks) == 12
    assert not model.backbone.norm_stats.requires_grad
    assert sum(b.numel() for b in model.buffers()) == 177_280
    check_top_norm(model, NAME, "m2d.")


def test_dft_kernels_fold_the_periodic_hann_window_into_cos_and_sin():
    stft = tiny().to_spec.stft
    n = torch.arange(400, dtype=torch.float64)
    window = 0.5 - 0.5 * torch.cos(2 * torch.pi * n / 400)
    phase = 2 * torch.pi * torch.arange(201, dtype=torch.float64)[:, None] * n / 400
    assert stft.wcos.shape == stft.wsin.shape == (201, 1, 400) and stft.window_mask.shape == (1, 400, 1)
    torch.testing.assert_close(stft.window_mask.flatten().double(), window, atol=1e-7, rtol=0)
    torch.testing.assert_close(stft.wcos[:, 0].double(), torch.cos(phase) * window, atol=1e-6, rtol=0)
    torch.testing.assert_close(stft.wsin[:, 0].double(), torch.sin(phase) * window, atol=1e-6, rtol=0)


def test_mel_basis_is_librosas_slaney_area_normalised_filterbank():
    basis = tiny().to_spec.mel_basis
    assert basis.shape == (80, 201)
    np.testing.assert_allclose(basis.numpy(), slaney_mel_basis(16000, 400, 80, 50.0, 8000.0), atol=1e-6, rtol=0)


def test_mel_matches_a_direct_dft_computation():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(4000)
    mel = tiny().mel(torch.tensor(wave, dtype=torch.float32)[None])
    expected = reference_mel(wave)
    assert mel.shape == (1, 1, 80, 26) and expected.shape == (80, 26)
    np.testing.assert_allclose(mel[0, 0].numpy(), expected, atol=1e-4, rtol=0)


def test_norm_stats_are_stored_but_the_fixed_constants_normalise():
    model = tiny().eval()
    wave = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        before = model(wave)
        model.backbone.norm_stats.copy_(torch.tensor([0.0, 1.0]))
        assert torch.equal(model(wave), before)


@pytest.mark.parametrize("samples, frames", [(160_000, 62), (400_000, 156), (16_000, 7)])
def test_output_frames_for_10_s_25_s_and_1_s(samples, frames):
    # 25 s: 2501 mel frames = 1001 + 1001 + 499 (padded to 512) -> 62 + 62 + 32; 1 s: 101 frames -> 112 -> 7
    assert tiny().eval()(torch.randn(2, samples) * 0.1).shape == (2, frames, 5 * 64)


def test_long_input_is_encoded_chunk_by_chunk():
    model = tiny().eval()
    mel = torch.randn(1, 1, 80, 2501)
    with torch.no_grad():
        whole = model.encode_mel(mel)
        parts = [model.encode_mel(mel[..., :1001]), model.encode_mel(mel[..., 1001:2002]),
                 model.encode_mel(mel[..., 2002:])]
    assert [p.shape[1] for p in parts] == [62, 62, 32]
    torch.testing.assert_close(whole, torch.cat(parts, dim=1), atol=1e-5, rtol=0)


def test_frames_concatenate_the_frequency_tokens_frequency_major():
    model = tiny().eval()
    mel = torch.randn(2, 1, 80, 1001)
    tokens = []
    handle = model.backbone.register_forward_hook(lambda _m, _args, out: tokens.append(out.detach()))
    with torch.no_grad():
        frames = model.encode_mel(mel)
    handle.remove()
    (tokens,) = tokens
    assert tokens.shape == (2, 1 + 5 * 62, 64) and frames.shape == (2, 62, 320)
    for t, f in [(0, 0), (7, 3), (61, 4)]:
        torch.testing.assert_close(frames[:, t, f * 64:(f + 1) * 64], tokens[:, 1 + f * 62 + t], atol=0, rtol=0)


def test_short_chunks_take_the_first_position_columns_of_each_frequency_row():
    model = tiny().eval()
    mel = torch.randn(1, 1, 80, 512)  # 32 time patches of 62
    (tokens,) = block_inputs(lambda: model.encode_mel(mel), model.backbone.blocks[0])
    backbone = model.backbone
    with torch.no_grad():
        patches = backbone.patch_embed.proj(mel).flatten(2).transpose(1, 2)
        pos = backbone.pos_embed[:, 1:].reshape(1, 5, 62, 64)[:, :, :32].reshape(1, 160, 64)
        cls = backbone.cls_token + backbone.pos_embed[:, :1]
    torch.testing.assert_close(tokens, torch.cat((cls, patches + pos), dim=1), atol=1e-6, rtol=0)


def test_bad_inputs_are_refused():
    with pytest.raises(TransformerInputError, match=r"^M2D: expected a \(B, samples\) waveform with more than 200 "
                                                    r"samples \(reflect padding\), got shape \(1, 1, 16000\)$"):
        tiny()(torch.zeros(1, 1, 16000))
    with pytest.raises(TransformerInputError, match=r"got shape \(1, 150\)"):
        tiny()(torch.zeros(1, 150))
    with pytest.raises(TransformerInputError, match=r"M2D: expected a \(B, 1, 80, T\) spectrogram"):
        tiny().encode_mel(torch.zeros(1, 1, 64, 1001))


def test_eval_is_deterministic_and_sdpa_matches_plain():
    check_eval_and_sdpa(tiny(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.2), torch.randn(2, 16000) * 0.1)


def test_gradients_reach_every_trainable_parameter():
    model = tiny(drop_rate=0.1)
    check_gradients(model, torch.randn(2, 16000) * 0.1)
    assert model.backbone.norm_stats.grad is None
