"""Frontends against values computed from their defining formulas."""
import math

import numpy as np
import pytest
import torch

from models import create_frontend
from models.frontends import EfficientATMel, MelSpectrogram, kaldi_mel_banks, mel_filterbank
from models.frontends.masking import SpecMasking


def _kaldi_bank_reference(n_mels, n_fft, sr, fmin, fmax):
    """Element by element from Kaldi's definition, in float64."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)
    lo, hi = mel(fmin), mel(fmax)
    delta = (hi - lo) / (n_mels + 1)
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        for i in range(n_fft // 2):
            x = mel(i * sr / n_fft)
            if left < x < right:
                out[m, i] = (x - left) / (center - left) if x <= center else (right - x) / (right - center)
    return out


def test_kaldi_mel_banks_match_kaldi_definition():
    banks = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    assert banks.shape == (128, 513) and banks.dtype == torch.float32
    assert torch.all(banks[:, -1] == 0), "Nyquist column must be zero"
    ref = _kaldi_bank_reference(128, 1024, 32000, 0.0, 15000.0)
    np.testing.assert_allclose(banks.numpy(), ref, atol=5e-5)  # fp32 arithmetic, as the published frontend
    assert [np.count_nonzero(r) for r in banks[:4].numpy()] == [np.count_nonzero(r) for r in ref[:4]]
    # pinned values (float64 Kaldi definition): the first filters start in bins 1 and 2
    assert float(banks[0, 1]) == pytest.approx(0.188593, abs=1e-5)
    assert float(banks[1, 1]) == pytest.approx(0.811407, abs=1e-5)
    assert float(banks[2, 2]) == pytest.approx(0.453, abs=1e-3)


def _efficientat_reference(wave: np.ndarray) -> np.ndarray:
    """Pre-emphasis, symmetric Hann 800 in a 1024 frame, centred reflect-padded DFT, Kaldi mel, log, normalise."""
    x = wave[1:] - 0.97 * wave[:-1]
    n_fft, hop, win = 1024, 320, 800
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / (win - 1))
    padded_window = np.zeros(n_fft)
    padded_window[(n_fft - win) // 2:(n_fft - win) // 2 + win] = window
    xp = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + (len(xp) - n_fft) // hop
    spec = np.stack([np.fft.rfft(xp[i * hop:i * hop + n_fft] * padded_window) for i in range(frames)], axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = _kaldi_bank_reference(128, n_fft, 32000, 0.0, 15000.0) @ power
    return (np.log(mel + 1e-5) + 4.5) / 5.0


def test_efficientat_mel_equals_formula_on_fixed_signal():
    t = np.arange(16000) / 32000.0
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 3000 * t * (1 + t))).astype(np.float32)
    frontend = EfficientATMel().eval()
    out = frontend(torch.from_numpy(wave)[None])
    assert out.shape == (1, 1, 128, frontend.frames(16000)) == (1, 1, 128, 50)
    np.testing.assert_allclose(out[0, 0].numpy(), _efficientat_reference(wave.astype(np.float64)), atol=2e-4)


def test_efficientat_mel_10s_shape_and_eval_determinism():
    frontend = create_frontend("efficientat_mel").eval()
    assert frontend.fmax == 15000.0
    x = torch.randn(2, 320000)
    a, b = frontend(x), frontend(x)
    assert a.shape == (2, 1, 128, 1000)
    assert torch.equal(a, b)


def test_efficientat_mel_training_jitters_band_edges():
    frontend = EfficientATMel()
    x = torch.randn(1, 32000)
    torch.manual_seed(0)
    outs = [frontend(x) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def test_specmasking_masks_bands_per_example_only_in_training():
    torch.manual_seed(0)
    x = torch.ones(8, 1, 64, 100)
    freq_masked = (SpecMasking(freqm=20)(x) == 0).all(dim=-1).squeeze(1)  # (B, F): bins masked at every frame
    assert (freq_masked.sum(-1) <= 20).all() and freq_masked.sum() > 0
    assert len({tuple(r.tolist()) for r in freq_masked}) > 1, "masks must differ across examples"
    time_masked = (SpecMasking(timem=30)(x) == 0).all(dim=-2).squeeze(1)  # (B, T)
    assert (time_masked.sum(-1) <= 30).all() and time_masked.sum() > 0
    masking = SpecMasking(freqm=20, timem=30)
    assert torch.equal(masking.eval()(x), x)


def test_htk_filterbank_matches_formula():
    banks = mel_filterbank(40, 512, 16000, 0.0, 8000.0, scale="htk")
    assert banks.shape == (40, 257)
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)
    edges = inv(np.linspace(mel(0), mel(8000), 42))
    freqs = np.linspace(0, 8000, 257)
    ref = np.maximum(0, np.minimum((freqs[None] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None],
                                   (edges[2:, None] - freqs[None]) / (edges[2:] - edges[1:-1])[:, None]))
    np.testing.assert_allclose(banks.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("scale", ["htk", "kaldi", "slaney"])
def test_mel_scales_invert(scale):
    from models.frontends.mel import hz_to_mel, mel_to_hz

    f = torch.tensor([0.0, 100.0, 999.0, 1000.0, 4000.0, 16000.0], dtype=torch.float64)
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f, scale), scale), f, rtol=1e-6, atol=1e-6)


def test_mel_spectrogram_db_and_minmax():
    frontend = MelSpectrogram(sample_rate=16000, n_fft=2048, hop_length=256, n_mels=128, fmax=8000,
                              window="hamming_symmetric", power=1, log="db", db_range=(-50, 80), normalize="minmax")
    x = torch.randn(2, 160000)
    y = frontend(x)
    assert y.shape == (2, 1, 128, 626)
    assert float(y.min()) == pytest.approx(-1.0, abs=1e-6) and float(y.max()) == pytest.approx(1.0, abs=1e-6)


def test_mel_spectrogram_masks_before_log_in_training_only():
    frontend = MelSpectrogram(sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500, n_mels=256, fmax=16000,
                              freqm=48, mask_before_log=True, log="log")
    x = torch.randn(3, 32000)
    torch.manual_seed(1)
    y = frontend(x)
    assert y.shape == (3, 1, 256, 65)
    # a masked linear-mel bin becomes exactly log(1e-5)
    assert (y == math.log(1e-5)).any()
    assert not (frontend.eval()(x) == math.log(1e-5)).any()


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="win_length"):
        EfficientATMel(win_length=2048, n_fft=1024)
    with pytest.raises(ValueError, match="fmin"):
        kaldi_mel_banks(64, 1024, 32000, 500.0, 100.0)
    with pytest.raises(ValueError, match="window"):
        MelSpectrogram(window="boxcar")


def test_mel_spectrogram_splits_into_linear_mel_and_finish_without_changing_outputs():
    """The DCASE'24 Task 4 preset: ``linear`` is the magnitude mel (where the baseline mixes), ``finish`` the dB,
    clamp and per-clip min-max; ``forward`` is exactly their composition."""
    frontend = create_frontend("crnn_dcase24")
    torch.manual_seed(0)
    x = torch.randn(2, 8000) * torch.tensor([[1.0], [1e-4]])
    linear = frontend.linear(x)
    spec = torch.stft(x, 2048, hop_length=256, window=torch.hamming_window(2048, periodic=False),
                      center=True, pad_mode="reflect", return_complex=True).abs()
    torch.testing.assert_close(linear, frontend.banks @ spec, rtol=1e-5, atol=1e-7)
    db = (20.0 * torch.log10(linear.clamp(min=1e-5))).clamp(-50.0, 80.0)
    lo, hi = db.amin(dim=(1, 2), keepdim=True), db.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(frontend.finish(linear), (2 * (db - lo) / (hi - lo + 1e-8) - 1).unsqueeze(1))
    assert torch.equal(frontend(x), frontend.finish(linear))
