"""Frame targets of hand-picked events (boundaries, clipping) and the active-frame counts of the balanced sampler."""
import numpy as np
import pytest

from datamodules.sed.label_encoder import EventLabelEncoder
from datamodules.strong import StrongClipDataset, StrongClips, active_frame_counts


def _clips(per_clip):
    """StrongClips of (onset, offset, class) events per clip (no audio)."""
    flat = [e for events in per_clip for e in events]
    index = np.cumsum([0] + [len(events) for events in per_clip])
    n = len(per_clip)
    return StrongClips([], np.zeros(n, np.int64), np.arange(n), [f"c{i}" for i in range(n)],
                       np.array([e[0] for e in flat], float), np.array([e[1] for e in flat], float),
                       np.array([e[2] for e in flat], np.int64), index)


def _active(targets, c):
    return np.flatnonzero(targets[c]).tolist()


def test_frame_targets_of_hand_picked_events():
    encoder = EventLabelEncoder(["a", "b", "c"], 10.0, 0.04, 250)  # 250 frames of 40 ms
    clips = _clips([[(0.0, 0.04, 0), (0.2, 0.4, 1), (0.05, 0.05, 2), (0.119, 0.121, 2), (9.99, 12.0, 0)]])
    targets = StrongClipDataset([], clips, encoder, 16000).targets(0)
    assert targets.shape == (3, 250) and targets.dtype == np.float32
    assert _active(targets, 0) == [0, 249]  # [0, 40 ms) is frame 0 only; the event past 10 s is cut to frame 249
    assert _active(targets, 1) == [5, 6, 7, 8, 9]  # starts on boundary 5, ends on boundary 10 (not reaching frame 10)
    # a zero-length event inside frame 1 marks it (floor/ceil, as PretrainedSED); 0.119-0.121 s crosses into frame 3
    assert _active(targets, 2) == [1, 2, 3]
    assert set(np.unique(targets)) == {0.0, 1.0}


@pytest.mark.parametrize("frames, clip_seconds", [(250, 10.0), (100, 4.0), (156, 10.0)])
def test_active_frame_counts_are_the_summed_targets(frames, clip_seconds):
    rng = np.random.default_rng(frames)
    encoder = EventLabelEncoder(["a", "b", "c", "d"], clip_seconds, clip_seconds / frames, frames)
    per_clip = []
    for _ in range(40):
        events = []
        for _ in range(int(rng.integers(0, 7))):
            onset = round(float(rng.uniform(-0.1, clip_seconds)), 3)
            offset = round(onset + float(rng.choice([0.0, 0.01, 0.04, rng.uniform(0, 3)])), 3)
            events.append((max(onset, 0.0), offset, int(rng.integers(4))))  # same-class events often share a frame
        per_clip.append(events)
    clips = _clips(per_clip)
    dataset = StrongClipDataset([], clips, encoder, 16000)
    expected = np.stack([dataset.targets(i).sum(axis=1) for i in range(len(per_clip))])
    counts = active_frame_counts(clips, encoder)
    assert counts.dtype == np.uint8 and counts.shape == (40, 4)
    np.testing.assert_array_equal(counts, expected)
    assert expected.sum() > 0


def test_counts_of_two_events_sharing_a_frame_count_it_once():
    encoder = EventLabelEncoder(["a", "b"], 10.0, 0.04, 250)
    clips = _clips([[(0.0, 0.41, 0), (0.43, 0.5, 0), (0.0, 0.08, 1)], []])
    # class a: frames 0-10 and 10-12 -> 13 frames (frame 10 once); class b: frames 0, 1
    np.testing.assert_array_equal(active_frame_counts(clips, encoder), [[13, 2], [0, 0]])
