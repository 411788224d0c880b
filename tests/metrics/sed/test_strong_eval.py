"""AudioSet-strong evaluation (metrics/sed/strong_eval.py) against the class-wise PSDS and pAUROC functions."""
import numpy as np
import pandas as pd
import pytest

from metrics.sed import ClipScores, PSDS1, ReferenceSet, psds1_macro, threshold_independent_psds
from metrics.sed.pauc import segment_pauroc
from metrics.sed.strong_eval import FrameScoreTable, evaluate_frame_scores

CLASSES = ("Bark", "Speech", "Unscored")
TIMESTAMPS = np.linspace(0.0, 10.0, 251)


def _data():
    rng = np.random.default_rng(0)
    names = ["a.mp3", "b.mp3", "c.mp3", "d.mp3"]
    probs = rng.uniform(0, 0.4, size=(4, 250, 3)).astype(np.float16)
    probs[0, 50:100, 0] = 0.9  # a hit of Bark in clip a
    probs[1, 120:200, 1] = 0.8  # a hit of Speech in clip b
    ground_truth = pd.DataFrame([("a.mp3", 2.0, 4.0, "Bark"), ("b.mp3", 5.0, 8.0, "Speech"),
                                 ("c.mp3", 1.0, 2.0, "Speech"), ("d.mp3", 6.0, 7.0, "Bark")],
                                columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame([(n, 10.0) for n in names], columns=["filename", "duration"])
    return names, probs, ground_truth, durations


def test_values_equal_the_metric_functions_on_the_same_scores():
    names, probs, ground_truth, durations = _data()
    got = evaluate_frame_scores(names, probs, CLASSES, ground_truth, durations, TIMESTAMPS, median_window=1)
    # the ground truth has Bark and Speech: the unscored-by-labels class is left out, as PretrainedSED evaluates
    scores = {n[:-4]: ClipScores(TIMESTAMPS, probs[i][:, :2].astype(np.float64), CLASSES[:2])
              for i, n in enumerate(names)}
    assert got["psds1"] == pytest.approx(threshold_independent_psds(ReferenceSet(ground_truth, durations), scores,
                                                                    PSDS1))
    assert got["psds1_macro"] == pytest.approx(psds1_macro(scores, ground_truth, durations))
    assert got["pauroc"] == pytest.approx(segment_pauroc(scores, ground_truth, durations, list(CLASSES[:2]))["mean"])
    assert 0.0 < got["psds1_macro"] <= 1.0


def test_only_scored_clips_are_evaluated():
    names, probs, ground_truth, durations = _data()
    got = evaluate_frame_scores(names[:2], probs[:2], CLASSES, ground_truth, durations, TIMESTAMPS, median_window=1)
    expected = evaluate_frame_scores(names[:2], probs[:2], CLASSES, ground_truth[:2], durations[:2], TIMESTAMPS,
                                     median_window=1)
    assert got == expected


def test_score_table_reads_one_clip_at_a_time():
    names, probs, *_ = _data()
    table = FrameScoreTable(names, probs, CLASSES, TIMESTAMPS)
    assert list(table) == ["a", "b", "c", "d"] and len(table) == 4
    np.testing.assert_array_equal(table["c"].scores, probs[2].astype(np.float64))
    with pytest.raises(ValueError, match=r"scores must be \(4, frames, 2\)"):
        FrameScoreTable(names, probs, CLASSES[:2], TIMESTAMPS)
