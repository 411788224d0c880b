"""Event tables <-> frame targets."""
import numpy as np
import pandas as pd
import pytest

from datamodules.sed import DESED_CLASSES, EventLabelEncoder, active_runs


def test_baseline_frame_grid():
    encoder = EventLabelEncoder.from_stft(DESED_CLASSES, 10.0, sample_rate=16000, hop_length=256, pooling=4)
    assert encoder.n_frames == 156 and encoder.frame_hop == pytest.approx(0.064)
    assert encoder.timestamps[-1] == pytest.approx(9.984)
    assert EventLabelEncoder(DESED_CLASSES, 10.0, frame_hop=0.04).n_frames == 250
    assert EventLabelEncoder.from_stft(DESED_CLASSES, 10.0, 16000, 160, 4).n_frames == 250


def test_frame_time_conversions_clip():
    encoder = EventLabelEncoder(["a"], clip_duration=10.0, frame_hop=0.064)
    np.testing.assert_allclose(encoder.frame_to_time([0, 10, 1000]), [0.0, 0.64, 10.0])
    np.testing.assert_allclose(encoder.time_to_frame([-1.0, 0.64, 20.0]), [0.0, 10.0, 156.0])


@pytest.mark.parametrize("frame_hop", [0.064, 0.04, 0.02])
def test_round_trip_within_one_frame(frame_hop):
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    encoder = EventLabelEncoder(classes, clip_duration=10.0, frame_hop=frame_hop)
    end = encoder.timestamps[-1]
    for _ in range(20):
        events = []
        for label in classes:
            t = rng.uniform(0, 1)
            while True:
                length = rng.uniform(0.05, 3.0)
                if t + length > end:
                    break
                events.append((t, t + length, label))
                t += length + rng.uniform(2.5 * frame_hop, 2.0)  # gaps of more than one frame stay gaps
        decoded = encoder.decode_strong(encoder.encode_strong(events) > 0.5)
        assert len(decoded) == len(events)
        for (onset, offset, label), (d_on, d_off, d_label) in zip(sorted(events, key=lambda e: (e[2], e[0])), decoded):
            assert d_label == label
            assert onset - frame_hop < d_on <= onset + 1e-9
            assert offset - 1e-9 <= d_off < offset + frame_hop


def test_events_on_frame_boundaries_are_exact():
    encoder = EventLabelEncoder(["a"], clip_duration=10.0, frame_hop=0.064)
    targets = encoder.encode_strong([(0.192, 0.64, "a")])  # 0.192 / 0.064 is 2.9999999999999996 in floats
    assert np.flatnonzero(targets[:, 0]).tolist() == list(range(3, 10))
    assert encoder.decode_strong(targets > 0) == [(pytest.approx(0.192), pytest.approx(0.64), "a")]


def test_soft_confidences_go_into_the_targets():
    encoder = EventLabelEncoder(["car", "footsteps"], clip_duration=10.0, frame_hop=1.0)
    table = pd.DataFrame(
        [
            ("x.wav", 1.0, 3.0, "car", 0.7),
            ("x.wav", 2.0, 5.0, "car", 0.4),  # overlap keeps the larger confidence
            ("x.wav", 6.5, 7.2, "footsteps", 0.25),
        ],
        columns=["filename", "onset", "offset", "event_label", "confidence"],
    )
    targets = encoder.encode_strong(table)
    assert targets.dtype == np.float32 and targets.shape == (10, 2)
    np.testing.assert_allclose(targets[:, 0], [0, 0.7, 0.7, 0.4, 0.4, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(targets[:, 1], [0, 0, 0, 0, 0, 0, 0.25, 0.25, 0, 0])
    np.testing.assert_allclose(encoder.encode_strong([(1.0, 2.0, "car", 0.9)])[:, 0], [0, 0.9] + [0] * 8)


def test_clip_without_events_and_bad_labels():
    encoder = EventLabelEncoder(["a", "b"], clip_duration=10.0, frame_hop=0.5)
    empty = pd.DataFrame([("y.wav", np.nan, np.nan, np.nan)], columns=["filename", "onset", "offset", "event_label"])
    assert not encoder.encode_strong(empty).any()
    with pytest.raises(ValueError, match="unknown event label 'zebra'"):
        encoder.encode_strong([(0.0, 1.0, "zebra")])
    with pytest.raises(ValueError, match="lacks columns \\['offset'\\]"):
        encoder.encode_strong(pd.DataFrame({"onset": [0.0], "event_label": ["a"]}))


def test_weak_labels():
    encoder = EventLabelEncoder(DESED_CLASSES)
    target = encoder.encode_weak("Dog,Speech")
    assert target.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    np.testing.assert_array_equal(encoder.encode_weak(["Speech", "Dog"]), target)
    assert not encoder.encode_weak("").any()
    assert encoder.decode_weak(target) == ["Dog", "Speech"]


def test_state_dict_round_trip():
    encoder = EventLabelEncoder(["a", "b"], clip_duration=5.0, frame_hop=0.04, n_frames=120)
    clone = EventLabelEncoder.from_state_dict(encoder.state_dict())
    assert clone.state_dict() == encoder.state_dict()


def test_active_runs():
    rows, starts, ends = active_runs(np.array([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]], dtype=bool))
    assert list(zip(rows, starts, ends)) == [(0, 0, 2), (0, 3, 4), (2, 1, 4)]
    rows, starts, ends = active_runs(np.array([False, True]))
    assert (rows.tolist(), starts.tolist(), ends.tolist()) == ([0], [1], [2])
