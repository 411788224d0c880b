"""Frequency warp: a random band of bins resized to the full axis, against a hand-written bicubic resampler."""
import math

import pytest
import torch

from datamodules.augment.freq_warp import FrequencyWarp, warp_frequency
from datamodules.augment.mixing import AugmentInputError


def _cubic(d, a=-0.75):
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0


def _resize_by_hand(band, size):
    """1-D cubic convolution (a = -0.75), corner-aligned, edge samples repeated: (h, T) -> (size, T)."""
    h = band.shape[0]
    out = torch.zeros(size, band.shape[1], dtype=torch.float64)
    for j in range(size):
        src = j * (h - 1) / (size - 1)
        i0 = math.floor(src)
        t = src - i0
        for k in range(-1, 3):
            out[j] += _cubic(t - k) * band[min(max(i0 + k, 0), h - 1)].double()
    return out.float()


def test_warp_equals_hand_written_bicubic_on_the_drawn_band():
    x = torch.randn(3, 1, 20, 6)
    module = FrequencyWarp(p=1.0).train()
    torch.manual_seed(5)
    out = module(x)
    torch.manual_seed(5)
    assert float(torch.rand(())) < 1.0  # replay the coin, then the documented draws
    start, height, canvas = module.draw(20)
    assert canvas == 20 and 12 <= height < 20 and 0 <= start <= 20 - height
    for b in range(3):
        expected = _resize_by_hand(x[b, 0, start:start + height], 20)
        torch.testing.assert_close(out[b, 0], expected, rtol=1e-5, atol=1e-5)


def test_scale_one_is_identity_and_shape_dtype_are_kept():
    x = torch.randn(2, 1, 16, 9)
    torch.manual_seed(0)
    assert FrequencyWarp(p=1.0, freq_scale=(1.0, 1.0)).train()(x) is x
    assert FrequencyWarp(p=0.0).train()(x) is x
    assert FrequencyWarp(p=1.0).eval()(x) is x
    torch.manual_seed(1)
    half = FrequencyWarp(p=1.0).train()(x.half())
    assert half.shape == x.shape and half.dtype == torch.float16
    torch.testing.assert_close(warp_frequency(x, 0, 16, 16), x)


def test_time_axis_is_untouched():
    x = torch.randn(2, 1, 1, 30).expand(2, 1, 24, 30).contiguous()  # constant over frequency
    torch.manual_seed(2)
    torch.testing.assert_close(FrequencyWarp(p=1.0, freq_scale=(0.5, 0.7)).train()(x), x)


def test_draws_cover_the_documented_ranges():
    module = FrequencyWarp(freq_scale=(0.6, 1.0))
    torch.manual_seed(0)
    draws = [module.draw(128) for _ in range(300)]
    heights = [h for _, h, _ in draws]
    assert min(heights) >= 76 and max(heights) <= 128 and max(heights) - min(heights) > 40  # int(0.6 * 128) = 76
    assert all(0 <= s <= 128 - h for s, h, _ in draws)


def test_squeeze_on_a_larger_canvas_brings_in_the_padding():
    x = torch.ones(1, 1, 12, 4)
    torch.manual_seed(0)
    out = FrequencyWarp(p=1.0, freq_scale=(1.5, 1.5), canvas_scale=1.5, pad_value=-1.0).train()(x)
    assert out.shape == x.shape
    # the 18-bin canvas (3 padding bins each side) is squeezed into 12: the outer bins are padding again
    assert out[0, 0, 0, 0] == -1.0 and out[0, 0, -1, 0] == -1.0
    torch.testing.assert_close(out[0, 0, 4:8], torch.ones(4, 4))


def test_same_seed_same_output_and_bad_input():
    x = torch.randn(2, 1, 32, 5)
    torch.manual_seed(4)
    first = FrequencyWarp(p=1.0).train()(x)
    torch.manual_seed(4)
    assert torch.equal(first, FrequencyWarp(p=1.0).train()(x))
    with pytest.raises(AugmentInputError, match=r"expected \(B, C, F, T\) features, got shape \(32, 5\)"):
        FrequencyWarp(p=1.0).train()(torch.randn(32, 5))
    with pytest.raises(ValueError):
        FrequencyWarp(freq_scale=(0.8, 0.6))
