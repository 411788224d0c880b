"""The DCASE'24 Task 4 DESED evaluation of per-clip score files: PSDS1, PSDS2, intersection F1, sed_eval F1."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from metrics.sed.postprocess import decode_thresholds
from metrics.sed.psds import PSDS1, PSDS2, PSDS_THRESHOLDS, ReferenceSet
from metrics.sed.scores import (
    ClipScores,
    SEDInputError,
    audio_id,
    check_durations,
    check_event_extents,
    check_ground_truth,
)
from metrics.sed.toolkits import psds_eval_intersection_f1, psds_eval_psds, sed_eval_f1

F1_THRESHOLD = 0.5
ENGINES = ("native", "psds_eval")
# psds_eval's run time grows faster than operating points x classes x clips. Measured with 50 thresholds on
# synthetic sets (shared 2-core machine), psds_eval / native: 4 classes x 160 clips 5 s / 0.3 s, 16 x 40 13 s / 0.8 s,
# 16 x 160 74 s / 2 s, 26 x 40 80 s / 2 s, 26 x 160 558 s / 11 s. Above this product (about a minute) it warns.
PSDS_EVAL_WARN_SIZE = 50_000


@dataclass(frozen=True)
class SEDScores:
    """The DESED metrics of one system.

    Attributes:
        psds1, psds2: PSDS scenarios 1 and 2 over the 50 thresholds.
        f1_intersection: Intersection-based macro F1 (dtc = gtc = 0.5) at threshold 0.5.
        f1_event_macro, f1_event_micro: sed_eval event-based (collar 0.2 s / 20 %) F1 at threshold 0.5.
        f1_segment_macro, f1_segment_micro: sed_eval segment-based (1 s) F1 at threshold 0.5.
    """

    psds1: float
    psds2: float
    f1_intersection: float
    f1_event_macro: float
    f1_event_micro: float
    f1_segment_macro: float
    f1_segment_micro: float

    def as_dict(self) -> dict[str, float]:
        """All fields."""
        return asdict(self)


def match_scores(
    scores: Mapping[str, ClipScores], ground_truth: pd.DataFrame, durations: pd.DataFrame
) -> dict[str, ClipScores]:
    """Checks that scores, ground truth and durations describe the same clips and classes.

    Returns:
        The scores restricted to the ground-truth classes (in score-file order).

    Raises:
        SEDInputError: Clips without a score file, score files or ground-truth clips without a duration,
            ground-truth events past their clip's duration, or ground-truth classes without a score column.
    """
    ground_truth = check_ground_truth(ground_truth)
    durations = check_durations(durations)
    evaluated = {audio_id(f) for f in durations["filename"]}
    without_scores = sorted(evaluated - set(scores))
    if without_scores:
        raise SEDInputError(f"clips without a score file: {_some(without_scores)}")
    unknown = sorted(set(scores) - evaluated)
    if unknown:
        raise SEDInputError(f"score files of clips missing from the durations file: {_some(unknown)}")
    unknown_gt = sorted({audio_id(f) for f in ground_truth["filename"]} - evaluated)
    if unknown_gt:
        raise SEDInputError(f"ground-truth clips missing from the durations file: {_some(unknown_gt)}")
    check_event_extents(ground_truth, durations)
    score_classes = next(iter(scores.values())).class_names
    gt_classes = set(ground_truth["event_label"].dropna())
    unscored = sorted(gt_classes - set(score_classes))
    if unscored:
        raise SEDInputError(
            f"classes mismatch: ground-truth classes {unscored} have no score column "
            f"(score files have {list(score_classes)})"
        )
    kept = [name for name in score_classes if name in gt_classes]
    return {clip_id: clip.select(kept) for clip_id, clip in scores.items()}


def evaluate_scores(
    scores: Mapping[str, ClipScores],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    engine: str = "native",
    thresholds: Sequence[float] = PSDS_THRESHOLDS,
) -> SEDScores:
    """DESED metrics of per-clip scores (taken as given: post-process them before).

    Args:
        scores: Frame scores keyed by audio id (the ``filename`` without extension).
        ground_truth: Strong labels of the evaluated clips.
        durations: ``filename duration`` of the evaluated clips.
        engine: ``"native"`` (vectorised, equal to psds_eval) or ``"psds_eval"`` (the official toolkit, slow on
            large sets: see :func:`psds_eval_cost_warning`) for PSDS and intersection F1; sed_eval always computes
            the collar and segment F1.
        thresholds: Operating points of PSDS.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    ground_truth, durations = check_ground_truth(ground_truth), check_durations(durations)
    scores = match_scores(scores, ground_truth, durations)
    filenames = {audio_id(f): f for f in durations["filename"]}
    detections_05 = decode_thresholds(scores, [F1_THRESHOLD]).tables(filenames)[F1_THRESHOLD]
    if engine == "native":
        reference = ReferenceSet(ground_truth, durations)
        # Counted from the scores in one pass: no per-threshold detections are decoded.
        psds1, psds2 = reference.psds(scores, PSDS1, thresholds), reference.psds(scores, PSDS2, thresholds)
        f1_intersection = reference.intersection_f1(detections_05)
    else:
        tables = decode_thresholds(scores, list(thresholds)).tables(filenames)
        psds1 = psds_eval_psds(tables, ground_truth, durations, PSDS1)
        psds2 = psds_eval_psds(tables, ground_truth, durations, PSDS2)
        f1_intersection = psds_eval_intersection_f1(detections_05, ground_truth, durations)
    collar_segment = sed_eval_f1(detections_05, ground_truth)
    return SEDScores(
        psds1=psds1,
        psds2=psds2,
        f1_intersection=f1_intersection,
        f1_event_macro=collar_segment.event_macro,
        f1_event_micro=collar_segment.event_micro,
        f1_segment_macro=collar_segment.segment_macro,
        f1_segment_micro=collar_segment.segment_micro,
    )


def psds_eval_cost_warning(n_operating_points: int, n_classes: int, n_clips: int) -> str | None:
    """A one-line warning when psds_eval would be slow: operating points x classes x clips above
    :data:`PSDS_EVAL_WARN_SIZE`; ``None`` otherwise."""
    size = n_operating_points * n_classes * n_clips
    if size <= PSDS_EVAL_WARN_SIZE:
        return None
    return (f"psds_eval over {n_operating_points} operating points x {n_classes} classes x {n_clips} clips "
            f"({size:,} > {PSDS_EVAL_WARN_SIZE:,}) may take many minutes and gigabytes of memory; the native engine "
            "gives the same values in seconds")


def _some(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"{shown}{f' and {len(names) - limit} more' if len(names) > limit else ''}"
