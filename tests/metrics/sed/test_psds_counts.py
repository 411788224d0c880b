"""One-pass operating-point counts of frame scores against psds_eval's per-operating-point counts."""
import numpy as np
import pandas as pd
import pytest

from metrics.sed import psds_counts, psds_deltas
from metrics.sed.postprocess import decode_thresholds
from metrics.sed.psds import PSDS1, PSDS2, ReferenceSet
from metrics.sed.scores import ClipScores
from metrics.sed.toolkits import quiet_toolkits

MANY_CLASSES = tuple(f"class_{c}" for c in range(9))
# Unsorted, one repeated: counts come back in the order asked for.
THRESHOLDS = [0.5, 0.15, 0.85, 0.3, 0.5, 0.7]


def _psds_eval_counts(table, ground_truth, durations, dtc, gtc, cttc):
    """psds_eval's confusion counts of one operating point: rows detected class, columns ground-truth class and
    last the world (false positives); classes sorted, as psds_eval orders them."""
    with quiet_toolkits():
        from psds_eval import PSDSEval

        evaluator = PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=ground_truth,
                             metadata=durations)
        table = table.reset_index(drop=True)
        table.index += 1  # as metrics.sed.toolkits passes tables (psds_eval mishandles a detection id 0)
        counts, *_ = evaluator._evaluate_detections(evaluator._init_det_table(table))
    return counts


class CountingScores(dict):
    """A dict of clip scores that counts how often each clip is read."""

    def __init__(self, clips):
        super().__init__(clips)
        self.reads = dict.fromkeys(clips, 0)

    def __getitem__(self, clip_id):
        self.reads[clip_id] += 1
        return super().__getitem__(clip_id)

    def items(self):
        return ((clip_id, self[clip_id]) for clip_id in self)

    def values(self):
        return (self[clip_id] for clip_id in self)


@pytest.mark.parametrize("params", [PSDS1, PSDS2], ids=["psds1_no_cross_triggers", "psds2_cross_triggers"])
def test_counts_equal_psds_eval_counts_at_every_threshold(make_set, params):
    clips, ground_truth, durations = make_set(7, n_clips=10, class_names=MANY_CLASSES, confusion=0.6)
    reference = ReferenceSet(ground_truth, durations)
    assert len(reference.class_names) == len(MANY_CLASSES)
    cross_triggers = params.alpha_ct > 0
    counts = reference.count_scores(clips, THRESHOLDS, params.dtc, params.gtc, params.cttc, cross_triggers)
    tables = decode_thresholds(clips, THRESHOLDS).tables({c: c + ".wav" for c in clips})
    diagonal = np.eye(len(MANY_CLASSES), dtype=bool)
    for k, threshold in enumerate(THRESHOLDS):
        expected = _psds_eval_counts(tables[threshold], ground_truth, durations, params.dtc, params.gtc, params.cttc)
        np.testing.assert_array_equal(counts.tp[k], np.diag(expected)[:-1])
        np.testing.assert_array_equal(counts.fp[k], expected[:-1, -1])
        if cross_triggers:
            np.testing.assert_array_equal(counts.ct[k][~diagonal], expected[:-1, :-1][~diagonal])
    assert counts.tp.sum() > 0 and counts.fp.sum() > 0
    if cross_triggers:
        assert counts.ct.sum() > 0
    else:
        assert counts.ct is None


def test_scores_are_read_once_and_batches_do_not_change_counts(make_set, monkeypatch):
    clips, ground_truth, durations = make_set(8, n_clips=12, class_names=MANY_CLASSES[:5])
    reference = ReferenceSet(ground_truth, durations)
    whole = reference.count_scores(clips, THRESHOLDS, PSDS2.dtc, PSDS2.gtc, PSDS2.cttc, cross_triggers=True)
    # One clip per batch and cross-trigger deltas flushed at every batch.
    monkeypatch.setattr(psds_counts, "_MAX_SCORES_PER_BATCH", 1)
    monkeypatch.setattr(psds_deltas, "_MAX_PENDING_CROSS_TRIGGERS", 1)
    counted = CountingScores(clips)
    batched = reference.count_scores(counted, THRESHOLDS, PSDS2.dtc, PSDS2.gtc, PSDS2.cttc, cross_triggers=True)
    assert set(counted.reads.values()) == {1}
    for name in ("tp", "fp", "ct"):
        np.testing.assert_array_equal(getattr(batched, name), getattr(whole, name))


def test_unknown_clips_and_classes_are_ignored(make_set):
    clips, ground_truth, durations = make_set(9, n_clips=8, class_names=("Cat", "Dog", "Speech"))
    reference = ReferenceSet(ground_truth, durations)
    expected = reference.count_scores(clips, THRESHOLDS, 0.7, 0.7)
    # A class without ground truth and a clip without a duration: psds_eval ignores their detections.
    extra = {
        clip_id: ClipScores(clip.timestamps, np.hstack([clip.scores, np.full((len(clip.scores), 1), 0.99)]),
                            clip.class_names + ("Unseen",))
        for clip_id, clip in clips.items()
    }
    extra["stray"] = next(iter(extra.values()))
    counts = reference.count_scores(extra, THRESHOLDS, 0.7, 0.7)
    np.testing.assert_array_equal(counts.tp, expected.tp)
    np.testing.assert_array_equal(counts.fp, expected.fp)


def test_clips_scoring_other_classes_are_rejected(make_set):
    clips, ground_truth, durations = make_set(10, n_clips=4, class_names=("Cat", "Dog"))
    first = next(iter(clips))
    clips[first] = clips[first].select(("Dog", "Cat"))
    with pytest.raises(ValueError, match=r"scores classes \('Dog', 'Cat'\), expected \('Cat', 'Dog'\)"):
        ReferenceSet(ground_truth, durations).count_scores(dict(reversed(list(clips.items()))), [0.5], 0.7, 0.7)


def test_thresholds_and_scores_must_be_there(make_set):
    clips, ground_truth, durations = make_set(11, n_clips=3)
    with pytest.raises(ValueError, match="thresholds must be a non-empty list of numbers"):
        ReferenceSet(ground_truth, durations).count_scores(clips, [], 0.7, 0.7)
    with pytest.raises(ValueError, match="no clip scores to evaluate"):
        ReferenceSet(ground_truth, durations).count_scores({}, [0.5], 0.7, 0.7)


def test_cross_triggers_need_a_threshold_list():
    with pytest.raises(ValueError, match="cross-triggers are counted with the psds_eval convention only"):
        psds_counts.Criteria(0.1, 0.1, 0.3, cross_triggers=True, convention=psds_counts.SED_SCORES_EVAL)


def test_detections_past_a_short_clip_are_not_false_positives():
    # Scores run 10 s but the clip lasts 6 s: the run from 7 s is outside the clip (psds_eval's world), as psds_eval.
    ground_truth = pd.DataFrame([("a.wav", 1.0, 3.0, "Cat")], columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame([("a.wav", 6.0)], columns=["filename", "duration"])
    scores = np.zeros((10, 1))
    scores[1:3] = 0.9
    scores[4] = 0.6
    scores[7:9] = 0.8
    clips = {"a": ClipScores(np.arange(11.0), scores, ("Cat",))}
    counts = ReferenceSet(ground_truth, durations).count_scores(clips, [0.5, 0.7], 0.7, 0.7)
    assert counts.tp[:, 0].tolist() == [1, 1]
    assert counts.fp[:, 0].tolist() == [1, 0]
