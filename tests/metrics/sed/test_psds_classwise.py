"""Per-class and macro-averaged PSDS, threshold-independent as sed_scores_eval (PretrainedSED's AudioSet metric)."""
import numpy as np
import pandas as pd
import pytest

from metrics.sed import psds_classwise, psds_counts, psds_deltas
from metrics.sed.psds import PSDS1, PSDS2, PSDS_THRESHOLDS, PSDSParams, ReferenceSet
from metrics.sed.psds_classwise import class_psds, psds1_macro, threshold_independent_psds
from metrics.sed.scores import ClipScores


def _two_class_case():
    """Two 10 s clips of 1 s frames. Cat: events a [2, 5), b [6, 8); Dog: event a [0, 10).

    Cat scores (by decreasing threshold): a [2, 5) at 0.9 (hit), b [1, 2) at 0.8 and a [8, 9) at 0.7 (false alarms),
    b [6, 8) at 0.5 (hit), 0.1 elsewhere (below 0.1 each clip is one detection, too long for the DTC). Dog: 0.6 in
    a (hit), 0.3 in b (false alarm).
    """
    ground_truth = pd.DataFrame(
        [("a.wav", 2.0, 5.0, "Cat"), ("b.wav", 6.0, 8.0, "Cat"), ("a.wav", 0.0, 10.0, "Dog")],
        columns=["filename", "onset", "offset", "event_label"],
    )
    durations = pd.DataFrame([("a.wav", 10.0), ("b.wav", 10.0)], columns=["filename", "duration"])
    cat_a, cat_b = np.full(10, 0.1), np.full(10, 0.1)
    cat_a[2:5], cat_a[8], cat_b[1], cat_b[6:8] = 0.9, 0.7, 0.8, 0.5
    clips = {
        "a": ClipScores(np.arange(11.0), np.stack([cat_a, np.full(10, 0.6)], axis=1), ("Cat", "Dog")),
        "b": ClipScores(np.arange(11.0), np.stack([cat_b, np.full(10, 0.3)], axis=1), ("Cat", "Dog")),
    }
    return clips, ground_truth, durations


def test_class_psds_hand_case():
    clips, ground_truth, durations = _two_class_case()
    reference = ReferenceSet(ground_truth, durations)
    wide = PSDSParams(0.7, 0.7, 0.3, alpha_ct=0.0, alpha_st=1.0, max_efpr=540.0)
    # One false alarm in 20 s is 180 per hour. Cat, every threshold: TPR 0.5 from eFPR 0 (0.9), still 0.5 at 180
    # (0.8) and 360 (0.7), 1.0 at 360 (0.5): area 0.5 * 360 + 1.0 * 180 over 540. Dog: TPR 1 at eFPR 0.
    assert class_psds(reference, clips, wide) == pytest.approx({"Cat": 2 / 3, "Dog": 1.0}, abs=1e-12)
    assert class_psds(reference, clips, PSDS1) == pytest.approx({"Cat": 0.5, "Dog": 1.0}, abs=1e-12)
    assert psds1_macro(clips, ground_truth, durations) == pytest.approx(0.75, abs=1e-12)
    # Across classes: TPRs (0.5, 1) up to 360, then (1, 1): mean 0.75 then 1; minus their std 0.25 then 0.
    mean_only = PSDSParams(0.7, 0.7, 0.3, alpha_ct=0.0, alpha_st=0.0, max_efpr=540.0)
    assert threshold_independent_psds(reference, clips, mean_only) == pytest.approx((0.75 * 360 + 180) / 540)
    assert threshold_independent_psds(reference, clips, wide) == pytest.approx((0.5 * 360 + 180) / 540)
    assert threshold_independent_psds(reference, clips, PSDS1) == pytest.approx(0.5)
    # Thresholds 0.5 and 0.7, exceeded (psds_eval): Cat TPR 0.5 at 360 (0.5: the 0.5 frames are off) and at 180.
    assert class_psds(reference, clips, wide, [0.5, 0.7]) == pytest.approx({"Cat": 1 / 3, "Dog": 1.0}, abs=1e-12)
    assert psds1_macro(clips, ground_truth, durations, [0.5, 0.7]) == pytest.approx(0.5, abs=1e-12)


def test_threshold_independent_class_psds_equals_a_grid_between_every_score(make_set):
    # Scores on a 0.01 grid: thresholds halfway between them reach every operating point, exceeded or reached alike.
    clips, ground_truth, durations = make_set(12, n_clips=12, class_names=("Cat", "Dog", "Speech"))
    clips = {clip_id: clip.with_scores(np.round(clip.scores, 2)) for clip_id, clip in clips.items()}
    reference = ReferenceSet(ground_truth, durations)
    params = PSDSParams(0.5, 0.5, 0.3, alpha_ct=0.0, alpha_st=0.0, max_efpr=300.0)
    every_score = class_psds(reference, clips, params)
    assert every_score == pytest.approx(class_psds(reference, clips, params, np.arange(-0.005, 1.0, 0.01)), abs=1e-12)
    assert every_score != pytest.approx(class_psds(reference, clips, params, PSDS_THRESHOLDS[::5]), abs=1e-3)


def test_class_psds_ignores_only_thresholds_beyond_max_efpr(make_set, monkeypatch):
    clips, ground_truth, durations = make_set(13, n_clips=30, class_names=("Cat", "Dog", "Speech"))
    reference = ReferenceSet(ground_truth, durations)
    params = PSDSParams(0.7, 0.7, 0.3, alpha_ct=0.0, alpha_st=1.0, max_efpr=30.0)
    # 30 false positives per hour of 271 s allow 2.25; with one of margin, each class skips the thresholds at or
    # below the fourth-highest peak among the clips without it.
    floors = psds_classwise.false_positive_floors(reference, clips, params.max_efpr)
    assert np.isfinite(floors).all()
    pruned = class_psds(reference, clips, params)
    monkeypatch.setattr(psds_classwise, "false_positive_floors", lambda *args: np.full(len(floors), -np.inf))
    assert class_psds(reference, clips, params) == pytest.approx(pruned, abs=1e-12)
    assert 0.0 < min(pruned.values()) < 1.0


def test_summing_score_deltas_early_changes_nothing(make_set, monkeypatch):
    clips, ground_truth, durations = make_set(15, n_clips=10, class_names=("Cat", "Dog", "Speech"))
    reference = ReferenceSet(ground_truth, durations)
    expected = class_psds(reference, clips, PSDS1)
    monkeypatch.setattr(psds_deltas, "_MIN_DELTAS_TO_SUM", 1)
    monkeypatch.setattr(psds_counts, "_MAX_SCORES_PER_BATCH", 1)  # one clip per batch, summed after each
    assert class_psds(reference, clips, PSDS1) == pytest.approx(expected, abs=1e-12)


def test_class_psds_rejects_cross_triggers(make_set):
    clips, ground_truth, durations = make_set(14, n_clips=4)
    with pytest.raises(ValueError, match="threshold-independent PSDS are defined without cross-triggers"):
        class_psds(ReferenceSet(ground_truth, durations), clips, PSDS2)
