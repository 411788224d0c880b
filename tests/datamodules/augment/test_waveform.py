"""Roll and Gain: properties on random batches."""
import pytest
import torch

from datamodules.augment.waveform import Gain, Roll


def test_roll_is_a_circular_shift_per_example_within_range():
    torch.manual_seed(0)
    x = torch.randn(16, 1, 200)
    out = Roll(max_shift=7).train()(x)
    for i in range(16):
        shifts = [s for s in range(-7, 8) if torch.equal(out[i], torch.roll(x[i], s, dims=-1))]
        assert len(shifts) == 1


def test_roll_draws_cover_both_ends():
    torch.manual_seed(0)
    x = torch.arange(50.0).repeat(400, 1)
    out = Roll(max_shift=3).train()(x)
    shifts = (-out[:, 0]) % 50  # out[0] = x[-shift]
    shifts = torch.where(shifts > 25, shifts - 50, shifts)
    assert set(shifts.long().tolist()) == {-3, -2, -1, 0, 1, 2, 3}


def test_roll_identity_cases():
    x = torch.randn(4, 100)
    assert Roll(0).train()(x) is x
    assert Roll(10).eval()(x) is x


def test_roll_preserves_content_and_shape_2d():
    x = torch.randn(5, 64)
    out = Roll(20).train()(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.sort(dim=-1).values, x.sort(dim=-1).values)


def test_gain_scales_each_example_within_range():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 100)
    out = Gain((-6.0, 3.0)).train()(x)
    ratio = out / x
    per_example = ratio[:, 0, 0]
    torch.testing.assert_close(ratio, per_example.view(-1, 1, 1).expand_as(ratio))
    gain_db = 20 * torch.log10(per_example)
    assert gain_db.min() >= -6.0 - 1e-4 and gain_db.max() <= 3.0 + 1e-4
    assert gain_db.std() > 1.0


def test_gain_symmetric_scalar_and_identities():
    gain = Gain(4.0)
    assert (gain.low, gain.high) == (-4.0, 4.0)
    x = torch.randn(3, 10)
    assert Gain(0.0).train()(x) is x
    assert Gain(6.0).eval()(x) is x
    torch.testing.assert_close(Gain((6.0, 6.0)).train()(x), x * 10 ** (6 / 20))


def test_gain_rejects_inverted_range():
    with pytest.raises(ValueError):
        Gain((3.0, -3.0))
