"""Native PSDS and intersection F1 against psds_eval 0.5.3."""
import numpy as np
import pandas as pd
import pytest

from metrics.sed.postprocess import decode_thresholds
from metrics.sed.psds import (
    F1_CRITERIA,
    PSDS1,
    PSDS2,
    PSDS_THRESHOLDS,
    PSDSParams,
    ReferenceSet,
    intersection_f1,
    psds,
    staircase_area,
)
from metrics.sed.scores import SEDInputError
from metrics.sed.toolkits import psds_eval_intersection_f1, psds_eval_psds

# Fewer operating points than the published 50 keep psds_eval (about 50 ms per point here) within the test budget.
FEW_THRESHOLDS = PSDS_THRESHOLDS[::4]


def test_thresholds_are_the_published_grid():
    assert len(PSDS_THRESHOLDS) == 50
    assert PSDS_THRESHOLDS[0] == 0.01 and PSDS_THRESHOLDS[1] == 0.03 and PSDS_THRESHOLDS[-1] == 0.99
    assert 0.5 not in PSDS_THRESHOLDS


def test_published_parameters():
    assert PSDS1 == PSDSParams(dtc=0.7, gtc=0.7, cttc=0.3, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
    assert PSDS2 == PSDSParams(dtc=0.1, gtc=0.1, cttc=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)
    assert (F1_CRITERIA.dtc, F1_CRITERIA.gtc) == (0.5, 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psds_from_scores_equals_psds_eval(make_set, seed):
    classes = ("a", "b", "c", "d", "e")[: 3 + seed]
    clips, ground_truth, durations = make_set(seed, n_clips=20 + 5 * seed, class_names=classes)
    decoded = decode_thresholds(clips, FEW_THRESHOLDS)
    tables = decoded.tables({c: c + ".wav" for c in clips})
    reference = ReferenceSet(ground_truth, durations)
    for params in (PSDS1, PSDS2):
        expected = psds_eval_psds(tables, ground_truth, durations, params)
        assert reference.psds(decoded, params) == pytest.approx(expected, abs=1e-6)
        assert reference.psds(clips, params, FEW_THRESHOLDS) == pytest.approx(expected, abs=1e-6)
        assert reference.psds(tables, params) == pytest.approx(expected, abs=1e-6)
        assert 0.0 < expected < 1.0


@pytest.mark.parametrize("seed", [3, 4])
def test_psds_from_detection_tables_equals_psds_eval(make_set, make_tables, seed):
    _, ground_truth, durations = make_set(seed, n_clips=25)
    tables = make_tables(ground_truth, durations, seed)
    # Duplicated and empty operating points, detections on unknown clips and classes: psds_eval skips or ignores them.
    tables += [tables[3].copy(), tables[0].iloc[:0]]
    tables[5] = pd.concat(
        [tables[5], pd.DataFrame([("unknown.wav", 1.0, 2.0, "Cat"), (durations.filename[0], 1.0, 2.0, "Unknown")],
                                 columns=tables[5].columns)],
        ignore_index=True,
    )
    reference = ReferenceSet(ground_truth, durations)
    scenarios = (PSDS1, PSDS2, PSDSParams(dtc=0.3, gtc=0.6, cttc=0.1, alpha_ct=1.0, alpha_st=2.0, max_efpr=400.0))
    for params in scenarios:
        expected = psds_eval_psds(tables, ground_truth, durations, params)
        assert reference.psds(tables, params) == pytest.approx(expected, abs=1e-6)
        assert expected > 0.0


def test_cross_triggers_change_psds2(make_set, make_tables):
    _, ground_truth, durations = make_set(5, n_clips=20)
    tables = make_tables(ground_truth, durations, 5)
    reference = ReferenceSet(ground_truth, durations)
    counts = reference.count(tables, PSDS2.dtc, PSDS2.gtc, PSDS2.cttc, cross_triggers=True)
    assert counts.ct.sum() > 0
    without_ct = PSDSParams(PSDS2.dtc, PSDS2.gtc, PSDS2.cttc, alpha_ct=0.0, alpha_st=PSDS2.alpha_st)
    assert reference.psds(tables, PSDS2) < reference.psds(tables, without_ct)


@pytest.mark.parametrize("seed", [0, 6])
def test_intersection_f1_equals_psds_eval(make_set, seed):
    clips, ground_truth, durations = make_set(seed, n_clips=20)
    table = decode_thresholds(clips, [0.5]).tables({c: c + ".wav" for c in clips})[0.5]
    expected = psds_eval_intersection_f1(table, ground_truth, durations)
    assert intersection_f1(clips, ground_truth, durations) == pytest.approx(expected, abs=1e-9)
    assert intersection_f1(table, ground_truth, durations) == pytest.approx(expected, abs=1e-9)


def test_intersection_f1_skips_classes_without_true_positives_like_psds_eval():
    ground_truth = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Cat"), ("a.wav", 5.0, 6.0, "Dog"), ("b.wav", 2.0, 4.0, "Dog")],
        columns=["filename", "onset", "offset", "event_label"],
    )
    durations = pd.DataFrame([("a.wav", 10.0), ("b.wav", 10.0)], columns=["filename", "duration"])
    # Cat: one exact hit. Dog: one false alarm, no hit -> psds_eval gives Dog NaN and averages Cat alone.
    detections = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Cat"), ("b.wav", 7.0, 8.0, "Dog")], columns=["filename", "onset", "offset", "event_label"]
    )
    assert psds_eval_intersection_f1(detections, ground_truth, durations) == pytest.approx(1.0)
    assert intersection_f1(detections, ground_truth, durations) == pytest.approx(1.0)
    nothing_right = detections.iloc[1:]
    assert psds_eval_intersection_f1(nothing_right, ground_truth, durations) == 0.0
    assert intersection_f1(nothing_right, ground_truth, durations) == 0.0


def test_psds_hand_case():
    # Two 10 s clips; Cat [1, 3] and Dog [5, 6] in clip a. The system finds Cat (precision 1, coverage 0.9) and never
    # Dog, so the class curves are Cat 0 -> 1 and Dog 0 and their mean is half Cat's curve.
    ground_truth = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Cat"), ("a.wav", 5.0, 6.0, "Dog")], columns=["filename", "onset", "offset", "event_label"]
    )
    durations = pd.DataFrame([("a.wav", 10.0), ("b.wav", 10.0)], columns=["filename", "duration"])
    hit = pd.DataFrame([("a.wav", 1.2, 3.0, "Cat")], columns=["filename", "onset", "offset", "event_label"])
    with_false_alarm = pd.concat([hit, pd.DataFrame([("b.wav", 4.0, 5.0, "Cat")], columns=hit.columns)])
    reference = ReferenceSet(ground_truth, durations)
    mean_only = PSDSParams(0.7, 0.7, 0.3, alpha_ct=0.0, alpha_st=0.0, max_efpr=100.0)
    wide = PSDSParams(0.7, 0.7, 0.3, alpha_ct=0.0, alpha_st=0.0, max_efpr=360.0)
    cases = [
        ([hit], mean_only, 0.5),  # mean TPR 0.5 from eFPR 0 on
        # One false alarm in 20 s is 180 per hour: mean TPR 0 up to 180, then 0.5 up to 360 -> 0.5 * 180 / 360.
        ([with_false_alarm], wide, 0.25),
        ([with_false_alarm], mean_only, 0.0),
        ([hit], PSDS1, 0.0),  # mean 0.5 minus std 0.5
    ]
    for tables, params, expected in cases:
        assert reference.psds(tables, params) == pytest.approx(expected, abs=1e-12)
        assert psds_eval_psds(tables, ground_truth, durations, params) == pytest.approx(expected, abs=1e-12)


def test_staircase_area():
    x, y = np.array([0.0, 10.0, 50.0]), np.array([0.2, 0.5, 1.0])
    assert staircase_area(x, y, 100.0) == pytest.approx(0.2 * 10 + 0.5 * 40 + 1.0 * 50)
    assert staircase_area(x, y, 30.0) == pytest.approx(0.2 * 10 + 0.5 * 20)


def test_overlapping_ground_truth_is_rejected():
    ground_truth = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Cat"), ("a.wav", 2.0, 4.0, "Cat")], columns=["filename", "onset", "offset", "event_label"]
    )
    durations = pd.DataFrame([("a.wav", 10.0)], columns=["filename", "duration"])
    with pytest.raises(SEDInputError, match="intersecting events of one class in clip 'a'"):
        ReferenceSet(ground_truth, durations)


def test_ground_truth_clip_without_duration_is_rejected():
    ground_truth = pd.DataFrame([("a.wav", 1.0, 3.0, "Cat")], columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame([("b.wav", 10.0)], columns=["filename", "duration"])
    with pytest.raises(SEDInputError, match="clips without a duration"):
        psds({}, ground_truth, durations)
