"""Device impulse response augmentation: loading, device selection, convolution."""
import numpy as np
import pytest
import soundfile as sf
import torch

from datamodules.augment.dir import DeviceImpulseResponse, convolve_truncated, find_impulse_responses


def test_unit_impulse_is_identity():
    x = torch.randn(6, 1, 500)
    dir_aug = DeviceImpulseResponse(impulse_responses=[torch.tensor([1.0, 0.0, 0.0])], p=1.0).train()
    out = dir_aug(x, ["a"] * 6)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


def test_other_devices_are_never_touched():
    torch.manual_seed(0)
    x = torch.randn(9, 300)
    devices = ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"]
    dir_aug = DeviceImpulseResponse(impulse_responses=[torch.tensor([0.5, -0.25, 0.1])], p=1.0).train()
    for _ in range(5):
        out = dir_aug(x, devices)
        assert torch.equal(out[1:], x[1:])
        assert not torch.allclose(out[0], x[0])


def test_integer_device_ids():
    x = torch.randn(4, 100)
    dir_aug = DeviceImpulseResponse(impulse_responses=[torch.tensor([0.0, 2.0])], p=1.0, target_device=0).train()
    out = dir_aug(x, torch.tensor([0, 3, 0, 1]))
    assert torch.equal(out[[1, 3]], x[[1, 3]])
    expected = torch.cat([torch.zeros(2, 1), 2 * x[[0, 2], :-1]], dim=1)  # delay 1, gain 2, truncated
    torch.testing.assert_close(out[[0, 2]], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError):
        DeviceImpulseResponse(impulse_responses=[torch.ones(1)], p=1.0, target_device="a").train()(
            x, torch.tensor([0, 1, 2, 3]))


def test_convolution_is_full_and_truncated():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((3, 400)), rng.standard_normal((3, 57))
    out = convolve_truncated(torch.from_numpy(x).float(), torch.from_numpy(h).float())
    expected = np.stack([np.convolve(x[i], h[i])[:400] for i in range(3)])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_probability_eval_mode_and_draws():
    x = torch.randn(2000, 64)
    dir_aug = DeviceImpulseResponse(impulse_responses=[torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])],
                                    p=0.3).train()
    torch.manual_seed(0)
    out = dir_aug(x, ["a"] * 2000)
    delay1 = torch.isclose(out[:, 1:], x[:, :-1], atol=1e-5).all(dim=1)
    delay2 = torch.isclose(out[:, 2:], x[:, :-2], atol=1e-5).all(dim=1)
    untouched = (out == x).all(dim=1)
    assert (delay1 | delay2 | untouched).all()
    assert 0.25 < 1 - untouched.float().mean() < 0.35
    assert abs(delay1.float().mean() - delay2.float().mean()) < 0.05  # uniform choice
    assert dir_aug.eval()(x, ["a"] * 2000) is x


def test_loads_sorted_resampled_wav_and_flac(tmp_path):
    (tmp_path / "sub").mkdir()
    impulse = np.zeros(441, dtype=np.float32)
    impulse[0] = 0.5
    sf.write(tmp_path / "sub" / "B.flac", np.zeros(480, dtype=np.float32), 48000)
    sf.write(tmp_path / "A.wav", impulse, 44100)
    (tmp_path / "notes.txt").write_text("not audio")
    paths = find_impulse_responses(str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["A.wav", "B.flac"]
    dir_aug = DeviceImpulseResponse(str(tmp_path), sample_rate=32000, p=1.0)
    assert dir_aug.num_responses == 2
    assert dir_aug.bank.shape == (2, 320)  # 10 ms at 32 kHz, whichever the source rate


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        DeviceImpulseResponse(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        DeviceImpulseResponse(str(tmp_path))
    with pytest.raises(ValueError):
        DeviceImpulseResponse()
