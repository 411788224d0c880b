"""The CP-JKU mel variants of fPaSST and PaSST-S against a float64 reference; EfficientAT's defaults unchanged."""
import math

import numpy as np
import pytest
import torch

from models import create_frontend
from models.frontends import EfficientATMel
from tests.models.frontends.references import chirp_and_noise, cpjku_mel, hann

VARIANTS = {  # name: (sample_rate, win_length, hop, n_fft, eval fmax, periodic window, log floor)
    "fpasst_mel": (16000, 400, 160, 512, 7000.0, True, 1e-7),
    "passt_mel": (32000, 800, 320, 1024, 15000.0, False, None),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_equals_formula(name):
    sample_rate, win, hop, n_fft, fmax, periodic, log_floor = VARIANTS[name]
    # 0.2 s; the second clip is 40 dB quieter, so fPaSST's floor and PaSST's offset shape its quiet bands differently
    waves = np.stack([chirp_and_noise(sample_rate // 5, sample_rate, seed=0),
                      0.01 * chirp_and_noise(sample_rate // 5, sample_rate, seed=1)])
    frontend = create_frontend(name).eval()
    out = frontend(torch.from_numpy(waves).float())
    assert out.shape == (2, 1, 128, 20)
    expected = np.stack([cpjku_mel(w, sample_rate, win, hop, n_fft, fmax, periodic, log_floor) for w in waves])
    np.testing.assert_allclose(out[:, 0].numpy(), expected, atol=1e-4, rtol=0)


def test_variant_settings_windows_and_frames():
    fpasst, passt = create_frontend("fpasst_mel"), create_frontend("passt_mel")
    assert (fpasst.fmin, fpasst.fmax, passt.fmin, passt.fmax) == (0.0, 7000.0, 0.0, 15000.0)
    np.testing.assert_allclose(fpasst.window.double().numpy(), hann(400, periodic=True), atol=1e-6)
    np.testing.assert_allclose(passt.window.double().numpy(), hann(800, periodic=False), atol=1e-6)
    assert fpasst.frames(160000) == 1000 and passt.frames(320000) == 1000
    assert fpasst.eval()(torch.randn(1, 160000)).shape == (1, 1, 128, 1000)
    assert fpasst.state_dict() == {} and passt.state_dict() == {}


def test_log_floor_versus_offset_on_silence():
    silence = torch.zeros(1, 3200)
    floor = create_frontend("fpasst_mel").eval()(silence)
    offset = create_frontend("passt_mel").eval()(silence)
    np.testing.assert_allclose(floor.numpy(), (math.log(1e-7) + 4.5) / 5.0, rtol=1e-6)
    np.testing.assert_allclose(offset.numpy(), (math.log(1e-5) + 4.5) / 5.0, rtol=1e-6)


def test_efficientat_defaults_keep_their_values_and_passt_mel_is_them():
    x = torch.from_numpy(chirp_and_noise(6400, 32000, seed=2)).float()[None]
    default = EfficientATMel().eval()(x)
    # pinned from EfficientATMel before the periodic_window / log_floor options existed
    pinned = {(0, 0): 0.605358, (10, 7): -0.259472, (64, 12): 0.613591, (127, 19): 1.540139}
    assert {k: round(float(default[0, 0, k[0], k[1]]), 6) for k in pinned} == pytest.approx(pinned, abs=2e-6)
    assert float(default.mean()) == pytest.approx(0.7356109, abs=1e-6)
    assert torch.equal(create_frontend("passt_mel").eval()(x), default)
    assert torch.equal(create_frontend("efficientat_mel").eval()(x), default)


def test_bad_log_floor():
    with pytest.raises(ValueError, match="log_floor must be > 0 or None, got 0.0"):
        EfficientATMel(log_floor=0.0)
