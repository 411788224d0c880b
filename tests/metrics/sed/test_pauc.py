"""MAESTRO segment-based mpAUC."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from datamodules.sed import MAESTRO_EVAL_CLASSES
from metrics.sed.pauc import (
    maestro_mpauc,
    overlap_add_chunks,
    parse_chunk_id,
    partial_auroc,
    recording_ground_truth,
    segment_max_scores,
    segment_mean_scores,
    segment_pauc,
    segment_pauroc,
    segment_targets,
)
from metrics.sed.scores import ClipScores


def _reference_pauc(scores, targets, max_fpr):
    """Independent reference: sklearn's ROC points, integrated as a staircase up to max_fpr."""
    fpr, tpr, _ = roc_curve(targets, scores, drop_intermediate=False)
    area = 0.0
    for i in range(len(fpr) - 1):
        if fpr[i] >= max_fpr:
            break
        area += tpr[i] * (min(fpr[i + 1], max_fpr) - fpr[i])
    if fpr[-1] < max_fpr:
        area += tpr[-1] * (max_fpr - fpr[-1])
    return area / max_fpr


def test_maestro_eval_classes():
    assert len(MAESTRO_EVAL_CLASSES) == 11
    assert {"announcement", "cash register beeping", "coffee machine"}.isdisjoint(MAESTRO_EVAL_CLASSES)


def test_partial_auroc_hand_case():
    # Positives 0.9, 0.6; negatives 0.8, 0.3, 0.2, 0.1: ROC points (FPR, TPR) (0, .5), (.25, .5), (.25, 1), ...
    scores = np.array([0.9, 0.8, 0.6, 0.3, 0.2, 0.1])
    targets = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    assert partial_auroc(scores, targets, max_fpr=0.1) == pytest.approx(0.5)
    assert partial_auroc(scores, targets, max_fpr=0.5) == pytest.approx((0.25 * 0.5 + 0.25 * 1.0) / 0.5)
    assert partial_auroc(scores, targets, max_fpr=None) == pytest.approx(0.25 * 0.5 + 0.75 * 1.0)
    assert np.isnan(partial_auroc(scores, np.zeros(6, dtype=bool)))


@pytest.mark.parametrize("max_fpr", [0.1, 0.37])
def test_partial_auroc_matches_sklearn_roc_points(max_fpr):
    rng = np.random.default_rng(0)
    targets = rng.random(500) < 0.3
    # Rounded scores create ties between positives and negatives.
    scores = np.round(0.3 * targets + rng.random(500), 2)
    expected = _reference_pauc(scores, targets, max_fpr)
    assert partial_auroc(scores, targets, max_fpr) == pytest.approx(expected, abs=1e-12)


def test_parse_chunk_id():
    assert parse_chunk_id("cafe_restaurant_1-000500-001500") == ("cafe_restaurant_1", 5.0, 15.0)
    with pytest.raises(ValueError, match="is not <recording>-<start\\*100>-<end\\*100>"):
        parse_chunk_id("cafe_restaurant_1")


def test_segment_mean_and_max_scores():
    clip = ClipScores(np.array([0.0, 0.4, 1.2, 2.0]), np.array([[1.0], [0.0], [0.5]]), ("a",))
    # Segment [0, 1): 0.4 s of 1.0 and 0.6 s of 0.0; segment [1, 2): 0.2 s of 0.0 and 0.8 s of 0.5.
    np.testing.assert_allclose(segment_mean_scores(clip, 2.0), [[0.4], [0.4]])
    np.testing.assert_allclose(segment_max_scores(clip, 2.0), [[1.0], [0.5]])
    # A segment past the last frame scores 0.
    np.testing.assert_allclose(segment_max_scores(clip, 3.0), [[1.0], [0.5], [0.0]])


def test_overlap_add_averages_overlapping_chunks():
    frames = np.arange(11) * 1.0
    chunks = {
        "rec-000000-001000": ClipScores(frames, np.full((10, 1), 0.2), ("a",)),
        "rec-000500-001500": ClipScores(frames, np.full((10, 1), 0.6), ("a",)),
    }
    out = overlap_add_chunks(chunks, {"rec": 14.5})["rec"]
    np.testing.assert_allclose(out.scores[:, 0], [0.2] * 5 + [0.4] * 5 + [0.6] * 5)
    np.testing.assert_allclose(out.timestamps, list(range(15)) + [14.5])
    with pytest.raises(ValueError, match="ends after recording"):
        overlap_add_chunks(chunks, {"rec": 12.0})


def test_recording_ground_truth_filters_shifts_and_merges():
    table = pd.DataFrame(
        [
            ("rec-000000-001000.wav", 2.0, 10.0, "car", 1.0),
            ("rec-000500-001500.wav", 0.0, 6.0, "car", 0.8),  # 5-11 s: merged with 2-10 s
            ("rec-000500-001500.wav", 7.0, 8.0, "car", 0.4),  # confidence too low
            ("rec-000500-001500.wav", 1.0, 2.0, "announcement", 1.0),  # not evaluated
            ("rec-000500-001500.wav", 9.0, 10.0, "footsteps", 0.6),
        ],
        columns=["filename", "onset", "offset", "event_label", "confidence"],
    )
    events = recording_ground_truth(table)
    assert sorted(events["rec"]) == [(2.0, 11.0, "car"), (14.0, 15.0, "footsteps")]
    targets = segment_targets(events["rec"], 15.0, ["car", "footsteps"])
    assert targets[:, 0].tolist() == [False, False] + [True] * 9 + [False] * 4
    assert np.flatnonzero(targets[:, 1]).tolist() == [14]


def test_maestro_mpauc_end_to_end():
    rng = np.random.default_rng(3)
    classes = ("car", "footsteps", "coffee machine")
    frames = np.arange(157) * 0.064
    chunks, rows, events = {}, [], {"car": [(3.0, 9.5), (21.0, 24.0)], "footsteps": [(12.0, 16.0)]}
    for start in range(0, 21, 5):
        target = np.zeros((156, 3))
        for c, name in enumerate(classes[:2]):
            for onset, offset in events[name]:
                if onset < start + 10 and offset > start:
                    on, off = max(onset - start, 0.0), min(offset - start, 10.0)
                    rows.append((f"r1-{start * 100:06d}-{(start + 10) * 100:06d}.wav", on, off, name, 1.0))
                    target[int(on / 0.064) : int(np.ceil(off / 0.064)), c] = 1
        scores = 0.6 * target + 0.5 * rng.random((156, 3))
        chunks[f"r1-{start * 100:06d}-{(start + 10) * 100:06d}"] = ClipScores(frames, scores, classes)
    table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label", "confidence"])
    durations = pd.DataFrame([("r1.wav", 30.0)], columns=["filename", "duration"])
    value = maestro_mpauc(chunks, table, durations, class_names=("car", "footsteps"))
    recordings = overlap_add_chunks(chunks, {"r1": 30.0})
    truth = recording_ground_truth(table, ("car", "footsteps"))
    per_class = segment_pauc(recordings, truth, {"r1": 30.0}, ["car", "footsteps"])
    assert value == pytest.approx(per_class["mean"])
    assert value == pytest.approx((per_class["car"] + per_class["footsteps"]) / 2)
    assert 0.5 < value <= 1.0


def test_segment_pauroc_from_tables_hand_case():
    # 1 s segment maxima of 0.5 s frames. a: 0.9 (event [0.2, 0.8)), 0.3, 0.6; b: 0.4, 0.7, 0.35 (event [1.5, 2.5)).
    # Ranked: 0.9 P, 0.7 P, 0.6 N, 0.4 N, 0.35 P, 0.3 N: TPR 2/3 up to FPR 2/3, then 1.
    frames = np.arange(7) * 0.5
    clips = {
        "a": ClipScores(frames, np.array([[0.9], [0.1], [0.3], [0.2], [0.6], [0.1]]), ("A",)),
        "b": ClipScores(frames, np.array([[0.2], [0.4], [0.7], [0.5], [0.35], [0.1]]), ("A",)),
    }
    table = pd.DataFrame([("a.wav", 0.2, 0.8, "A"), ("b.wav", 1.5, 2.5, "A")],
                         columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame([("a.wav", 3.0), ("b.wav", 3.0)], columns=["filename", "duration"])
    assert segment_pauroc(clips, table, durations, max_fpr=None)["A"] == pytest.approx(2 / 3 * 2 / 3 + 1 / 3)
    assert segment_pauroc(clips, table, durations, max_fpr=0.5) == pytest.approx({"A": 2 / 3, "mean": 2 / 3})
    with pytest.raises(ValueError, match=r"clips without scores: \['b'\]"):
        segment_pauroc({"a": clips["a"]}, table, durations)
