"""SED predictions: median filter, threshold and decoding of one clip's frame probabilities into events."""
import numpy as np
import pytest

from callbacks.sed_prediction_writer import SEDPredictionWriter, detect_events

TIMES = np.round(np.arange(11) * 0.1, 3)  # 10 frames of 100 ms


def _strong() -> np.ndarray:
    strong = np.full((2, 10), 0.2)  # (classes, frames), as predict_step returns them
    strong[0, 2:5] = 0.9  # an event over frames 2-4
    strong[0, 8] = 0.9  # a one-frame spike
    return strong


def test_events_are_runs_of_frames_above_the_threshold():
    events = detect_events("x.wav", _strong(), TIMES, ("a", "b"), windows=1, threshold=0.5)
    assert [(n, round(on, 3), round(off, 3), c) for n, on, off, c in events] == [
        ("x.wav", 0.2, 0.5, "a"), ("x.wav", 0.8, 0.9, "a")]


def test_the_median_filter_removes_the_spike_and_keeps_the_event():
    events = detect_events("x.wav", _strong(), TIMES, ("a", "b"), windows=[3, 1], threshold=0.5)
    assert [(round(on, 3), round(off, 3), c) for _, on, off, c in events] == [(0.2, 0.5, "a")]
    assert detect_events("x.wav", _strong(), TIMES, ("a", "b"), windows=3, threshold=0.95) == []


def test_threshold_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\), got 1.0"):
        SEDPredictionWriter(threshold=1.0)
