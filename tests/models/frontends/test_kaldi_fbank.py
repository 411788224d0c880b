"""Kaldi fbank (BEATs, ASiT) against a float64 frame-loop reference written from Kaldi's definition."""
import math

import numpy as np
import pytest
import torch

from models import create_frontend
from models.frontends import FrontendInputError, KaldiFbank, kaldi_window
from tests.models.frontends.references import chirp_and_noise, hann, kaldi_banks, kaldi_fbank

BEATS = dict(window="povey", waveform_scale=32768.0, subtract_mean=False, norm_mean=15.41663, norm_std=2 * 6.55582)
ASIT = dict(window="hanning", waveform_scale=1.0, subtract_mean=True, norm_mean=-4.2677393, norm_std=2 * 4.5689974)


@pytest.mark.parametrize("name, reference", [("beats_fbank", BEATS), ("asit_fbank", ASIT)])
def test_fbank_equals_kaldi_formula_on_a_batch(name, reference):
    # 0.2 s: 18 frames; the second clip is quieter and carries a DC offset (removed per frame, and per clip for ASiT)
    waves = np.stack([chirp_and_noise(3200, 16000, seed=0), 0.1 * chirp_and_noise(3200, 16000, seed=1, dc=0.2)])
    out = create_frontend(name).eval()(torch.from_numpy(waves).float())
    assert out.shape == (2, 1, 128, 18) and out.dtype == torch.float32
    expected = np.stack([kaldi_fbank(w, **reference) for w in waves])
    np.testing.assert_allclose(out[:, 0].numpy(), expected, atol=1e-4, rtol=0)


def test_registered_constants():
    beats, asit = create_frontend("beats_fbank"), create_frontend("asit_fbank")
    assert (beats.waveform_scale, beats.subtract_mean, beats.norm_mean) == (32768.0, False, 15.41663)
    assert beats.norm_std == pytest.approx(13.11164, abs=1e-12)
    assert (asit.waveform_scale, asit.subtract_mean, asit.norm_mean) == (1.0, True, -4.2677393)
    assert asit.norm_std == pytest.approx(9.1379948, abs=1e-12)  # ASiT: (x + 4.2677393) / (2 * 4.5689974)
    for frontend in (beats, asit):
        assert (frontend.win_length, frontend.hop_length, frontend.n_fft) == (400, 160, 512)
        assert frontend.state_dict() == {}  # buffers are not persistent: the model wrappers own the keys
    assert torch.equal(beats.window, kaldi_window("povey", 400))
    assert torch.equal(asit.window, kaldi_window("hanning", 400))


def test_windows_are_symmetric_hann_and_its_085_power():
    hanning, povey = kaldi_window("hanning", 400).double().numpy(), kaldi_window("povey", 400).double().numpy()
    np.testing.assert_allclose(hanning, hann(400, periodic=False), atol=1e-7)
    np.testing.assert_allclose(povey, hann(400, periodic=False) ** 0.85, atol=1e-7)
    assert povey[0] == hanning[0] == 0.0 and povey[-1] == 0.0
    np.testing.assert_array_equal(povey, povey[::-1])
    # n = 100 of 400: 0.5 - 0.5 cos(2 pi 100 / 399)
    assert hanning[100] == pytest.approx(0.5 - 0.5 * math.cos(2 * math.pi * 100 / 399), abs=1e-7)
    assert povey[100] == pytest.approx(hanning[100] ** 0.85, abs=1e-7)


def test_mel_banks_span_20_hz_to_nyquist_without_the_nyquist_bin():
    banks = KaldiFbank().banks
    assert banks.shape == (128, 257)
    np.testing.assert_allclose(banks.numpy(), kaldi_banks(128, 512, 16000, 20.0, 8000.0), atol=5e-5)
    assert torch.all(banks[:, -1] == 0)
    # high_freq <= 0 is an offset from Nyquist, as in Kaldi
    np.testing.assert_allclose(KaldiFbank(high_freq=-400.0).banks.numpy(),
                               kaldi_banks(128, 512, 16000, 20.0, 7600.0), atol=5e-5)


def test_frame_counts_snip_edges():
    frontend = KaldiFbank()
    assert [frontend.frames(n) for n in (160000, 399, 400, 559, 560)] == [998, 0, 1, 1, 2]
    assert frontend(torch.randn(1, 160000)).shape == (1, 1, 128, 998)


def test_silence_is_the_log_of_float32_eps():
    out = KaldiFbank(norm_mean=1.0, norm_std=2.0)(torch.zeros(1, 1, 560))
    assert out.shape == (1, 1, 128, 2)
    np.testing.assert_allclose(out.numpy(), (math.log(2.0 ** -23) - 1.0) / 2.0, atol=1e-6, rtol=0)


def test_bad_input_names_the_shape():
    with pytest.raises(FrontendInputError, match=r"KaldiFbank: waveform of 399 samples is shorter than one frame"):
        KaldiFbank()(torch.zeros(2, 399))
    with pytest.raises(FrontendInputError, match=r"expected a waveform batch \(B, n\) or \(B, 1, n\), got shape "
                                                 r"\(2, 2, 800\)"):
        KaldiFbank()(torch.zeros(2, 2, 800))
    with pytest.raises(ValueError, match="window must be 'povey' or 'hanning'"):
        KaldiFbank(window="hamming")
