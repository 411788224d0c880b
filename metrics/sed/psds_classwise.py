"""PSDS of each class alone, and PSDS1 macro-averaged over classes as PretrainedSED reports AudioSet strong.

PretrainedSED (fschmid56/PretrainedSED, ``ex_audioset_strong.py``) evaluates with sed_scores_eval 0.0.3:
``intersection_based.psds(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0, alpha_st=1)``
(max_efpr 100, ``time_decimals`` 6) and logs the mean of its per-class values (``psds(...)[1]``) as
``val/psds1_macro_averaged``, and ``segment_based.auroc(max_fpr=0.1, segment_length=1.0)[0]["mean"]`` as
``val/pauroc`` (:func:`metrics.sed.pauc.segment_pauroc`). sed_scores_eval is threshold-independent: every distinct
score of a class is a decision threshold, a frame is active when its score reaches the threshold, and the criteria
compare intersections in seconds rounded to microseconds.

One class's PSDS: its operating points (TPR = TP / events, FPR = FP per hour of audio, plus the all-rejecting
point 0, 0) become a staircase, the best TPR at an FPR at most x; the area under it up to ``max_efpr``, divided by
``max_efpr``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from metrics.sed.psds import (
    PSDROC,
    PSDS1,
    SECONDS_PER_HOUR,
    PSDSParams,
    ReferenceSet,
    best_tpr_staircase,
    psd_roc,
    staircase_area,
)
from metrics.sed.psds_counts import SED_SCORES_EVAL, Criteria, scan_scores
from metrics.sed.psds_deltas import ClassCurve, SparseDeltas
from metrics.sed.scores import ClipScores


def class_psds(
    reference: ReferenceSet,
    scores: Mapping[str, ClipScores],
    params: PSDSParams = PSDS1,
    thresholds: Sequence[float] | None = None,
) -> dict[str, float]:
    """PSDS of each ground-truth class alone (``alpha_st`` plays no part).

    Args:
        reference: The evaluation set.
        scores: Frame scores keyed by audio id (read twice without ``thresholds``, once with).
        params: Criteria and ``max_efpr``; cross-triggers (``alpha_ct > 0``) are not supported.
        thresholds: ``None``: threshold-independent, equal to sed_scores_eval's per-class PSDS; a list: these
            operating points, decoded and judged as psds_eval (:meth:`ReferenceSet.count_scores`).
    """
    roc = _class_rocs(reference, scores, params, thresholds)
    values = [staircase_area(roc.efpr, curve, params.max_efpr) / params.max_efpr for curve in roc.tpr_per_class]
    return dict(zip(reference.class_names, map(float, values)))


def threshold_independent_psds(
    reference: ReferenceSet, scores: Mapping[str, ClipScores], params: PSDSParams = PSDS1
) -> float:
    """PSDS over every distinct score as a threshold, equal to sed_scores_eval's ``psds(...)[0]`` (PretrainedSED's
    ``val/psds1`` with :data:`metrics.sed.psds.PSDS1`); no cross-triggers."""
    roc = _class_rocs(reference, scores, params, None)
    return staircase_area(roc.efpr, roc.etpr, params.max_efpr) / params.max_efpr


def psds1_macro(
    scores: Mapping[str, ClipScores],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    thresholds: Sequence[float] | None = None,
) -> float:
    """PSDS1 macro-averaged over classes (PretrainedSED's ``val/psds1_macro_averaged``).

    The mean over the ground-truth classes of :func:`class_psds` with :data:`metrics.sed.psds.PSDS1` (dtc = gtc =
    0.7, no cross-triggers, max_efpr 100), threshold-independent unless ``thresholds`` are given. PretrainedSED
    median-filters the model's strong logits first (any monotonic squashing leaves the value unchanged), keeps the
    classes present in both its training and evaluation label sets and drops clips without events among them;
    classes without events are not evaluated here (sed_scores_eval would count them as 0).
    """
    per_class = class_psds(ReferenceSet(ground_truth, durations), scores, PSDS1, thresholds)
    return float(np.mean(list(per_class.values())))


def _class_rocs(
    reference: ReferenceSet, scores: Mapping[str, ClipScores], params: PSDSParams, thresholds: Sequence[float] | None
) -> PSDROC:
    """The PSD-ROC (alpha_ct = 0) of the given thresholds or, threshold-independent, of every distinct score."""
    if params.alpha_ct > 0:
        raise ValueError("class-wise and threshold-independent PSDS are defined without cross-triggers (alpha_ct = 0)")
    if thresholds is not None:
        return psd_roc(reference.count_scores(scores, thresholds, params.dtc, params.gtc), alpha_st=params.alpha_st)
    points = []
    for c, curve in enumerate(class_curves(reference, scores, params.dtc, params.gtc, params.max_efpr)):
        # sed_scores_eval's arithmetic: TPR over at least one event, FP per second, then per hour.
        points.append((np.append(0.0, curve.tp / max(reference.n_events[c], 1.0)),
                       np.append(0.0, curve.fp / reference.total_seconds * SECONDS_PER_HOUR)))
    grid = np.unique(np.concatenate([efpr for _, efpr in points]))
    curves = np.stack([best_tpr_staircase(tpr, efpr, grid) for tpr, efpr in points])
    etpr = np.clip(curves.mean(axis=0) - params.alpha_st * curves.std(axis=0), 0.0, None)
    return PSDROC(efpr=grid, etpr=etpr, tpr_per_class=curves)


def class_curves(
    reference: ReferenceSet,
    scores: Mapping[str, ClipScores],
    dtc: float,
    gtc: float,
    max_efpr: float | None = None,
) -> list[ClassCurve]:
    """Threshold-independent TP/FP counts per class, as sed_scores_eval's intersection-based statistics.

    Args:
        reference: The evaluation set.
        scores: Frame scores keyed by audio id; read twice when ``max_efpr`` is given.
        dtc, gtc: Intersection criteria.
        max_efpr: Only thresholds with at most this many false positives per hour are needed (PSDS up to
            ``max_efpr``): a first pass over the scores finds for each class a floor below which there are more
            (:func:`false_positive_floors`), and only thresholds above it are counted. ``None``: every threshold.
    """
    n_classes = len(reference.class_names)
    floors = np.full(n_classes, -np.inf)
    if max_efpr is not None and dtc > 0:
        floors = false_positive_floors(reference, scores, max_efpr)

    def clamped(curves: np.ndarray, cls: np.ndarray) -> np.ndarray:
        # Frames at or below the floor count as inactive; the sentinels stay below every curve's floor.
        values = np.fmax(curves, floors[cls][:, None])
        values[:, [0, -1]] = -np.inf
        return values

    deltas = SparseDeltas(n_classes)
    scan_scores(reference, scores, Criteria(dtc, gtc, convention=SED_SCORES_EVAL), floors, clamped, deltas)
    return deltas.curves(floors)


def false_positive_floors(reference: ReferenceSet, scores: Mapping[str, ClipScores], max_efpr: float) -> np.ndarray:
    """Per class, a score at or below which every threshold gives more than ``max_efpr`` false positives per hour.

    A clip without events of the class whose curve reaches the threshold has at least one detection there, and it
    fails the DTC (dtc > 0): a false positive. So below the (n + 1)-th highest peak of those clips there are more
    than n, with n the false positives ``max_efpr`` allows (plus one of margin against rounding of the rate).
    """
    allowed = int(np.floor(max_efpr * reference.total_seconds / SECONDS_PER_HOUR)) + 1
    n_clips, n_classes = len(reference.clip_ids), len(reference.class_names)
    lookup = {name: c for c, name in enumerate(reference.class_names)}
    peaks = np.full((n_clips, n_classes), np.nan)
    for clip_id, clip in scores.items():
        index = reference.clip_index.get(clip_id)
        if index is not None:
            pairs = [(column, lookup[name]) for column, name in enumerate(clip.class_names) if name in lookup]
            columns, classes = (np.array(part, dtype=np.int64) for part in zip(*pairs)) if pairs else ([], [])
            peaks[index, classes] = np.fmax.reduce(clip.scores[:, columns], axis=0)
    # Curves of clips with events of their class may hold true positives: they set no bound.
    peaks[reference.group_event_count.reshape(n_clips, n_classes) > 0] = np.nan
    floors = np.full(n_classes, -np.inf)
    for c in range(n_classes):
        values = peaks[:, c][~np.isnan(peaks[:, c])]
        if values.size > allowed:
            floors[c] = -np.partition(-values, allowed)[allowed]
    return floors
