"""ATST-F mel against a float64 frame-loop reference, and its batch- vs clip-scoped top_db floor."""
import numpy as np
import pytest
import torch

from models import create_frontend
from models.frontends import ATSTMel, FrontendInputError
from tests.models.frontends.references import atst_mel, chirp_and_noise, htk_banks

DB_SPAN = 50.6842 + 79.6482  # the fixed min-max constants


@pytest.mark.parametrize("scope", ["batch", "clip"])
def test_atst_mel_equals_formula(scope):
    # the second clip sits ~60 dB below the first, so the batch floor cuts into it and the clip floor does not
    waves = [chirp_and_noise(3200, 16000, seed=0), 1e-3 * chirp_and_noise(3200, 16000, seed=1)]
    out = ATSTMel(top_db_scope=scope)(torch.from_numpy(np.stack(waves)).float())
    assert out.shape == (2, 1, 64, 21)
    np.testing.assert_allclose(out[:, 0].numpy(), atst_mel(waves, scope), atol=1e-5, rtol=0)


def test_batch_scope_lets_a_loud_batch_mate_change_a_quiet_clip_and_clip_scope_does_not():
    torch.manual_seed(0)
    loud = torch.sin(2 * torch.pi * 1000 * torch.arange(3200) / 16000)
    quiet = 1e-3 * torch.randn(3200)
    batch_scope, clip_scope = ATSTMel(top_db_scope="batch"), ATSTMel(top_db_scope="clip")
    alone, batched = batch_scope(quiet[None])[0], batch_scope(torch.stack([loud, quiet]))
    assert float((alone - batched[1]).abs().max()) > 0.1
    # the quiet clip is floored 80 dB below the loud clip's peak
    assert float(batched[1].min()) == pytest.approx(float(batched[0].max()) - 2 * 80.0 / DB_SPAN, abs=1e-5)
    np.testing.assert_allclose(clip_scope(torch.stack([loud, quiet]))[1].numpy(), clip_scope(quiet[None])[0].numpy(),
                               atol=1e-6, rtol=0)
    # a single clip has no batch mates: both scopes agree
    assert torch.equal(alone, clip_scope(quiet[None])[0])


def test_registered_defaults_frames_and_no_state():
    frontend = create_frontend("atst_mel")
    assert isinstance(frontend, ATSTMel) and frontend.top_db_scope == "batch"
    assert frontend.frames(160000) == 1001
    assert frontend(torch.randn(1, 16000)).shape == (1, 1, 64, 101)
    assert frontend.state_dict() == {}
    np.testing.assert_allclose(frontend.power_mel.banks.numpy(), htk_banks(64, 1024, 16000, 60.0, 7800.0), atol=1e-5)
    assert torch.equal(frontend.power_mel.window, torch.hann_window(1024, periodic=True))


def test_db_clamp_and_fixed_min_max():
    # silence: 10 log10(1e-10) = -100 dB, floored at its own max - 80 (= -100), clamped to -50 dB
    out = ATSTMel()(torch.zeros(1, 1600))
    assert out.shape == (1, 1, 64, 11)
    np.testing.assert_allclose(out.numpy(), (-50.0 + 79.6482) / DB_SPAN * 2 - 1, atol=1e-6, rtol=0)


def test_bad_input():
    with pytest.raises(FrontendInputError, match="ATSTMel: waveform of 512 samples is too short"):
        ATSTMel()(torch.zeros(1, 512))
    with pytest.raises(ValueError, match="top_db_scope must be 'batch' or 'clip'"):
        ATSTMel(top_db_scope="sample")
