"""Frame shift: audio, spectrogram, targets and teacher outputs move together by whole target frames."""
import pytest
import torch

from datamodules.augment.frame_shift import FrameShift, roll_rows, shift_by_frames
from datamodules.augment.mixing import AugmentInputError


def _one_hot_batch(batch=6, frames=10, per_frame=8, classes=3):
    """Waveforms with one spike inside frame f_b, targets one-hot at (c_b, f_b), a teacher at twice the rate."""
    frame = torch.randint(frames, (batch,))
    offset = torch.randint(per_frame, (batch,))
    cls = torch.randint(classes, (batch,))
    wave = torch.zeros(batch, frames * per_frame)
    target = torch.zeros(batch, classes, frames)
    teacher = torch.zeros(batch, classes, 2 * frames)
    rows = torch.arange(batch)
    wave[rows, frame * per_frame + offset] = 1.0
    target[rows, cls, frame] = 1.0
    teacher[rows, cls, 2 * frame] = 1.0
    return wave, target, teacher, frame, offset, cls


def test_spike_target_and_teacher_move_by_the_same_frames():
    torch.manual_seed(0)
    wave, target, teacher, frame, offset, cls = _one_hot_batch()
    out, (out_target, out_teacher, none), shifts = FrameShift(shift_std=0.3).train()(wave, target, teacher, None)
    assert none is None and shifts.dtype == torch.long and (shifts != 0).sum() >= 4
    moved = (frame + shifts) % 10
    rows = torch.arange(6)
    expected_wave = torch.zeros_like(wave)
    expected_wave[rows, moved * 8 + offset] = 1.0
    expected_target = torch.zeros_like(target)
    expected_target[rows, cls, moved] = 1.0
    expected_teacher = torch.zeros_like(teacher)
    expected_teacher[rows, cls, 2 * moved] = 1.0
    assert torch.equal(out, expected_wave)
    assert torch.equal(out_target, expected_target)
    assert torch.equal(out_teacher, expected_teacher)


def test_spectrogram_frames_follow_targets():
    torch.manual_seed(1)
    spec = torch.randn(4, 1, 5, 40)  # 4 spectrogram frames per target frame
    target = torch.rand(4, 2, 10)
    out, (out_target,), shifts = FrameShift(shift_std=0.5).train()(spec, target)
    for b in range(4):
        k = int(shifts[b])
        assert torch.equal(out[b], torch.roll(spec[b], 4 * k, dims=-1))
        assert torch.equal(out_target[b], torch.roll(target[b], k, dims=-1))


def test_shift_distribution_is_gaussian_with_the_given_std_in_target_frames():
    torch.manual_seed(0)
    target = torch.zeros(4000, 1, 250)
    _, _, shifts = FrameShift(shift_std=0.125).train()(torch.zeros(4000, 250), target)
    assert abs(shifts.float().std().item() - 31.25) < 1.5  # 0.125 * 250 frames
    assert abs(shifts.float().mean().item()) < 1.5


def test_lengths_that_are_not_a_multiple_round_to_the_nearest_step():
    x = torch.arange(1001.0).repeat(3, 1)
    out = shift_by_frames(x, torch.tensor([1, -2, 125]), 250)
    # 1001 / 250 = 4.004 steps per frame: 4, -8 and round(500.5) = 500 (half to even)
    for row, steps in enumerate((4, -8, 500)):
        assert torch.equal(out[row], torch.roll(x[row], steps))


def test_roll_rows_matches_torch_roll_per_row_with_large_and_negative_shifts():
    x = torch.randn(3, 2, 7)
    shifts = torch.tensor([-9, 0, 15])
    out = roll_rows(x, shifts)
    for b in range(3):
        assert torch.equal(out[b], torch.roll(x[b], int(shifts[b]), dims=-1))


def test_identity_cases_keep_the_given_tensors():
    wave, target = torch.randn(2, 80), torch.rand(2, 3, 10)
    for module in (FrameShift(0.2).eval(), FrameShift(0.2, p=0.0).train(), FrameShift(0.0).train()):
        out, (out_target,), shifts = module(wave, target)
        assert out is wave and out_target is target and shifts is None


def test_same_seed_same_shift_and_p_skips_batches():
    wave, target = torch.randn(8, 160), torch.rand(8, 2, 20)
    torch.manual_seed(3)
    first = FrameShift(0.3).train()(wave, target)
    torch.manual_seed(3)
    second = FrameShift(0.3).train()(wave, target)
    assert torch.equal(first[0], second[0]) and torch.equal(first[2], second[2])
    torch.manual_seed(0)
    module = FrameShift(0.3, p=0.25).train()
    applied = sum(module(wave, target)[2] is not None for _ in range(400))
    assert 70 < applied < 130


def test_bad_shapes_raise_one_clear_error():
    with pytest.raises(AugmentInputError, match=r"expected 4 rows first, got shape \(3, 2, 10\)"):
        FrameShift().train()(torch.randn(4, 80), torch.rand(4, 2, 10), torch.rand(3, 2, 10))
    with pytest.raises(AugmentInputError, match="frames\\) targets"):
        FrameShift().train()(torch.randn(4, 80), torch.rand(4))
    with pytest.raises(ValueError):
        FrameShift(shift_std=-0.1)
