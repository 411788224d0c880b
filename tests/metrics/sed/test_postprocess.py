"""Median filtering and threshold decoding."""
import numpy as np
import pytest
from scipy import ndimage

from datamodules.sed import DESED_CLASSES, MAESTRO_REAL_CLASSES
from metrics.sed.postprocess import (
    DESED_MEDIAN_WINDOWS,
    MAESTRO_MEDIAN_WINDOWS,
    decode_events,
    decode_thresholds,
    median_filter,
    preset_windows,
)
from metrics.sed.scores import ClipScores, SEDInputError


def test_published_windows():
    assert DESED_MEDIAN_WINDOWS == (3, 9, 9, 5, 5, 5, 9, 7, 11, 9)
    assert MAESTRO_MEDIAN_WINDOWS == (7, 3, 9, 13, 7, 1, 13, 3, 13, 7, 5, 5, 1, 13, 17, 13, 15)
    assert preset_windows("desed", ["Dog", "Speech"]) == (5, 11)
    assert preset_windows("dcase2024", list(DESED_CLASSES) + list(MAESTRO_REAL_CLASSES)) == (
        DESED_MEDIAN_WINDOWS + MAESTRO_MEDIAN_WINDOWS
    )
    with pytest.raises(ValueError, match="no window for classes \\['car'\\]"):
        preset_windows("desed", ["Dog", "car"])
    with pytest.raises(ValueError, match="unknown median-filter preset"):
        preset_windows("dcase2099", ["Dog"])


@pytest.mark.bad_input
def test_preset_without_a_window_for_custom_classes_is_one_line_naming_them_and_the_fix():
    with pytest.raises(SEDInputError) as err:
        preset_windows("dcase2024", ["Dog", "engine_hum", "Speech", "siren"])
    message = str(err.value)
    assert message == (
        "median-filter preset 'dcase2024' has no window for classes ['engine_hum', 'siren']; use a single window "
        "for every class (e.g. 5) or a per-class list of 4 windows in label-space order"
    )
    assert "\n" not in message


def test_median_filter_hand_case():
    x = np.array([0, 1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=float)
    scores = np.stack([x, x, x], axis=1)
    out = median_filter(scores, [1, 3, 5])
    np.testing.assert_array_equal(out[:, 0], x)
    # Window 3, edges reflected (the first and last values repeat): isolated 1 at frame 1 and 0 at frame 6 vanish.
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    # Window 5: frame 3 sees frames 1-5 [1, 0, 0, 1, 1] -> 1; frame 4 sees [0, 0, 1, 1, 0] -> 0.
    np.testing.assert_array_equal(out[:, 2], [0, 0, 0, 1, 0, 1, 1, 1, 1, 1])


def test_median_filter_matches_the_baseline_per_class_scipy_call():
    rng = np.random.default_rng(0)
    scores = rng.random((156, 10))
    expected = np.stack(
        [ndimage.median_filter(scores[:, [c]], (w, 1))[:, 0] for c, w in enumerate(DESED_MEDIAN_WINDOWS)], axis=1
    )
    np.testing.assert_array_equal(median_filter(scores, DESED_MEDIAN_WINDOWS), expected)


def test_median_filter_batched_equals_per_clip():
    rng = np.random.default_rng(1)
    batch = rng.random((3, 50, 4)).astype(np.float32)
    out = median_filter(batch, [3, 1, 7, 3])
    assert out.dtype == np.float32 and out.shape == batch.shape
    for b in range(3):
        np.testing.assert_array_equal(out[b], median_filter(batch[b], [3, 1, 7, 3]))
    with pytest.raises(ValueError, match="one per class"):
        median_filter(batch, [3, 3])


def test_decode_events_hand_case():
    timestamps = np.arange(9) * 0.5
    scores = np.array(
        [
            [0.1, 0.9],
            [0.6, 0.9],
            [0.7, 0.2],
            [0.5, 0.2],  # exactly the threshold: not active
            [0.9, 0.2],
            [0.2, 0.2],
            [0.2, 0.6],
            [0.8, 0.6],
        ]
    )
    clip = ClipScores(timestamps, scores, ("a", "b"))
    assert decode_events(clip, 0.5) == [
        (0.5, 1.5, "a"),
        (2.0, 2.5, "a"),
        (3.5, 4.0, "a"),
        (0.0, 1.0, "b"),
        (3.0, 4.0, "b"),
    ]
    assert decode_events(clip, 0.95) == []


def test_decode_thresholds_equals_per_clip_decoding():
    rng = np.random.default_rng(2)
    clips = {
        f"c{i}": ClipScores(np.arange(n + 1) * 0.04, median_filter(rng.random((n, 3)), 5), ("x", "y", "z"))
        for i, n in enumerate([40, 7, 1, 25])
    }
    thresholds = [0.2, 0.5, 0.8]
    tables = decode_thresholds(clips, thresholds).tables({c: c + ".wav" for c in clips})
    for threshold in thresholds:
        expected = sorted(
            (clip_id + ".wav", on, off, label)
            for clip_id, clip in clips.items()
            for on, off, label in decode_events(clip, threshold)
        )
        table = tables[threshold][["filename", "onset", "offset", "event_label"]]
        got = sorted(table.itertuples(index=False, name=None))
        assert got == expected
